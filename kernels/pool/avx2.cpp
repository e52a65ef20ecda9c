// The AVX2 (8 floats a register) pooling kernels: vectorized_pool.hpp instantiated with simd::FloatVector256.
#include "kernels/pool/pool.hpp"
#include "kernels/pool/vectorized_pool.hpp"
#include "kernels/simd/float_vector_avx2.hpp"

namespace kiln::kernels::avx2 {

using Vector = simd::FloatVector256;

void max_pool2d_forward(const Pool2dGeometry& g, const float* x, float* y, std::int64_t* argmax) {
  vectorized::max_pool2d_forward<Vector>(g, x, y, argmax);
}
void max_pool2d_backward(const Pool2dGeometry& g, const float* gy, const std::int64_t* argmax, float* gx) {
  vectorized::max_pool2d_backward<Vector>(g, gy, argmax, gx);
}
void avg_pool2d_forward(const Pool2dGeometry& g, const float* x, float* y) {
  vectorized::avg_pool2d_forward<Vector>(g, x, y);
}
void avg_pool2d_backward(const Pool2dGeometry& g, const float* gy, float* gx) {
  vectorized::avg_pool2d_backward<Vector>(g, gy, gx);
}
void global_avg_pool2d_forward(std::int64_t planes, std::int64_t plane_size, const float* x, float* y) {
  vectorized::global_avg_pool2d_forward<Vector>(planes, plane_size, x, y);
}
void global_avg_pool2d_backward(std::int64_t planes, std::int64_t plane_size, const float* gy, float* gx) {
  vectorized::global_avg_pool2d_backward<Vector>(planes, plane_size, gy, gx);
}

}  // namespace kiln::kernels::avx2
