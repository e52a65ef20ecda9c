// The channel-vectorized direct convolution (direct_channels_kernel.hpp) at avx2 width. Tile: 4 positions of
// an output row x 2 vectors (16 output channels): 8 ymm accumulators, enough independent FMA chains for two
// FMA pipes of latency 4, and 6 loads per 8 FMAs. Measured against 6 x 2 (a row of 8 then takes two tiles
// that overlap by 4) and 8 x 1 (9 loads per 8 FMAs), 2 threads, batch 128, forward ms: 64->64 at 8x8
// 4.4 / 6.8 / 6.0, 32->32 at 16x16 5.2-7.0 / 5.8 / 5.8 (a noisy machine; 4 x 2 won every repeat on 8x8).
#include "kernels/conv2d/conv2d.hpp"
#include "kernels/conv2d/direct_channels_kernel.hpp"
#include "kernels/simd/float_vector_avx2.hpp"

namespace kiln::kernels::avx2 {

using Ymm = simd::FloatVector256;

void direct_channels_conv2d_forward(const Conv2dGeometry& g, const float* x, const float* w,
                                    const float* bias, float* y) {
  direct_channels::forward<Ymm, 4, 2>(g, x, w, bias, y);
}
void direct_channels_conv2d_backward_data(const Conv2dGeometry& g, const float* gy, const float* w,
                                          float* gx) {
  direct_channels::backward_data<Ymm, 4, 2>(g, gy, w, gx);
}

}  // namespace kiln::kernels::avx2
