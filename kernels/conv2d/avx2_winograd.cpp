// Winograd F(2x2, 3x3) and F(4x4, 3x3), at stride 1 or 2 (winograd_kernel.hpp), at avx2 width. The products
// use direct_channels' AVX2 tile, 4 tiles x 2 vectors (16 output channels): 8 ymm accumulators, 2 loads and 4
// broadcasts per 8 FMAs; the weight gradient direct_kernel.hpp's weight tiles (avx2_direct.cpp).
#include "kernels/conv2d/conv2d.hpp"
#include "kernels/conv2d/winograd_kernel.hpp"
#include "kernels/simd/float_vector_avx2.hpp"

namespace kiln::kernels::avx2 {

using Ymm = simd::FloatVector256;

namespace {

template <typename T>
void backward_weight(const Conv2dGeometry& g, const float* gy, const float* x, float* gw) {
  if (g.out_channels <= Ymm::width)
    return winograd::backward_weight<Ymm, T, direct::WeightTile<8, 1>>(g, gy, x, gw);
  winograd::backward_weight<Ymm, T, direct::WeightTile<4, 2>>(g, gy, x, gw);
}

}  // namespace

void winograd_2x2_conv2d_forward(const Conv2dGeometry& g, const float* x, const float* w, const float* bias,
                                 float* y) {
  if (g.stride_h == 2) return winograd::forward<Ymm, winograd::F2x2Stride2<Ymm>, 4, 2>(g, x, w, bias, y);
  winograd::forward<Ymm, winograd::F2x2<Ymm>, 4, 2>(g, x, w, bias, y);
}
void winograd_2x2_conv2d_backward_data(const Conv2dGeometry& g, const float* gy, const float* w, float* gx) {
  if (g.stride_h == 2)
    return winograd::backward_data<Ymm, winograd::F2x2Stride2Data<Ymm>, 4, 2>(g, gy, w, gx);
  winograd::backward_data<Ymm, winograd::F2x2<Ymm>, 4, 2>(g, gy, w, gx);
}
void winograd_2x2_conv2d_backward_weight(const Conv2dGeometry& g, const float* gy, const float* x,
                                         float* gw) {
  if (g.stride_h == 2) return backward_weight<winograd::F2x2Stride2<Ymm>>(g, gy, x, gw);
  backward_weight<winograd::F2x2<Ymm>>(g, gy, x, gw);
}
void winograd_4x4_conv2d_forward(const Conv2dGeometry& g, const float* x, const float* w, const float* bias,
                                 float* y) {
  if (g.stride_h == 2) return winograd::forward<Ymm, winograd::F4x4Stride2<Ymm>, 4, 2>(g, x, w, bias, y);
  winograd::forward<Ymm, winograd::F4x4<Ymm>, 4, 2>(g, x, w, bias, y);
}
void winograd_4x4_conv2d_backward_weight(const Conv2dGeometry& g, const float* gy, const float* x,
                                         float* gw) {
  if (g.stride_h == 2) return backward_weight<winograd::F4x4Stride2<Ymm>>(g, gy, x, gw);
  backward_weight<winograd::F4x4<Ymm>>(g, gy, x, gw);
}
void winograd_4x4_conv2d_backward_data(const Conv2dGeometry& g, const float* gy, const float* w, float* gx) {
  if (g.stride_h == 2)
    return winograd::backward_data<Ymm, winograd::F4x4Stride2Data<Ymm>, 4, 2>(g, gy, w, gx);
  winograd::backward_data<Ymm, winograd::F4x4<Ymm>, 4, 2>(g, gy, w, gx);
}

}  // namespace kiln::kernels::avx2
