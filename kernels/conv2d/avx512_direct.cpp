// The direct stride-1 convolution (direct_kernel.hpp) at avx512 width. Tiles:
//   forward          8 output channels x 2 vectors (32 positions): 16 zmm accumulators, 2 strip vectors
//                    and 1 broadcast weight, the shape of the GEMM's micro-kernel (kernels/gemm/blocking.hpp)
//   backward-weight  8 taps x 1 vector of output channels where C_out fits one vector (8 accumulators,
//                    1 gy vector, 1 broadcast tap); else 6 taps x 2 vectors (32 channels): 12 accumulators,
//                    2 gy vectors and 1 broadcast, 2 loads and 6 broadcasts per 12 FMAs
#include "kernels/conv2d/conv2d.hpp"
#include "kernels/conv2d/direct_kernel.hpp"
#include "kernels/simd/float_vector_avx512.hpp"

namespace kiln::kernels::avx512 {

using Zmm = simd::FloatVector512;

void direct_conv2d_forward(const Conv2dGeometry& g, const float* x, const float* w, const float* bias,
                           float* y) {
  direct::forward<Zmm, 8, 2>(g, x, w, bias, y);
}
void direct_conv2d_backward_data(const Conv2dGeometry& g, const float* gy, const float* w, float* gx) {
  direct::backward_data<Zmm, 8, 2>(g, gy, w, gx);
}
void direct_conv2d_backward_weight(const Conv2dGeometry& g, const float* gy, const float* x, float* gw) {
  direct::backward_weight<Zmm, direct::WeightTile<8, 1>, direct::WeightTile<6, 2>>(g, gy, x, gw);
}

}  // namespace kiln::kernels::avx512
