// Winograd F(2x2, 3x3) and F(4x4, 3x3), at stride 1 or 2 (winograd_kernel.hpp), at avx2 width. The products
// use a tile of 6 tiles x 2 vectors (16 output channels): 12 ymm accumulators, 2 loads and 6 broadcasts per
// 12 FMAs, 15 of the 16 registers, the shape of the AVX2 GEMM's micro-kernel. It was 4 x 2, direct_channels'
// AVX2 tile, whose 8 accumulators are exactly the FMAs two pipes of latency 4 keep in flight, with no slack
// for a late load. Measured on a Xeon at AVX2 (KILN_CPU_LEVEL=avx2), 2 threads, batch 128, F(4x4, 3x3), ms,
// forward / backward-data, 4 x 2 vs 6 x 2: 16 -> 16 at 32x32 2.12-2.13 / 2.07 vs 1.95-1.96 / 2.01-2.03;
// 32 -> 32 at 16x16 1.34-1.35 / 1.35-1.36 vs 1.25-1.30 / 1.29-1.31; 64 -> 64 at 8x8 1.17-1.20 / 1.22-1.23
// vs 1.13-1.16 / 1.18-1.21. The bits are the same: each output sums its input channels in order whatever
// the tile's shape. The weight gradient takes direct_kernel.hpp's weight tiles, whose taps are input channels
// here: 6 x 2 past 16 input channels, 4 x 2 up to 16, where 6 would compute 18 rows for 16 channels (16 -> 16
// at 32x32 2.04-2.21 -> 2.23-2.24 ms). 4 x 2 vs 6 x 2 past 16, ms: 32 -> 32 at 16x16 1.97-2.00 vs 1.94,
// 64 -> 64 at 8x8 1.58-1.59 vs 1.44-1.47, 128 -> 128 at 8x8 6.46-6.54 vs 4.92-4.99, F(2x2, 3x3)'s 24 -> 48
// at 16x16 2.79-2.87 vs 2.32-2.46. Each output channel's sum runs over the tiles in order whatever the tile,
// so the bits are the same.
//
// Each entry point takes float activations, or bfloat16 ones (float weights and weight gradient), which the
// kernel widens and rounds in its own copies (winograd_kernel.hpp, "bfloat16 activations").
#include "kernels/conv2d/conv2d.hpp"
#include "kernels/conv2d/winograd_kernel.hpp"
#include "kernels/simd/float_vector_avx2.hpp"

namespace kiln::kernels::avx2 {
namespace {

// The product tiles (the top), for a transform trait T and activations A.
struct Tiles {
  using V = simd::FloatVector256;
  template <typename T, typename A>
  static void forward(const Conv2dGeometry& g, const A* x, const float* w, const float* bias, A* y,
                      const OutputNormalization* normalization, const InputNormalization* input) {
    winograd::forward<V, T, 6, 2>(g, x, w, bias, y, normalization, input);
  }
  template <typename T, typename A>
  static void backward_data(const Conv2dGeometry& g, const A* gy, const float* w, A* gx, bool accumulate) {
    winograd::backward_data<V, T, 6, 2>(g, gy, w, gx, accumulate);
  }
  template <typename T, typename A>
  static void backward_weight(const Conv2dGeometry& g, const A* gy, const A* x, float* gw,
                              const InputNormalization* input) {
    if (g.out_channels <= V::width)
      return winograd::backward_weight<V, T, direct::WeightTile<8, 1>>(g, gy, x, gw, input);
    if (g.in_channels > 16)
      return winograd::backward_weight<V, T, direct::WeightTile<6, 2>>(g, gy, x, gw, input);
    winograd::backward_weight<V, T, direct::WeightTile<4, 2>>(g, gy, x, gw, input);
  }
};

}  // namespace

template <typename A>
void winograd_conv2d_forward(WinogradTile tile, const Conv2dGeometry& g, const A* x, const float* w,
                             const float* bias, A* y, const OutputNormalization* normalization,
                             const InputNormalization* input) {
  winograd::run_forward<Tiles>(tile, g, x, w, bias, y, normalization, input);
}
template <typename A>
void winograd_conv2d_backward_data(WinogradTile tile, const Conv2dGeometry& g, const A* gy, const float* w,
                                   A* gx, bool accumulate) {
  winograd::run_backward_data<Tiles>(tile, g, gy, w, gx, accumulate);
}
template <typename A>
void winograd_conv2d_backward_weight(WinogradTile tile, const Conv2dGeometry& g, const A* gy, const A* x,
                                     float* gw, const InputNormalization* input) {
  winograd::run_backward_weight<Tiles>(tile, g, gy, x, gw, input);
}
KILN_INSTANTIATE_WINOGRAD_ENTRY_POINTS(float)
KILN_INSTANTIATE_WINOGRAD_ENTRY_POINTS(bfloat16)

}  // namespace kiln::kernels::avx2
