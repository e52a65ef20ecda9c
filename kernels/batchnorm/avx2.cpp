// The AVX2 (8 floats a register) batch-normalization kernels: vectorized_batchnorm.hpp instantiated with
// simd::FloatVector256, for float and for bfloat16 activations.
#include "kernels/batchnorm/batchnorm.hpp"
#include "kernels/batchnorm/vectorized_batchnorm.hpp"
#include "kernels/simd/float_vector_avx2.hpp"

namespace kiln::kernels::avx2 {

using Vector = simd::FloatVector256;

template <typename T>
void batchnorm2d_forward_train(const BatchNorm2dGeometry& g, const T* x, const float* gamma,
                               const float* beta, float eps, float momentum, float* running_mean,
                               float* running_var, T* y, float* save_mean, float* save_invstd,
                               const T* residual) {
  vectorized::batchnorm2d_forward_train<Vector>(g, x, gamma, beta, eps, momentum, running_mean, running_var,
                                                y, save_mean, save_invstd, residual);
}

template <typename T>
void batchnorm2d_forward_eval(const BatchNorm2dGeometry& g, const T* x, const float* gamma, const float* beta,
                              const float* running_mean, const float* running_var, float eps, T* y,
                              const T* residual) {
  vectorized::batchnorm2d_forward_eval<Vector>(g, x, gamma, beta, running_mean, running_var, eps, y,
                                               residual);
}

template <typename T>
void batchnorm2d_backward_train(const BatchNorm2dGeometry& g, const T* x, const T* gy, const T* y,
                                const float* gamma, const float* beta, const float* save_mean,
                                const float* save_invstd, T* gx, float* ggamma, float* gbeta,
                                T* gy_through_relu) {
  vectorized::batchnorm2d_backward_train<Vector>(g, x, gy, y, gamma, beta, save_mean, save_invstd, gx, ggamma,
                                                 gbeta, gy_through_relu);
}

template <typename T>
void batchnorm2d_backward_eval(const BatchNorm2dGeometry& g, const T* x, const T* gy, const T* y,
                               const float* gamma, const float* beta, const float* running_mean,
                               const float* running_var, float eps, T* gx, float* ggamma, float* gbeta,
                               T* gy_through_relu) {
  vectorized::batchnorm2d_backward_eval<Vector>(g, x, gy, y, gamma, beta, running_mean, running_var, eps, gx,
                                                ggamma, gbeta, gy_through_relu);
}

#define KILN_INSTANTIATE(T)                                                                                  \
  template void batchnorm2d_forward_train<T>(const BatchNorm2dGeometry&, const T*, const float*,             \
                                             const float*, float, float, float*, float*, T*, float*, float*, \
                                             const T*);                                                      \
  template void batchnorm2d_forward_eval<T>(const BatchNorm2dGeometry&, const T*, const float*,              \
                                            const float*, const float*, const float*, float, T*, const T*);  \
  template void batchnorm2d_backward_train<T>(const BatchNorm2dGeometry&, const T*, const T*, const T*,      \
                                              const float*, const float*, const float*, const float*, T*,    \
                                              float*, float*, T*);                                           \
  template void batchnorm2d_backward_eval<T>(const BatchNorm2dGeometry&, const T*, const T*, const T*,       \
                                             const float*, const float*, const float*, const float*, float,  \
                                             T*, float*, float*, T*);
KILN_INSTANTIATE(float)
KILN_INSTANTIATE(bfloat16)
#undef KILN_INSTANTIATE

}  // namespace kiln::kernels::avx2
