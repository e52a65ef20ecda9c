// The AVX2 (8 floats a register) batch-normalization kernels: vectorized_batchnorm.hpp instantiated with
// simd::FloatVector256.
#include "kernels/batchnorm/batchnorm.hpp"
#include "kernels/batchnorm/vectorized_batchnorm.hpp"
#include "kernels/simd/float_vector_avx2.hpp"

namespace kiln::kernels::avx2 {

using Vector = simd::FloatVector256;

void batchnorm2d_forward_train(const BatchNorm2dGeometry& g, const float* x, const float* gamma,
                               const float* beta, float eps, float momentum, float* running_mean,
                               float* running_var, float* y, float* save_mean, float* save_invstd) {
  vectorized::batchnorm2d_forward_train<Vector>(g, x, gamma, beta, eps, momentum, running_mean, running_var,
                                                y, save_mean, save_invstd);
}

void batchnorm2d_forward_eval(const BatchNorm2dGeometry& g, const float* x, const float* gamma,
                              const float* beta, const float* running_mean, const float* running_var,
                              float eps, float* y) {
  vectorized::batchnorm2d_forward_eval<Vector>(g, x, gamma, beta, running_mean, running_var, eps, y);
}

void batchnorm2d_backward_train(const BatchNorm2dGeometry& g, const float* x, const float* gy, const float* y,
                                const float* gamma, const float* save_mean, const float* save_invstd,
                                float* gx, float* ggamma, float* gbeta) {
  vectorized::batchnorm2d_backward_train<Vector>(g, x, gy, y, gamma, save_mean, save_invstd, gx, ggamma, gbeta);
}

void batchnorm2d_backward_eval(const BatchNorm2dGeometry& g, const float* x, const float* gy, const float* y,
                               const float* gamma, const float* running_mean, const float* running_var,
                               float eps, float* gx, float* ggamma, float* gbeta) {
  vectorized::batchnorm2d_backward_eval<Vector>(g, x, gy, y, gamma, running_mean, running_var, eps, gx, ggamma,
                                                gbeta);
}

}  // namespace kiln::kernels::avx2
