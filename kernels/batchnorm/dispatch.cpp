// The single dispatch point for the batch-normalization family: every caller goes through these functions,
// and only here is an implementation chosen. float runs the AVX-512 or AVX2 kernels when cpu_level() allows;
// double (gradient checks only) and the Reference level run the reference kernels. A CUDA device runs the
// CUDA kernels (cuda_batchnorm.cu), float and double.
#include <type_traits>

#include "kernels/batchnorm/batchnorm.hpp"
#include "kernels/cpu_level.hpp"

namespace kiln::kernels {

template <typename T>
void batchnorm2d_forward_train(Device device, const BatchNorm2dGeometry& g, const T* x, const T* gamma,
                               const T* beta, T eps, T momentum, T* running_mean, T* running_var, T* y,
                               T* save_mean, T* save_invstd) {
#ifdef KILN_WITH_CUDA
  if (device.is_cuda())
    return cuda::batchnorm2d_forward_train(device, g, x, gamma, beta, eps, momentum, running_mean,
                                           running_var, y, save_mean, save_invstd);
#endif
  require_cpu(device, "batchnorm2d_forward_train");
  if constexpr (std::is_same_v<T, float>) {
    switch (cpu_level()) {
      case CpuLevel::Avx512:
        return avx512::batchnorm2d_forward_train(g, x, gamma, beta, eps, momentum, running_mean, running_var,
                                                 y, save_mean, save_invstd);
      case CpuLevel::Avx2:
        return avx2::batchnorm2d_forward_train(g, x, gamma, beta, eps, momentum, running_mean, running_var, y,
                                               save_mean, save_invstd);
      case CpuLevel::Reference:
        break;
    }
  }
  reference::batchnorm2d_forward_train(g, x, gamma, beta, eps, momentum, running_mean, running_var, y,
                                       save_mean, save_invstd);
}

template <typename T>
void batchnorm2d_forward_eval(Device device, const BatchNorm2dGeometry& g, const T* x, const T* gamma,
                              const T* beta, const T* running_mean, const T* running_var, T eps, T* y) {
#ifdef KILN_WITH_CUDA
  if (device.is_cuda())
    return cuda::batchnorm2d_forward_eval(g, x, gamma, beta, running_mean, running_var, eps, y);
#endif
  require_cpu(device, "batchnorm2d_forward_eval");
  if constexpr (std::is_same_v<T, float>) {
    switch (cpu_level()) {
      case CpuLevel::Avx512:
        return avx512::batchnorm2d_forward_eval(g, x, gamma, beta, running_mean, running_var, eps, y);
      case CpuLevel::Avx2:
        return avx2::batchnorm2d_forward_eval(g, x, gamma, beta, running_mean, running_var, eps, y);
      case CpuLevel::Reference:
        break;
    }
  }
  reference::batchnorm2d_forward_eval(g, x, gamma, beta, running_mean, running_var, eps, y);
}

template <typename T>
void batchnorm2d_backward_train(Device device, const BatchNorm2dGeometry& g, const T* x, const T* gy, const T* y,
                                const T* gamma, const T* save_mean, const T* save_invstd, T* gx, T* ggamma,
                                T* gbeta) {
#ifdef KILN_WITH_CUDA
  if (device.is_cuda())
    return cuda::batchnorm2d_backward_train(device, g, x, gy, y, gamma, save_mean, save_invstd, gx, ggamma,
                                            gbeta);
#endif
  require_cpu(device, "batchnorm2d_backward_train");
  if constexpr (std::is_same_v<T, float>) {
    switch (cpu_level()) {
      case CpuLevel::Avx512:
        return avx512::batchnorm2d_backward_train(g, x, gy, y, gamma, save_mean, save_invstd, gx, ggamma, gbeta);
      case CpuLevel::Avx2:
        return avx2::batchnorm2d_backward_train(g, x, gy, y, gamma, save_mean, save_invstd, gx, ggamma, gbeta);
      case CpuLevel::Reference:
        break;
    }
  }
  reference::batchnorm2d_backward_train(g, x, gy, y, gamma, save_mean, save_invstd, gx, ggamma, gbeta);
}

template <typename T>
void batchnorm2d_backward_eval(Device device, const BatchNorm2dGeometry& g, const T* x, const T* gy, const T* y,
                               const T* gamma, const T* running_mean, const T* running_var, T eps, T* gx,
                               T* ggamma, T* gbeta) {
#ifdef KILN_WITH_CUDA
  if (device.is_cuda())
    return cuda::batchnorm2d_backward_eval(device, g, x, gy, y, gamma, running_mean, running_var, eps, gx,
                                           ggamma, gbeta);
#endif
  require_cpu(device, "batchnorm2d_backward_eval");
  if constexpr (std::is_same_v<T, float>) {
    switch (cpu_level()) {
      case CpuLevel::Avx512:
        return avx512::batchnorm2d_backward_eval(g, x, gy, y, gamma, running_mean, running_var, eps, gx, ggamma,
                                                 gbeta);
      case CpuLevel::Avx2:
        return avx2::batchnorm2d_backward_eval(g, x, gy, y, gamma, running_mean, running_var, eps, gx, ggamma,
                                               gbeta);
      case CpuLevel::Reference:
        break;
    }
  }
  reference::batchnorm2d_backward_eval(g, x, gy, y, gamma, running_mean, running_var, eps, gx, ggamma, gbeta);
}

template void batchnorm2d_forward_train<float>(Device, const BatchNorm2dGeometry&, const float*, const float*,
                                               const float*, float, float, float*, float*, float*, float*,
                                               float*);
template void batchnorm2d_forward_eval<float>(Device, const BatchNorm2dGeometry&, const float*, const float*,
                                              const float*, const float*, const float*, float, float*);
template void batchnorm2d_backward_train<float>(Device, const BatchNorm2dGeometry&, const float*,
                                                const float*, const float*, const float*, const float*, const float*,
                                                float*, float*, float*);
template void batchnorm2d_backward_eval<float>(Device, const BatchNorm2dGeometry&, const float*, const float*, const float*,
                                               const float*, const float*, const float*, float, float*,
                                               float*, float*);

template void batchnorm2d_forward_train<double>(Device, const BatchNorm2dGeometry&, const double*,
                                                const double*, const double*, double, double, double*,
                                                double*, double*, double*, double*);
template void batchnorm2d_forward_eval<double>(Device, const BatchNorm2dGeometry&, const double*,
                                               const double*, const double*, const double*, const double*,
                                               double, double*);
template void batchnorm2d_backward_train<double>(Device, const BatchNorm2dGeometry&, const double*,
                                                 const double*, const double*, const double*, const double*, const double*,
                                                 double*, double*, double*);
template void batchnorm2d_backward_eval<double>(Device, const BatchNorm2dGeometry&, const double*,
                                                const double*, const double*, const double*, const double*, const double*,
                                                double, double*, double*, double*);

}  // namespace kiln::kernels
