// Convolution ladder, step 01, backward-data: one thread per element of gx, gathering the taps that read it.
//
//   gy [N, K, P, Q]    w [K, C/groups, R, S]    gx [N, C, H, W]      (NCHW, float, gx overwritten)
//
// The forward adds x[n, c, ih, iw] * w[k, c - group_start, r, s] into y[n, k, p, q] whenever
//   ih = p * stride_h - pad_h + r * dilation_h   and   iw = q * stride_w - pad_w + s * dilation_w,
// so its adjoint is
//   gx[n, c, ih, iw] = sum over k in the group of c, and over every tap (r, s) whose output position (p, q)
//                      read (ih, iw), of gy[n, k, p, q] * w[k, c - group_start, r, s].
// For a tap r the output row is p = (ih + pad_h - r * dilation_h) / stride_h, a tap that exists only when the
// division is exact and 0 <= p < P (likewise q). This is the gather form: each thread owns one gx element and
// writes it once, so there are no atomics and the sum's order is fixed (the same bits on every run). The
// scatter form (one thread per gy element adding into gx) would need atomicAdd and be nondeterministic.
//
// The baseline, as simple as it gets: thread e computes gx element e (iw fastest), every operand from global
// memory. With stride > 1 most taps fail the divisibility test, so threads of a warp take different branches.
// Any geometry. Blocks of 256 threads; int indices (every tensor holds fewer than 2^31 elements); float sum.
#include <cstdint>

#include "kernels/conv2d/ladder/ladder.hpp"
#include "kernels/ladder/launch.cuh"

namespace kiln::kernels::conv2d_ladder {
namespace {
namespace backward_data_naive {  // this step's names (its ladder compiles as one unit)

constexpr int kThreads = 256;

// The geometry in int, with the output size and the per-group channel counts worked out once on the host.
struct Shape {
  int batch, channels, height, width;              // x, gx [N, C, H, W]
  int out_channels, kernel_h, kernel_w;            // w [K, C/groups, R, S]
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
    backward_data_naive_kernel(Shape g, int total, const float* gy, const float* w, float* gx) {
  // The bound test in 64 bits: blockIdx.x * 256 + threadIdx.x may pass INT_MAX in the last block.
  const std::int64_t index = static_cast<std::int64_t>(blockIdx.x) * kThreads + threadIdx.x;
  if (index >= total) return;
  const int e = static_cast<int>(index);
  // e = ((n * C + c) * H + ih) * W + iw
  const int iw = e % g.width;
  const int ih = (e / g.width) % g.height;
  const int c = (e / (g.width * g.height)) % g.channels;
  const int n = e / (g.width * g.height * g.channels);
  // Input channel c belongs to group c / (C/groups), whose output channels are [k_first, k_first + K/groups);
  // it is channel c_in_group of each of their filters.
  const int group = c / g.channels_per_group;
  const int c_in_group = c - group * g.channels_per_group;
  const int k_first = group * g.out_channels_per_group;
  const int plane_out = g.out_height * g.out_width, taps = g.kernel_h * g.kernel_w;

  float sum = 0.0f;
  for (int r = 0; r < g.kernel_h; ++r) {
    const int p_times_stride = ih + g.pad_h - r * g.dilation_h;  // p * stride_h, if tap r reads row ih
    if (p_times_stride < 0 || p_times_stride % g.stride_h != 0) continue;
    const int p = p_times_stride / g.stride_h;
    if (p >= g.out_height) continue;
    for (int s = 0; s < g.kernel_w; ++s) {
      const int q_times_stride = iw + g.pad_w - s * g.dilation_w;  // q * stride_w, if tap s reads column iw
      if (q_times_stride < 0 || q_times_stride % g.stride_w != 0) continue;
      const int q = q_times_stride / g.stride_w;
      if (q >= g.out_width) continue;
      // Output (p, q) read this gx element through tap (r, s) of every filter of the group:
      // gy_at[k * P*Q] = gy[n, k_first + k, p, q], w_at[k * C/groups*R*S] = w[k_first + k, c_in_group, r, s].
      const float* gy_at = gy + (n * g.out_channels + k_first) * plane_out + p * g.out_width + q;
      const float* w_at = w + (k_first * g.channels_per_group + c_in_group) * taps + r * g.kernel_w + s;
      for (int k = 0; k < g.out_channels_per_group; ++k) {
        sum += gy_at[k * plane_out] * w_at[k * g.channels_per_group * taps];
      }
    }
  }
  gx[e] = sum;
}

}  // namespace backward_data_naive
}  // namespace

void launch_01_backward_data_naive(const Conv2dGeometry& g, const float* gy, const float* w, float* gx) {
  using namespace backward_data_naive;
  require_supported("01_backward_data_naive", g, true, "");
  const Shape shape = int_shape(g);
  const int total = shape.batch * shape.channels * shape.height * shape.width;  // < 2^31, >= 1
  const unsigned blocks = static_cast<unsigned>((static_cast<std::int64_t>(total) + kThreads - 1) / kThreads);
  ladder::launch("conv2d ladder 01_backward_data_naive", backward_data_naive_kernel, dim3(blocks),
                 dim3(kThreads), 0, shape, total, gy, w, gx);
}

}  // namespace kiln::kernels::conv2d_ladder
