// The conv2d bias kernels (bias_kernel.hpp) at avx512 width.
#include "kernels/conv2d/bias_kernel.hpp"
#include "kernels/conv2d/conv2d.hpp"
#include "kernels/simd/float_vector_avx512.hpp"

namespace kiln::kernels::avx512 {

void conv2d_add_bias(const Conv2dGeometry& g, const float* bias, float* y) {
  conv2d_bias::add_bias<simd::FloatVector512>(g, bias, y);
}
void conv2d_normalize_outputs(const Conv2dGeometry& g, const OutputNormalization& normalization, float* y) {
  conv2d_bias::normalize_outputs<simd::FloatVector512>(g, normalization, y);
}
void conv2d_backward_bias(const Conv2dGeometry& g, const float* gy, float* gb) {
  conv2d_bias::backward_bias<simd::FloatVector512>(g, gy, gb);
}
void conv2d_backward_bias(const Conv2dGeometry& g, const bfloat16* gy, bfloat16* gb) {
  conv2d_bias::backward_bias<simd::FloatVector512>(g, gy, gb);
}

}  // namespace kiln::kernels::avx512
