// Winograd F(2x2, 3x3) and F(4x4, 3x3), at stride 1 or 2 (winograd_kernel.hpp), at avx2 width. The products
// use direct_channels' AVX2 tile, 4 tiles x 2 vectors (16 output channels): 8 ymm accumulators, 2 loads and 4
// broadcasts per 8 FMAs; the weight gradient direct_kernel.hpp's weight tiles (avx2_direct.cpp).
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
  static void forward(const Conv2dGeometry& g, const A* x, const float* w, const float* bias, A* y) {
    winograd::forward<V, T, 4, 2>(g, x, w, bias, y);
  }
  template <typename T, typename A>
  static void backward_data(const Conv2dGeometry& g, const A* gy, const float* w, A* gx) {
    winograd::backward_data<V, T, 4, 2>(g, gy, w, gx);
  }
  template <typename T, typename A>
  static void backward_weight(const Conv2dGeometry& g, const A* gy, const A* x, float* gw) {
    if (g.out_channels <= V::width)
      return winograd::backward_weight<V, T, direct::WeightTile<8, 1>>(g, gy, x, gw);
    winograd::backward_weight<V, T, direct::WeightTile<4, 2>>(g, gy, x, gw);
  }
};

}  // namespace

template <typename A>
void winograd_conv2d_forward(WinogradTile tile, const Conv2dGeometry& g, const A* x, const float* w,
                             const float* bias, A* y) {
  winograd::run_forward<Tiles>(tile, g, x, w, bias, y);
}
template <typename A>
void winograd_conv2d_backward_data(WinogradTile tile, const Conv2dGeometry& g, const A* gy, const float* w,
                                   A* gx) {
  winograd::run_backward_data<Tiles>(tile, g, gy, w, gx);
}
template <typename A>
void winograd_conv2d_backward_weight(WinogradTile tile, const Conv2dGeometry& g, const A* gy, const A* x,
                                     float* gw) {
  winograd::run_backward_weight<Tiles>(tile, g, gy, x, gw);
}
KILN_INSTANTIATE_WINOGRAD_ENTRY_POINTS(float)
KILN_INSTANTIATE_WINOGRAD_ENTRY_POINTS(bfloat16)

}  // namespace kiln::kernels::avx2
