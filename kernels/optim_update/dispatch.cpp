// The single dispatch point for the optimizer updates: every optimizer comes through here, and this is
// the only place that picks an implementation: float runs the AVX-512 / AVX2 updates when cpu_level()
// allows, double and the Reference level the reference kernel; CUDA versions plug in here.
#include <type_traits>

#include "core/error.hpp"
#include "kernels/cpu_level.hpp"
#include "kernels/optim_update/optim_update.hpp"

namespace kiln::kernels {

template <typename T>
void sgd_update(Device device, std::int64_t n, T* param, const T* grad, T* momentum_buffer,
                const SgdHyper& h) {
  require_cpu(device, "sgd_update");
  KILN_CHECK(h.momentum == 0.0 || momentum_buffer != nullptr, "sgd_update: momentum ", h.momentum,
             " needs a momentum buffer");
  if constexpr (std::is_same_v<T, float>) {
    switch (cpu_level()) {
      case CpuLevel::Avx512:
        return avx512::sgd_update(n, param, grad, momentum_buffer, h);
      case CpuLevel::Avx2:
        return avx2::sgd_update(n, param, grad, momentum_buffer, h);
      case CpuLevel::Reference:
        break;
    }
  }
  reference::sgd_update(n, param, grad, momentum_buffer, h);
}

template <typename T>
void adam_update(Device device, std::int64_t n, T* param, const T* grad, T* exp_avg, T* exp_avg_sq,
                 const AdamHyper& h) {
  require_cpu(device, "adam_update");
  KILN_CHECK(h.step >= 1, "adam_update: step is ", h.step, " but counts from 1");
  if constexpr (std::is_same_v<T, float>) {
    switch (cpu_level()) {
      case CpuLevel::Avx512:
        return avx512::adam_update(n, param, grad, exp_avg, exp_avg_sq, h);
      case CpuLevel::Avx2:
        return avx2::adam_update(n, param, grad, exp_avg, exp_avg_sq, h);
      case CpuLevel::Reference:
        break;
    }
  }
  reference::adam_update(n, param, grad, exp_avg, exp_avg_sq, h);
}

template void sgd_update<float>(Device, std::int64_t, float*, const float*, float*, const SgdHyper&);
template void sgd_update<double>(Device, std::int64_t, double*, const double*, double*, const SgdHyper&);
template void adam_update<float>(Device, std::int64_t, float*, const float*, float*, float*,
                                 const AdamHyper&);
template void adam_update<double>(Device, std::int64_t, double*, const double*, double*, double*,
                                  const AdamHyper&);

}  // namespace kiln::kernels
