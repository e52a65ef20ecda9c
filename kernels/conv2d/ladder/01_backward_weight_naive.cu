// Convolution ladder, step 01, backward-weight: one thread per element of gw, summing over the batch and
// every output position.
//
//   gy [N, K, P, Q]    x [N, C, H, W]    gw [K, C/groups, R, S]      (NCHW, float, gw overwritten)
//
//   gw[k, c_in_group, r, s] = sum over n < N, p < P, q < Q of gy[n, k, p, q] * x[n, c, ih, iw]
//   c = group_start(k) + c_in_group,  ih = p * stride_h - pad_h + r * dilation_h,  iw = likewise with q, s
//
// with taps outside the image contributing 0. Each weight was used once per (n, p, q), so its gradient is a
// plain sum with no index to invert, and one thread writes each gw element once (no atomics, a fixed order).
//
// Slow and simple, on purpose: gw is small (ResNet-20's largest layer has 64*64*3*3 = 36864 weights: 144
// blocks of 256 threads, about one per multiprocessor of an H100) while each thread runs a serial loop of
// N * P * Q multiply-adds (8192 for that layer at batch 128), so most of the GPU idles and each thread waits
// on one dependent load after another. The fast way splits the N * P * Q sum across threads and blocks
// (a reduction, or the implicit GEMM gw = gy * im2col(x)^T); this file is the baseline that shows why.
// Thread e computes gw element e (s fastest): a warp shares k and mostly c, so its gy reads are a broadcast.
// Any geometry. Blocks of 256 threads; int indices (every tensor holds fewer than 2^31 elements); float sum.
#include <cstdint>

#include "kernels/conv2d/ladder/ladder.hpp"
#include "kernels/ladder/launch.cuh"

namespace kiln::kernels::conv2d_ladder {
namespace {
namespace backward_weight_naive {  // this step's names (its ladder compiles as one unit)

constexpr int kThreads = 256;

// The geometry in int, with the output size and the per-group channel counts worked out once on the host.
struct Shape {
  int batch, channels, height, width;              // x [N, C, H, W]
  int out_channels, kernel_h, kernel_w;            // gw [K, C/groups, R, S]
  int out_height, out_width;                       // gy [N, K, P, Q]
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
    backward_weight_naive_kernel(Shape g, int total, const float* gy, const float* x, float* gw) {
  // The bound test in 64 bits: blockIdx.x * 256 + threadIdx.x may pass INT_MAX in the last block.
  const std::int64_t index = static_cast<std::int64_t>(blockIdx.x) * kThreads + threadIdx.x;
  if (index >= total) return;
  const int e = static_cast<int>(index);
  // e = ((k * C/groups + c_in_group) * R + r) * S + s
  const int s = e % g.kernel_w;
  const int r = (e / g.kernel_w) % g.kernel_h;
  const int c_in_group = (e / (g.kernel_w * g.kernel_h)) % g.channels_per_group;
  const int k = e / (g.kernel_w * g.kernel_h * g.channels_per_group);
  const int c = (k / g.out_channels_per_group) * g.channels_per_group + c_in_group;  // the input channel
  // Tap (r, s) reads ih = p * stride_h + row_offset, iw = q * stride_w + col_offset.
  const int row_offset = r * g.dilation_h - g.pad_h, col_offset = s * g.dilation_w - g.pad_w;

  float sum = 0.0f;
  for (int n = 0; n < g.batch; ++n) {
    const float* gy_plane = gy + (n * g.out_channels + k) * g.out_height * g.out_width;  // gy[n, k, :, :]
    const float* x_plane = x + (n * g.channels + c) * g.height * g.width;                // x[n, c, :, :]
    for (int p = 0; p < g.out_height; ++p) {
      const int ih = p * g.stride_h + row_offset;
      if (ih < 0 || ih >= g.height) continue;  // this tap read a row of the padding
      for (int q = 0; q < g.out_width; ++q) {
        const int iw = q * g.stride_w + col_offset;
        if (iw < 0 || iw >= g.width) continue;
        sum += gy_plane[p * g.out_width + q] * x_plane[ih * g.width + iw];
      }
    }
  }
  gw[e] = sum;
}

}  // namespace backward_weight_naive
}  // namespace

void launch_01_backward_weight_naive(const Conv2dGeometry& g, const float* gy, const float* x, float* gw) {
  using namespace backward_weight_naive;
  require_supported("01_backward_weight_naive", g, true, "");
  const Shape shape = int_shape(g);
  const int total = shape.out_channels * shape.channels_per_group * shape.kernel_h * shape.kernel_w;  // >= 1
  const unsigned blocks = static_cast<unsigned>((static_cast<std::int64_t>(total) + kThreads - 1) / kThreads);
  ladder::launch("conv2d ladder 01_backward_weight_naive", backward_weight_naive_kernel, dim3(blocks),
                 dim3(kThreads), 0, shape, total, gy, x, gw);
}

}  // namespace kiln::kernels::conv2d_ladder
