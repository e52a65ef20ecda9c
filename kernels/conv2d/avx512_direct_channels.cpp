// The channel-vectorized direct convolution (direct_channels_kernel.hpp) at avx512 width. Tiles:
//   wide     8 positions of an output row x 2 vectors (32 output channels): 16 zmm accumulators, 2 weight
//            vectors and 1 broadcast input, 16 FMAs for 10 loads per k, as avx512_direct.cpp's tile
//   narrow   16 positions x 1 vector, for at most 16 output channels per group, which would leave half of
//            each wide panel empty: 1 weight vector and 16 broadcasts per 16 FMAs
#include "kernels/conv2d/conv2d.hpp"
#include "kernels/conv2d/direct_channels_kernel.hpp"
#include "kernels/simd/float_vector_avx512.hpp"

namespace kiln::kernels::avx512 {

using Zmm = simd::FloatVector512;

void direct_channels_conv2d_forward(const Conv2dGeometry& g, const float* x, const float* w,
                                    const float* bias, float* y) {
  if (g.out_channels_per_group() <= Zmm::width) return direct_channels::forward<Zmm, 16, 1>(g, x, w, bias, y);
  direct_channels::forward<Zmm, 8, 2>(g, x, w, bias, y);
}
void direct_channels_conv2d_backward_data(const Conv2dGeometry& g, const float* gy, const float* w,
                                          float* gx) {
  // The transposed convolution's outputs are the input channels.
  if (g.in_channels_per_group() <= Zmm::width)
    return direct_channels::backward_data<Zmm, 16, 1>(g, gy, w, gx);
  direct_channels::backward_data<Zmm, 8, 2>(g, gy, w, gx);
}

}  // namespace kiln::kernels::avx512
