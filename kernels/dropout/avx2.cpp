// The AVX2 (8 floats a register) dropout kernel: vectorized_dropout.hpp instantiated with
// simd::FloatVector256.
#include "kernels/dropout/dropout.hpp"
#include "kernels/dropout/vectorized_dropout.hpp"
#include "kernels/simd/float_vector_avx2.hpp"

namespace kiln::kernels::avx2 {

void dropout_forward(std::int64_t n, float p, const PhiloxState& state, const float* x, float* y,
                     float* mask) {
  vectorized::dropout_forward<simd::FloatVector256>(n, p, state, x, y, mask);
}

}  // namespace kiln::kernels::avx2
