// The direct stride-1 convolution (direct_kernel.hpp) at avx2 width. Tiles, within the 16 ymm registers:
//   forward          6 output channels x 2 vectors (16 positions): 12 accumulators, 2 strip vectors and 1
//                    broadcast weight, the shape of the AVX2 GEMM micro-kernel
//   backward-weight  8 taps x 1 vector of output channels where C_out fits one vector (8 accumulators,
//                    1 gy vector, 1 broadcast tap); else 4 taps x 2 vectors (16 channels): 8 accumulators,
//                    2 gy vectors and 1 broadcast, 2 loads and 4 broadcasts per 8 FMAs
#include "kernels/conv2d/conv2d.hpp"
#include "kernels/conv2d/direct_kernel.hpp"
#include "kernels/simd/float_vector_avx2.hpp"

namespace kiln::kernels::avx2 {

using Ymm = simd::FloatVector256;

void direct_conv2d_forward(const Conv2dGeometry& g, const float* x, const float* w, const float* bias,
                           float* y) {
  direct::forward<Ymm, 6, 2>(g, x, w, bias, y);
}
void direct_conv2d_backward_data(const Conv2dGeometry& g, const float* gy, const float* w, float* gx) {
  direct::backward_data<Ymm, 6, 2>(g, gy, w, gx);
}
void direct_conv2d_backward_weight(const Conv2dGeometry& g, const float* gy, const float* x, float* gw) {
  direct::backward_weight<Ymm, direct::WeightTile<8, 1>, direct::WeightTile<4, 2>>(g, gy, x, gw);
}

}  // namespace kiln::kernels::avx2
