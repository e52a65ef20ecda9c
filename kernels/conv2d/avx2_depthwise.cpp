// The direct depthwise kernels (depthwise_kernel.hpp, depthwise_channels_kernel.hpp) at avx2 width.
#include "kernels/conv2d/conv2d.hpp"
#include "kernels/conv2d/depthwise_channels_kernel.hpp"
#include "kernels/conv2d/depthwise_kernel.hpp"
#include "kernels/simd/float_vector_avx2.hpp"

namespace kiln::kernels::avx2 {

void depthwise_conv2d_forward(const Conv2dGeometry& g, const float* x, const float* w, const float* bias,
                              float* y, const OutputNormalization* normalization,
                              const InputNormalization* input) {
  depthwise::forward<simd::FloatVector256>(g, x, w, bias, y, normalization, input);
}
void depthwise_conv2d_backward_data(const Conv2dGeometry& g, const float* gy, const float* w, float* gx) {
  depthwise::backward_data<simd::FloatVector256>(g, gy, w, gx);
}
void depthwise_conv2d_backward_weight(const Conv2dGeometry& g, const float* gy, const float* x, float* gw,
                                      const InputNormalization* input) {
  depthwise::backward_weight<simd::FloatVector256>(g, gy, x, gw, input);
}

void depthwise_channels_conv2d_forward(const Conv2dGeometry& g, const float* x, const float* w,
                                       const float* bias, float* y, const InputNormalization* input) {
  depthwise_channels::forward<simd::FloatVector256>(g, x, w, bias, y, input);
}
void depthwise_channels_conv2d_backward_data(const Conv2dGeometry& g, const float* gy, const float* w,
                                             float* gx) {
  depthwise_channels::backward_data<simd::FloatVector256>(g, gy, w, gx);
}
void depthwise_channels_conv2d_backward_weight(const Conv2dGeometry& g, const float* gy, const float* x,
                                               float* gw, const InputNormalization* input) {
  depthwise_channels::backward_weight<simd::FloatVector256>(g, gy, x, gw, input);
}

void depthwise_channels_conv2d_forward(const Conv2dGeometry& g, const bfloat16* x, const float* w,
                                       const float* bias, bfloat16* y) {
  depthwise_channels::forward<simd::FloatVector256>(g, x, w, bias, y);
}
void depthwise_channels_conv2d_backward_data(const Conv2dGeometry& g, const bfloat16* gy, const float* w,
                                             bfloat16* gx) {
  depthwise_channels::backward_data<simd::FloatVector256>(g, gy, w, gx);
}
void depthwise_channels_conv2d_backward_weight(const Conv2dGeometry& g, const bfloat16* gy, const bfloat16* x,
                                               float* gw) {
  depthwise_channels::backward_weight<simd::FloatVector256>(g, gy, x, gw);
}

}  // namespace kiln::kernels::avx2
