// Winograd F(2x2, 3x3) (winograd_kernel.hpp) at avx512 width. The products use direct_channels' tiles:
//   wide     8 tiles x 2 vectors (32 output channels): 16 zmm accumulators, 2 loads and 8 broadcasts per 16
//            FMAs
//   narrow   16 tiles x 1 vector, for at most 16 output channels, which would leave half of each wide panel
//            empty
#include "kernels/conv2d/conv2d.hpp"
#include "kernels/conv2d/winograd_kernel.hpp"
#include "kernels/simd/float_vector_avx512.hpp"

namespace kiln::kernels::avx512 {

using Zmm = simd::FloatVector512;

void winograd_conv2d_forward(const Conv2dGeometry& g, const float* x, const float* w, const float* bias,
                             float* y) {
  if (g.out_channels <= Zmm::width) return winograd::forward<Zmm, 16, 1>(g, x, w, bias, y);
  winograd::forward<Zmm, 8, 2>(g, x, w, bias, y);
}
void winograd_conv2d_backward_data(const Conv2dGeometry& g, const float* gy, const float* w, float* gx) {
  // The transposed convolution's outputs are the input channels.
  if (g.in_channels <= Zmm::width) return winograd::backward_data<Zmm, 16, 1>(g, gy, w, gx);
  winograd::backward_data<Zmm, 8, 2>(g, gy, w, gx);
}

void winograd_conv2d_backward_weight(const Conv2dGeometry& g, const float* gy, const float* x, float* gw) {
  if (g.out_channels <= Zmm::width)
    return winograd::backward_weight<Zmm, direct::WeightTile<8, 1>>(g, gy, x, gw);
  winograd::backward_weight<Zmm, direct::WeightTile<6, 2>>(g, gy, x, gw);
}

}  // namespace kiln::kernels::avx512
