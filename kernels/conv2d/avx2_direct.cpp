// The direct stride-1 convolution (direct_kernel.hpp) at avx2 width. Tiles, within the 16 ymm registers:
//   forward          6 output channels x 2 vectors (16 positions): 12 accumulators, 2 strip vectors and 1
//                    broadcast weight, the shape of the AVX2 GEMM micro-kernel
//   backward-weight  8 taps x 1 vector of output channels where C_out fits one vector (8 accumulators,
//                    1 gy vector, 1 broadcast tap); else 6 taps x 2 vectors (16 channels): 12 accumulators,
//                    2 gy vectors and 1 broadcast, 15 of the 16 registers, 2 loads and 6 broadcasts per 12
//                    FMAs. It was 4 taps x 2: 8 accumulators, exactly the FMAs two pipes of latency 4 keep
//                    in flight, with no slack for a late load. At AVX2 on a Xeon, 2 threads, ms,
//                    alternating builds: 3->16 at 32x32, batch 128, 0.97-1.07 -> 0.88-0.91; 16->16 3.60-3.74
//                    -> 3.31-3.35; 16->32 stride 2 2.06-2.10 -> 1.92-1.93; a 5x5 stride-2 32->64, batch 64,
//                    9.1-10.0 -> 8.8-8.9; the 7x7 stride-2 stem at 96x96, batch 64, 15.7-16.2 -> 15.3-15.6
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
  direct::backward_weight<Ymm, direct::WeightTile<8, 1>, direct::WeightTile<6, 2>>(g, gy, x, gw);
}

}  // namespace kiln::kernels::avx2
