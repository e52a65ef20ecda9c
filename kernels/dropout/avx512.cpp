// The AVX-512 (16 floats a register) dropout kernel: vectorized_dropout.hpp instantiated with
// simd::FloatVector512.
#include "kernels/dropout/dropout.hpp"
#include "kernels/dropout/vectorized_dropout.hpp"
#include "kernels/simd/float_vector_avx512.hpp"

namespace kiln::kernels::avx512 {

void dropout_forward(std::int64_t n, float p, const PhiloxState& state, const float* x, float* y,
                     float* mask) {
  vectorized::dropout_forward<simd::FloatVector512>(n, p, state, x, y, mask);
}

}  // namespace kiln::kernels::avx512
