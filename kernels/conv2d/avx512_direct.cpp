// The direct stride-1 convolution (direct_kernel.hpp) at avx512 width. Tiles:
//   forward          8 output channels x 2 vectors (32 positions): 16 zmm accumulators, 2 strip vectors
//                    and 1 broadcast weight, the shape of the GEMM's micro-kernel (kernels/gemm/blocking.hpp)
//   backward-weight  8 taps x 1 vector of output channels where C_out fits one vector (8 accumulators,
//                    1 gy vector, 1 broadcast tap); else 12 taps x 2 vectors (32 channels): 24 accumulators,
//                    2 gy vectors and 1 broadcast, 2 loads and 12 broadcasts per 24 FMAs
// The wide weight tile was 6 taps x 2 vectors: each tap's strip pointer stepped once per output, so its loop
// issued 8 pointer and counter updates per 12 FMAs, about as many instructions a cycle as the core retires.
// With 12 taps GCC steps one index for all the taps' reads (base + index addressing): about 7 other
// instructions per 24 FMAs. A Xeon with AMX, 2 threads, ms, 6 taps vs 12 (alternating builds):
// 16->32 3x3 stride 2 at 32x32, batch 128, 1.68-1.88 vs 1.48-1.63; 32->64 at 16x16 1.60-1.81 vs 1.46-1.48;
// the 7x7 stride-2 stem 3->64 at 96x96, batch 64, 11.4-12.0 vs 10.6-11.3 (at 64x64, batch 128, alike:
// 10.1-10.4 vs 10.3-10.5; its 147 taps make 13 tiles of 12, 9 rows spare); 5x5 stride-2 32->64 at 32x32,
// batch 64, 7.2-7.5 vs 5.9-6.4. 10 and 14 taps measured alike; 6 taps x 4 vectors lost at 32 channels (half
// its accumulators empty), 8 x 3 everywhere.
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
  direct::backward_weight<Zmm, direct::WeightTile<8, 1>, direct::WeightTile<12, 2>>(g, gy, x, gw);
}

}  // namespace kiln::kernels::avx512
