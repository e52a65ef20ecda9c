// Winograd F(2x2, 3x3) and F(4x4, 3x3), at stride 1 or 2 (winograd_kernel.hpp), at avx512 width. The products
// use direct_channels' tiles:
//   wide     8 tiles x 2 vectors (32 output channels): 16 zmm accumulators, 2 loads and 8 broadcasts per 16
//            FMAs
//   narrow   16 tiles x 1 vector, for at most 16 output channels, which would leave half of each wide panel
//            empty
// and the weight gradient direct_kernel.hpp's weight tiles:
//   wide     8 input channels x 2 vectors (32 output channels): 16 zmm accumulators, 2 loads and 8
//            broadcasts per 16 FMAs
//   narrow   16 input channels x 1 vector, for at most 16 output channels: 16 accumulators, 1 load and 16
//            broadcasts per 16 FMAs. It was 8 x 1, whose 8 chains of multiply-adds each took a step every 4
//            cycles, as long as one FMA's latency, with nothing else to overlap (ResNet-20's 16 -> 16 layer
//            at 32x32, batch 128, 2 threads, F(4x4, 3x3), alternated in training steps: 2.21-2.37 -> 2.05-2.07
//            ms a call). Wider layers keep 8 x 2: 16 x 1 and 12 x 2 tied or lost there (32 -> 32 at 16x16,
//            64 -> 64 at 8x8).
// Eight input channels rather than six (AVX2's tile, which has 16 registers): channel counts come in
// multiples of 8, and 6 computed 18 rows for 16 channels and 36 for 32. Measured, 1 thread, batch 128, the
// sum of ResNet-20's and vgg_small's Winograd weight gradients: 42.3 ms with 6 x 2, 37.0 with 8 x 2 (32->64
// at stride 2 2.62 -> 1.97, 128->128 at 8x8 7.69 -> 6.08). The bits are the same: each sum runs over the
// tiles in order whatever the tile's shape.
//
// Each entry point takes float activations, or bfloat16 ones (float weights and weight gradient), which the
// kernel widens and rounds in its own copies (winograd_kernel.hpp, "bfloat16 activations").
#include "kernels/conv2d/conv2d.hpp"
#include "kernels/conv2d/winograd_kernel.hpp"
#include "kernels/simd/float_vector_avx512.hpp"

namespace kiln::kernels::avx512 {
namespace {

// The product tiles by the pass's output channels (the top), for a transform trait T and activations A.
struct Tiles {
  using V = simd::FloatVector512;
  template <typename T, typename A>
  static void forward(const Conv2dGeometry& g, const A* x, const float* w, const float* bias, A* y,
                      const OutputNormalization* normalization, const InputNormalization* input) {
    if (g.out_channels <= V::width)
      return winograd::forward<V, T, 16, 1>(g, x, w, bias, y, normalization, input);
    winograd::forward<V, T, 8, 2>(g, x, w, bias, y, normalization, input);
  }
  template <typename T, typename A>
  static void backward_data(const Conv2dGeometry& g, const A* gy, const float* w, A* gx, bool accumulate) {
    // The transposed convolution's outputs are the input channels.
    if (g.in_channels <= V::width) return winograd::backward_data<V, T, 16, 1>(g, gy, w, gx, accumulate);
    winograd::backward_data<V, T, 8, 2>(g, gy, w, gx, accumulate);
  }
  template <typename T, typename A>
  static void backward_weight(const Conv2dGeometry& g, const A* gy, const A* x, float* gw,
                              const InputNormalization* input) {
    if (g.out_channels <= V::width)
      return winograd::backward_weight<V, T, direct::WeightTile<16, 1>>(g, gy, x, gw, input);
    winograd::backward_weight<V, T, direct::WeightTile<8, 2>>(g, gy, x, gw, input);
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

}  // namespace kiln::kernels::avx512
