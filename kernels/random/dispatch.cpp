// The single dispatch point for the random fills: the CUDA kernels (cuda_random.cu) on a CUDA device, the
// reference on the CPU. Every version draws the same numbers (element i depends only on the state and i).
#include "core/profiler.hpp"
#include "kernels/cpu_level.hpp"
#include "kernels/random/random.hpp"

namespace kiln::kernels {

template <typename T>
void random_uniform(Device device, std::int64_t n, const PhiloxState& state, T low, T high, T* out) {
  profiler::Scope profile("random_uniform", device, dtype_of_v<T>);
#ifdef KILN_WITH_CUDA
  if (device.is_cuda()) return cuda::random_uniform(n, state, low, high, out);
#endif
  require_cpu(device, "random_uniform");
  reference::random_uniform(n, state, low, high, out);
}

template <typename T>
void random_normal(Device device, std::int64_t n, const PhiloxState& state, T mean, T std, T* out) {
  profiler::Scope profile("random_normal", device, dtype_of_v<T>);
#ifdef KILN_WITH_CUDA
  if (device.is_cuda()) return cuda::random_normal(n, state, mean, std, out);
#endif
  require_cpu(device, "random_normal");
  reference::random_normal(n, state, mean, std, out);
}

template void random_uniform(Device, std::int64_t, const PhiloxState&, float, float, float*);
template void random_uniform(Device, std::int64_t, const PhiloxState&, double, double, double*);
template void random_normal(Device, std::int64_t, const PhiloxState&, float, float, float*);
template void random_normal(Device, std::int64_t, const PhiloxState&, double, double, double*);

}  // namespace kiln::kernels
