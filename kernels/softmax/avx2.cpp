// The AVX2 (8 floats a register) softmax and log-softmax kernels: vectorized_softmax.hpp instantiated with
// simd::FloatVector256.
#include "kernels/simd/float_vector_avx2.hpp"
#include "kernels/softmax/softmax.hpp"
#include "kernels/softmax/vectorized_softmax.hpp"

namespace kiln::kernels::avx2 {

using Vector = simd::FloatVector256;

void softmax_forward(const SoftmaxGeometry& g, const float* x, float* y) {
  vectorized::softmax_forward<Vector>(g, x, y);
}

void softmax_backward(const SoftmaxGeometry& g, const float* y, const float* gy, float* gx) {
  vectorized::softmax_backward<Vector>(g, y, gy, gx);
}

void log_softmax_forward(const SoftmaxGeometry& g, const float* x, float* y) {
  vectorized::log_softmax_forward<Vector>(g, x, y);
}

void log_softmax_backward(const SoftmaxGeometry& g, const float* y, const float* gy, float* gx) {
  vectorized::log_softmax_backward<Vector>(g, y, gy, gx);
}

}  // namespace kiln::kernels::avx2
