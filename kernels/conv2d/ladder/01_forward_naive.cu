// Convolution ladder, step 01, forward: one thread per output element, a plain loop over the taps.
//
//   x [N, C, H, W]    w [K, C/groups, R, S]    y [N, K, P, Q]      (NCHW, float, y overwritten)
//
//   y[n, k, p, q] = sum over c in group(k), r < R, s < S of x[n, c, ih, iw] * w[k, c - group_start, r, s]
//   ih = p * stride_h - pad_h + r * dilation_h,   iw = q * stride_w - pad_w + s * dilation_w
//
// with taps outside the image contributing 0. The baseline of the ladder: the formula, nothing else. Thread e
// computes y element e (q fastest), so a warp's 32 threads take 32 neighbouring q of one output row: their x
// reads are neighbours too (coalesced when stride_w == 1) and their w reads are one address (a broadcast).
// Nothing is reused on chip except by the caches: each x value is fetched by up to K * R * S threads and each
// w value by N * P * Q threads, which is what step 02 fixes. Any geometry: groups, stride, padding, dilation.
// Blocks of 256 threads; indices are int (the launcher has checked every tensor holds fewer than 2^31
// elements); the sum is float.
#include <cstdint>

#include "kernels/conv2d/ladder/ladder.hpp"
#include "kernels/ladder/launch.cuh"

namespace kiln::kernels::conv2d_ladder {
namespace {
namespace forward_naive {  // this step's names (its ladder compiles as one unit)

constexpr int kThreads = 256;

// The geometry in int, with the output size and the per-group channel counts worked out once on the host.
struct Shape {
  int batch, channels, height, width;              // x [N, C, H, W]
  int out_channels, kernel_h, kernel_w;            // w [K, C/groups, R, S]
  int out_height, out_width;                       // y [N, K, P, Q]
  int channels_per_group, out_channels_per_group;  // C/groups, K/groups
  int stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w;
};

Shape int_shape(const Conv2dGeometry& g) {
  const auto i = [](std::int64_t v) { return static_cast<int>(v); };
  Shape s{};
  s.batch = i(g.batch), s.channels = i(g.in_channels), s.height = i(g.in_height), s.width = i(g.in_width);
  s.out_channels = i(g.out_channels), s.kernel_h = i(g.kernel_h), s.kernel_w = i(g.kernel_w);
  s.out_height = i(g.out_height()), s.out_width = i(g.out_width());
  s.channels_per_group = i(g.in_channels_per_group());
  s.out_channels_per_group = i(g.out_channels_per_group());
  s.stride_h = i(g.stride_h), s.stride_w = i(g.stride_w), s.pad_h = i(g.pad_h), s.pad_w = i(g.pad_w);
  s.dilation_h = i(g.dilation_h), s.dilation_w = i(g.dilation_w);
  return s;
}

__global__ void __launch_bounds__(kThreads)
    forward_naive_kernel(Shape g, int total, const float* x, const float* w, float* y) {
  // The bound test in 64 bits: blockIdx.x * 256 + threadIdx.x may pass INT_MAX in the last block.
  const std::int64_t index = static_cast<std::int64_t>(blockIdx.x) * kThreads + threadIdx.x;
  if (index >= total) return;
  const int e = static_cast<int>(index);
  // e = ((n * K + k) * P + p) * Q + q
  const int q = e % g.out_width;
  const int p = (e / g.out_width) % g.out_height;
  const int k = (e / (g.out_width * g.out_height)) % g.out_channels;
  const int n = e / (g.out_width * g.out_height * g.out_channels);
  // Output channel k belongs to group k / (K/groups), which reads input channels [group_start, + C/groups).
  const int group_start = (k / g.out_channels_per_group) * g.channels_per_group;
  const int row0 = p * g.stride_h - g.pad_h, col0 = q * g.stride_w - g.pad_w;  // the input under tap (0, 0)

  float sum = 0.0f;
  for (int c = 0; c < g.channels_per_group; ++c) {
    const float* x_plane = x + (n * g.channels + group_start + c) * g.height * g.width;  // x[n, c, :, :]
    const float* w_taps = w + (k * g.channels_per_group + c) * g.kernel_h * g.kernel_w;  // w[k, c, :, :]
    for (int r = 0; r < g.kernel_h; ++r) {
      const int ih = row0 + r * g.dilation_h;
      if (ih < 0 || ih >= g.height) continue;  // a row of the padding: reads zero
      for (int s = 0; s < g.kernel_w; ++s) {
        const int iw = col0 + s * g.dilation_w;
        if (iw < 0 || iw >= g.width) continue;
        sum += x_plane[ih * g.width + iw] * w_taps[r * g.kernel_w + s];
      }
    }
  }
  y[e] = sum;
}

}  // namespace forward_naive
}  // namespace

void launch_01_forward_naive(const Conv2dGeometry& g, const float* x, const float* w, float* y) {
  using namespace forward_naive;
  require_supported("01_forward_naive", g, true, "");
  const Shape shape = int_shape(g);
  const int total = shape.batch * shape.out_channels * shape.out_height * shape.out_width;  // < 2^31, >= 1
  const unsigned blocks = static_cast<unsigned>((static_cast<std::int64_t>(total) + kThreads - 1) / kThreads);
  ladder::launch("conv2d ladder 01_forward_naive", forward_naive_kernel, dim3(blocks), dim3(kThreads), 0,
                 shape, total, x, w, y);
}

}  // namespace kiln::kernels::conv2d_ladder
