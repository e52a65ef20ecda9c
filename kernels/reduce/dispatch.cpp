// The single dispatch point for the reduction family: every caller goes through these functions, and only
// here is an implementation chosen. A float Sum runs the AVX-512 / AVX2 kernel when cpu_level() allows;
// Max, Min, argmax, double, bfloat16 and the Reference level run the reference kernels. A CUDA device runs
// the CUDA kernels (cuda_reduce.cu) for every op and dtype.
#include <type_traits>

#include "core/profiler.hpp"
#include "kernels/cpu_level.hpp"
#include "kernels/reduce/reduce.hpp"

namespace kiln::kernels {

template <typename T>
void reduce(Device device, ReduceOp op, const ReduceGeometry& g, const T* x, T* y) {
  profiler::Scope profile("reduce", device, dtype_of_v<T>);
#ifdef KILN_WITH_CUDA
  if (device.is_cuda()) return cuda::reduce(device, op, g, x, y);
#endif
  require_cpu(device, "reduce");
  if constexpr (std::is_same_v<T, float>) {
    if (op == ReduceOp::Sum) {
      switch (cpu_level()) {
        case CpuLevel::Avx512:
          return avx512::reduce_sum(g, x, y);
        case CpuLevel::Avx2:
          return avx2::reduce_sum(g, x, y);
        case CpuLevel::Reference:
          break;
      }
    }
  }
  reference::reduce(op, g, x, y);
}

template <typename T>
void argmax(Device device, const ReduceGeometry& g, const T* x, std::int64_t* indices) {
  profiler::Scope profile("argmax", device, dtype_of_v<T>);
#ifdef KILN_WITH_CUDA
  if (device.is_cuda()) return cuda::argmax(device, g, x, indices);
#endif
  require_cpu(device, "argmax");
  reference::argmax(g, x, indices);
}

template void reduce<float>(Device, ReduceOp, const ReduceGeometry&, const float*, float*);
template void reduce<double>(Device, ReduceOp, const ReduceGeometry&, const double*, double*);
template void reduce<bfloat16>(Device, ReduceOp, const ReduceGeometry&, const bfloat16*, bfloat16*);
template void argmax<float>(Device, const ReduceGeometry&, const float*, std::int64_t*);
template void argmax<double>(Device, const ReduceGeometry&, const double*, std::int64_t*);
template void argmax<bfloat16>(Device, const ReduceGeometry&, const bfloat16*, std::int64_t*);

}  // namespace kiln::kernels
