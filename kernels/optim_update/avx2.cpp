// The AVX2 (4 doubles a register) optimizer updates: vectorized_optim_update.hpp instantiated with
// simd::FloatVector256.
#include "kernels/optim_update/optim_update.hpp"
#include "kernels/optim_update/vectorized_optim_update.hpp"
#include "kernels/simd/float_vector_avx2.hpp"

namespace kiln::kernels::avx2 {

void sgd_update(std::int64_t n, float* param, const float* grad, float* momentum_buffer, const SgdHyper& h) {
  vectorized::sgd_update<simd::FloatVector256>(n, param, grad, momentum_buffer, h);
}

void adam_update(std::int64_t n, float* param, const float* grad, float* exp_avg, float* exp_avg_sq,
                 const AdamHyper& h) {
  vectorized::adam_update<simd::FloatVector256>(n, param, grad, exp_avg, exp_avg_sq, h);
}

void average_update(std::int64_t n, float* average, const float* weight, double decay) {
  vectorized::average_update<simd::FloatVector256>(n, average, weight, decay);
}

}  // namespace kiln::kernels::avx2
