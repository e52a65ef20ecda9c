// Scratch memory for CPU kernels: float buffers that are not zero-filled (the kernels overwrite all of one
// before reading it), from the CPU's caching allocator (core/caching_allocator.hpp). A training step asks
// for the same sizes every time, and fresh pages from the system would be zeroed by the OS each time.
//
//   const CpuScratch wide = cpu_scratch(count);   // count floats, back to the allocator at scope exit
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

namespace kiln::kernels {

struct CpuScratchRelease {
  std::size_t bytes = 0;
  void operator()(float* floats) const;
};
using CpuScratch = std::unique_ptr<float[], CpuScratchRelease>;

// `floats` of scratch; none (a null pointer) for zero, so a caller that needs none takes nothing from the
// allocator.
CpuScratch cpu_scratch(std::int64_t floats);

}  // namespace kiln::kernels
