// The single dispatch point for take: a CUDA device runs cuda_take.cu in a build with CUDA; the CPU runs the
// reference (a take picks a batch's worth of elements: a vectorized gather would not be felt).
#include "core/profiler.hpp"
#include "kernels/cpu_level.hpp"
#include "kernels/take/take.hpp"

namespace kiln::kernels {

template <typename T>
void take(Device device, std::int64_t n, const T* table, std::int64_t size, const std::int64_t* indices,
          T* y) {
  profiler::Scope profile("take", device, dtype_of_v<T>);
#ifdef KILN_WITH_CUDA
  if (device.is_cuda()) return cuda::take(n, table, size, indices, y);
#endif
  require_cpu(device, "take");
  reference::take(n, table, size, indices, y);
}

template void take<float>(Device, std::int64_t, const float*, std::int64_t, const std::int64_t*, float*);
template void take<double>(Device, std::int64_t, const double*, std::int64_t, const std::int64_t*, double*);

}  // namespace kiln::kernels
