// The single dispatch point for dropout: every caller comes through here, and this is the only place that
// picks an implementation. float runs the AVX-512 or AVX2 kernel when cpu_level() allows; double, bfloat16
// and the Reference level run the reference kernel; a CUDA device runs the CUDA kernel (cuda_dropout.cu).
// Every version draws element i from philox_uniform(state, i), so every version produces the same mask.
#include <type_traits>

#include "core/profiler.hpp"
#include "kernels/cpu_level.hpp"
#include "kernels/dropout/dropout.hpp"

namespace kiln::kernels {

template <typename T>
void dropout_forward(Device device, std::int64_t n, opmath_t<T> p, const PhiloxState& state, const T* x, T* y,
                     T* mask) {
  profiler::Scope profile("dropout_forward", device, dtype_of_v<T>);
#ifdef KILN_WITH_CUDA
  if (device.is_cuda()) return cuda::dropout_forward(n, p, state, x, y, mask);
#endif
  require_cpu(device, "dropout_forward");
  if constexpr (std::is_same_v<T, float>) {
    switch (cpu_level()) {
      case CpuLevel::Avx512:
        return avx512::dropout_forward(n, p, state, x, y, mask);
      case CpuLevel::Avx2:
        return avx2::dropout_forward(n, p, state, x, y, mask);
      case CpuLevel::Reference:
        break;
    }
  }
  reference::dropout_forward(n, p, state, x, y, mask);
}

template void dropout_forward<float>(Device, std::int64_t, float, const PhiloxState&, const float*, float*,
                                     float*);
template void dropout_forward<double>(Device, std::int64_t, double, const PhiloxState&, const double*,
                                      double*, double*);
template void dropout_forward<bfloat16>(Device, std::int64_t, float, const PhiloxState&, const bfloat16*,
                                        bfloat16*, bfloat16*);

}  // namespace kiln::kernels
