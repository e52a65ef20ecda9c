#include "kernels/cpu_scratch.hpp"

#include "core/storage.hpp"

namespace kiln::kernels {

void CpuScratchRelease::operator()(float* floats) const {
  allocator_for(Device::cpu()).deallocate(floats, bytes);
}

CpuScratch cpu_scratch(std::int64_t floats) {
  if (floats <= 0) return CpuScratch(nullptr, CpuScratchRelease{});
  const std::size_t bytes = static_cast<std::size_t>(floats) * sizeof(float);
  return CpuScratch(static_cast<float*>(allocator_for(Device::cpu()).allocate(bytes)),
                    CpuScratchRelease{bytes});
}

}  // namespace kiln::kernels
