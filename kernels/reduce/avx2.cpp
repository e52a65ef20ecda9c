// The AVX2 float Sum: vectorized_reduce.hpp instantiated with simd::FloatVector256.
#include "kernels/reduce/reduce.hpp"
#include "kernels/reduce/vectorized_reduce.hpp"
#include "kernels/simd/float_vector_avx2.hpp"

namespace kiln::kernels::avx2 {

void reduce_sum(const ReduceGeometry& g, const float* x, float* y) {
  vectorized::reduce_sum<simd::FloatVector256>(g, x, y);
}

}  // namespace kiln::kernels::avx2
