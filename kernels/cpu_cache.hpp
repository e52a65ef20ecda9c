// The size of one core's L2 cache, for kernels that walk memory in pieces meant to stay there.
//
// Read once from the C library (sysconf(_SC_LEVEL2_CACHE_SIZE), which glibc answers from CPUID), with
// 1 MiB where it does not know (a common size: Skylake-SP, Zen 4 and 5; Sapphire Rapids has 2 MiB). Tests
// set it to steer a kernel onto the walk they check, as set_cpu_level steers dispatch.
#pragma once

#include <cstdint>

namespace kiln::kernels {

std::int64_t per_core_l2_bytes();
// bytes > 0 replaces the detected size; 0 restores it.
void set_per_core_l2_bytes(std::int64_t bytes);

// Whether a tensor of `bytes` that an earlier op wrote comes back from memory rather than from this core's
// L2: more than half of L2 cannot still be there (GemmGeometry::b_cold, kernels/gemm/gemm.hpp).
inline bool read_from_memory(std::int64_t bytes) { return bytes > per_core_l2_bytes() / 2; }

}  // namespace kiln::kernels
