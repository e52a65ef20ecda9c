// The single dispatch point for the optimizer updates: every optimizer (and --ema's average) comes through
// here, and this is the only place that picks an implementation: float runs the AVX-512 / AVX2 updates when
// cpu_level() allows, double and the Reference level the reference kernel, a CUDA device the CUDA kernels
// (cuda_optim_update.cu) in a build with CUDA. The multi-tensor updates (*_many) loop over the per-tensor
// ones on the CPU, and update many tensors per launch on CUDA.
#include <span>
#include <type_traits>

#include "core/error.hpp"
#include "core/profiler.hpp"
#include "kernels/cpu_level.hpp"
#include "kernels/optim_update/optim_update.hpp"

namespace kiln::kernels {

template <typename T>
void sgd_update(Device device, std::int64_t n, T* param, const T* grad, T* momentum_buffer,
                const SgdHyper& h) {
  profiler::Scope profile("sgd_update", device, dtype_of_v<T>);
  KILN_CHECK(h.momentum == 0.0 || n == 0 || momentum_buffer != nullptr, "sgd_update: momentum ", h.momentum,
             " needs a momentum buffer");
#ifdef KILN_WITH_CUDA
  if (device.is_cuda()) {
    const SgdSlice<T> slice{param, grad, momentum_buffer, n};
    return cuda::sgd_update_many<T>(h, std::span(&slice, 1));
  }
#endif
  require_cpu(device, "sgd_update");
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
  profiler::Scope profile("adam_update", device, dtype_of_v<T>);
  KILN_CHECK(h.step >= 1, "adam_update: step is ", h.step, " but counts from 1");
#ifdef KILN_WITH_CUDA
  if (device.is_cuda()) {
    const AdamSlice<T> slice{param, grad, exp_avg, exp_avg_sq, n};
    return cuda::adam_update_many<T>(h, std::span(&slice, 1));
  }
#endif
  require_cpu(device, "adam_update");
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

template <typename T>
void sgd_update_many(Device device, const SgdHyper& h, std::span<const SgdSlice<T>> slices) {
  profiler::Scope profile("sgd_update_many", device, dtype_of_v<T>);
  for (const SgdSlice<T>& slice : slices) {  // an empty tensor's buffer may be null, as its data is
    KILN_CHECK(h.momentum == 0.0 || slice.n == 0 || slice.momentum_buffer != nullptr,
               "sgd_update_many: momentum ", h.momentum,
               " needs a momentum buffer for every non-empty tensor");
  }
#ifdef KILN_WITH_CUDA
  if (device.is_cuda()) return cuda::sgd_update_many(h, slices);
#endif
  require_cpu(device, "sgd_update_many");
  for (const SgdSlice<T>& slice : slices) {
    sgd_update(device, slice.n, slice.param, slice.grad, slice.momentum_buffer, h);
  }
}

template <typename T>
void adam_update_many(Device device, const AdamHyper& h, std::span<const AdamSlice<T>> slices) {
  profiler::Scope profile("adam_update_many", device, dtype_of_v<T>);
  KILN_CHECK(h.step >= 1, "adam_update_many: step is ", h.step, " but counts from 1");
#ifdef KILN_WITH_CUDA
  if (device.is_cuda()) return cuda::adam_update_many(h, slices);
#endif
  require_cpu(device, "adam_update_many");
  for (const AdamSlice<T>& slice : slices) {
    adam_update(device, slice.n, slice.param, slice.grad, slice.exp_avg, slice.exp_avg_sq, h);
  }
}

template <typename T>
void average_update(Device device, std::int64_t n, T* average, const T* weight, double decay) {
  profiler::Scope profile("average_update", device, dtype_of_v<T>);
  KILN_CHECK(decay >= 0.0 && decay <= 1.0, "average_update: decay ", decay, " is outside [0, 1]");
#ifdef KILN_WITH_CUDA
  if (device.is_cuda()) {
    const AverageSlice<T> slice{average, weight, n};
    return cuda::average_update_many<T>(decay, std::span(&slice, 1));
  }
#endif
  require_cpu(device, "average_update");
  if constexpr (std::is_same_v<T, float>) {
    switch (cpu_level()) {
      case CpuLevel::Avx512:
        return avx512::average_update(n, average, weight, decay);
      case CpuLevel::Avx2:
        return avx2::average_update(n, average, weight, decay);
      case CpuLevel::Reference:
        break;
    }
  }
  reference::average_update(n, average, weight, decay);
}

template <typename T>
void average_update_many(Device device, double decay, std::span<const AverageSlice<T>> slices) {
  profiler::Scope profile("average_update_many", device, dtype_of_v<T>);
  KILN_CHECK(decay >= 0.0 && decay <= 1.0, "average_update_many: decay ", decay, " is outside [0, 1]");
#ifdef KILN_WITH_CUDA
  if (device.is_cuda()) return cuda::average_update_many(decay, slices);
#endif
  require_cpu(device, "average_update_many");
  for (const AverageSlice<T>& slice : slices)
    average_update(device, slice.n, slice.average, slice.weight, decay);
}

template void sgd_update<float>(Device, std::int64_t, float*, const float*, float*, const SgdHyper&);
template void sgd_update<double>(Device, std::int64_t, double*, const double*, double*, const SgdHyper&);
template void adam_update<float>(Device, std::int64_t, float*, const float*, float*, float*,
                                 const AdamHyper&);
template void adam_update<double>(Device, std::int64_t, double*, const double*, double*, double*,
                                  const AdamHyper&);

template void sgd_update_many<float>(Device, const SgdHyper&, std::span<const SgdSlice<float>>);
template void sgd_update_many<double>(Device, const SgdHyper&, std::span<const SgdSlice<double>>);
template void adam_update_many<float>(Device, const AdamHyper&, std::span<const AdamSlice<float>>);
template void adam_update_many<double>(Device, const AdamHyper&, std::span<const AdamSlice<double>>);
template void average_update<float>(Device, std::int64_t, float*, const float*, double);
template void average_update<double>(Device, std::int64_t, double*, const double*, double);
template void average_update_many<float>(Device, double, std::span<const AverageSlice<float>>);
template void average_update_many<double>(Device, double, std::span<const AverageSlice<double>>);

}  // namespace kiln::kernels
