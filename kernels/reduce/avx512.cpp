// The AVX-512 float Sum: vectorized_reduce.hpp instantiated with simd::FloatVector512.
#include "kernels/reduce/reduce.hpp"
#include "kernels/reduce/vectorized_reduce.hpp"
#include "kernels/simd/float_vector_avx512.hpp"

namespace kiln::kernels::avx512 {

void reduce_sum(const ReduceGeometry& g, const float* x, float* y) {
  vectorized::reduce_sum<simd::FloatVector512>(g, x, y);
}

}  // namespace kiln::kernels::avx512
