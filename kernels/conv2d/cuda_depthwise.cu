// The CUDA convolution kernels that need no GEMM (conv2d.hpp, namespace cuda): depthwise convolution
// (groups == C_in == C_out, so output channel c reads input channel c alone) in all three directions, and the
// bias's forward fill (or add) and backward sum.
//
//   x, gx [N, C, H, W]    w, gw [C, 1, KH, KW]    y, gy [N, C, OH, OW]    b, gb [C]
//   activations NCHW or, with g.channels_last, [N, H, W, C] (ActivationLayout below); the bias fill is NCHW
//
// Elementwise kernels (forward, backward-data, bias add) run one thread per element they write in a
// grid-stride loop (at most kMaxGridBlocks blocks of kThreadsPerBlock threads), in memory order, so the
// fastest-moving index (a column NCHW, a channel channels-last) moves across consecutive threads. Each sums
// its taps in the same order in either layout: the layouts give the same bits. The two reductions (the
// depthwise weight gradient, the bias gradient) run one block per output element, a grid-stride loop over
// blocks: the block's threads stride over the positions summed, each keeping a double partial sum, and
// block_sum adds the partials in a fixed tree. Which thread adds which term depends only on kThreadsPerBlock,
// so the result is the same bits on every run (no atomics). T is float, double or bfloat16. Sums over a
// handful of taps (forward, backward-data) are kept in opmath_t<T> (T for float and double, float for
// bfloat16) and rounded to T once; the long reductions in double, as the reference does, for every T.
#include <algorithm>
#include <cstdint>

#include "core/cuda_runtime.hpp"
#include "kernels/conv2d/conv2d.hpp"
#include "kernels/conv2d/cuda_covering_taps.cuh"
#include "kernels/cuda_block_sum.cuh"
#include "kernels/cuda_launch.cuh"

namespace kiln::kernels::cuda {
namespace {

// Where the activations' elements lie: dense NCHW, or dense channels-last.
struct ActivationLayout {
  std::int64_t channels;
  bool channels_last;

  // The offset of element (n, c, h, w) of an [N, C, height, width] activation.
  __device__ std::int64_t at(std::int64_t n, std::int64_t c, std::int64_t h, std::int64_t w,
                             std::int64_t height, std::int64_t width) const {
    return channels_last ? ((n * height + h) * width + w) * channels + c
                         : ((n * channels + c) * height + h) * width + w;
  }
};

// Element e of an [N, C, height, width] activation, in memory order, as (n, c, h, w).
struct ActivationIndex {
  std::int64_t n, c, h, w;
};

__device__ ActivationIndex locate(const ActivationLayout& layout, std::int64_t e, std::int64_t height,
                                  std::int64_t width) {
  if (layout.channels_last) {
    const std::int64_t pixel = e / layout.channels;  // (n * height + h) * width + w
    return {pixel / (height * width), e % layout.channels, pixel / width % height, pixel % width};
  }
  const std::int64_t plane = e / (height * width);  // n * C + c
  return {plane / layout.channels, plane % layout.channels, e / width % height, e % width};
}

// ---- depthwise -----------------------------------------------------------------------------------------

// y[n, c, oh, ow] = b[c] + sum over the taps inside the input of x[n, c, ih, iw] * w[c, 0, kh, kw]; element e
// of y in memory order (C_in == C_out, so x's channel is y's). Taps in the padding are skipped, as in the
// reference.
template <typename T>
__global__ void depthwise_forward_kernel(Conv2dGeometry g, std::int64_t out_h, std::int64_t out_w, const T* x,
                                         const T* w, const T* bias, T* y) {
  const ActivationLayout layout{g.out_channels, g.channels_last};
  const std::int64_t total = g.batch * g.out_channels * out_h * out_w;
  for (std::int64_t e = first_thread_index(); e < total; e += grid_thread_count()) {
    const auto [n, c, oh, ow] = locate(layout, e, out_h, out_w);
    const T* w_taps = w + c * g.kernel_h * g.kernel_w;
    opmath_t<T> sum = bias ? static_cast<opmath_t<T>>(bias[c]) : opmath_t<T>(0);
    for (std::int64_t kh = 0; kh < g.kernel_h; ++kh) {
      const std::int64_t ih = oh * g.stride_h - g.pad_h + kh * g.dilation_h;
      if (ih < 0 || ih >= g.in_height) continue;
      for (std::int64_t kw = 0; kw < g.kernel_w; ++kw) {
        const std::int64_t iw = ow * g.stride_w - g.pad_w + kw * g.dilation_w;
        if (iw < 0 || iw >= g.in_width) continue;
        sum += static_cast<opmath_t<T>>(x[layout.at(n, c, ih, iw, g.in_height, g.in_width)]) *
               static_cast<opmath_t<T>>(w_taps[kh * g.kernel_w + kw]);
      }
    }
    y[e] = static_cast<T>(sum);
  }
}

// gx[n, c, ih, iw] = sum over the taps (kh, kw) and output positions (oh, ow) that read (ih, iw) of
// gy[n, c, oh, ow] * w[c, 0, kh, kw]: a gather, as col2im (cuda_im2col.cu) inverts the index; element e of gx
// in memory order.
template <typename T>
__global__ void depthwise_backward_data_kernel(Conv2dGeometry g, std::int64_t out_h, std::int64_t out_w,
                                               const T* gy, const T* w, T* gx) {
  const ActivationLayout layout{g.in_channels, g.channels_last};
  const std::int64_t total = g.batch * g.in_channels * g.in_height * g.in_width;
  for (std::int64_t e = first_thread_index(); e < total; e += grid_thread_count()) {
    const ActivationIndex in = locate(layout, e, g.in_height, g.in_width);
    const T* w_taps = w + in.c * g.kernel_h * g.kernel_w;
    opmath_t<T> sum = 0;
    for_each_covering_tap(g, out_h, out_w, in.h, in.w,
                          [&](std::int64_t kh, std::int64_t kw, std::int64_t oh, std::int64_t ow) {
                            sum += static_cast<opmath_t<T>>(gy[layout.at(in.n, in.c, oh, ow, out_h, out_w)]) *
                                   static_cast<opmath_t<T>>(w_taps[kh * g.kernel_w + kw]);
                          });
    gx[e] = static_cast<T>(sum);
  }
}

// gw[c, 0, kh, kw] = sum over n, oh, ow of gy[n, c, oh, ow] * x[n, c, ih, iw] (taps in the padding add
// nothing). One block per weight (tap = (c * KH + kh) * KW + kw), its threads striding over the N * OH * OW
// positions (consecutive threads, consecutive ow: coalesced reads of gy in NCHW; channels-last, C apart).
template <typename T>
__global__ void depthwise_backward_weight_kernel(Conv2dGeometry g, std::int64_t out_h, std::int64_t out_w,
                                                 const T* gy, const T* x, T* gw) {
  const ActivationLayout layout{g.in_channels, g.channels_last};
  const std::int64_t channels = g.in_channels, taps = g.kernel_h * g.kernel_w;
  const std::int64_t plane_out = out_h * out_w, positions = g.batch * plane_out;
  for (std::int64_t weight = blockIdx.x; weight < channels * taps; weight += gridDim.x) {
    const std::int64_t c = weight / taps, kh = (weight % taps) / g.kernel_w, kw = weight % g.kernel_w;
    double sum = 0.0;
    for (std::int64_t j = threadIdx.x; j < positions; j += blockDim.x) {
      const std::int64_t n = j / plane_out, oh = j % plane_out / out_w, ow = j % out_w;
      const std::int64_t ih = oh * g.stride_h - g.pad_h + kh * g.dilation_h;
      const std::int64_t iw = ow * g.stride_w - g.pad_w + kw * g.dilation_w;
      if (ih < 0 || ih >= g.in_height || iw < 0 || iw >= g.in_width) continue;
      sum += static_cast<double>(gy[layout.at(n, c, oh, ow, out_h, out_w)]) *
             static_cast<double>(x[layout.at(n, c, ih, iw, g.in_height, g.in_width)]);
    }
    sum = block_sum(sum);  // every thread of the block gets here: the loop bounds are the same for all
    if (threadIdx.x == 0) gw[weight] = static_cast<T>(sum);
  }
}

// ---- bias ----------------------------------------------------------------------------------------------

// y[n, co, p] = b[co]; element e is y's, whose channel is (e / plane) % C_out.
template <typename T>
__global__ void fill_bias_kernel(std::int64_t total, std::int64_t channels, std::int64_t plane, const T* bias,
                                 T* y) {
  for (std::int64_t e = first_thread_index(); e < total; e += grid_thread_count())
    y[e] = bias[(e / plane) % channels];
}

// gb[co] = sum over n and p of gy[n, co, p], gy NCHW or channels-last ([N, plane, C_out]). One block per
// channel, its threads striding over the N * plane positions (consecutive threads, consecutive p: coalesced
// in NCHW; channels-last, each thread's read is C_out apart, the price of a reduction this small).
template <typename T>
__global__ void backward_bias_kernel(std::int64_t batch, std::int64_t channels, std::int64_t plane,
                                     bool channels_last, const T* gy, T* gb) {
  const std::int64_t positions = batch * plane;
  for (std::int64_t c = blockIdx.x; c < channels; c += gridDim.x) {
    double sum = 0.0;
    for (std::int64_t j = threadIdx.x; j < positions; j += blockDim.x) {
      const std::int64_t n = j / plane, p = j % plane;
      sum += static_cast<double>(channels_last ? gy[j * channels + c] : gy[(n * channels + c) * plane + p]);
    }
    sum = block_sum(sum);
    if (threadIdx.x == 0) gb[c] = static_cast<T>(sum);
  }
}

}  // namespace

template <typename T>
void depthwise_conv2d_forward(const Conv2dGeometry& g, const T* x, const T* w, const T* bias, T* y) {
  const std::int64_t total = g.batch * g.out_channels * g.out_height() * g.out_width();
  if (total == 0) return;
  launch("conv2d depthwise forward", depthwise_forward_kernel<T>, grid_blocks(total), kThreadsPerBlock, g,
         g.out_height(), g.out_width(), x, w, bias, y);
}

template <typename T>
void depthwise_conv2d_backward_data(const Conv2dGeometry& g, const T* gy, const T* w, T* gx) {
  const std::int64_t total = g.batch * g.in_channels * g.in_height * g.in_width;
  if (total == 0) return;
  launch("conv2d depthwise backward_data", depthwise_backward_data_kernel<T>, grid_blocks(total),
         kThreadsPerBlock, g, g.out_height(), g.out_width(), gy, w, gx);
}

// A batch of 0 images still writes gw (zeros): the kernel's sums are empty, not skipped.
template <typename T>
void depthwise_conv2d_backward_weight(const Conv2dGeometry& g, const T* gy, const T* x, T* gw) {
  const std::int64_t weights = g.in_channels * g.kernel_h * g.kernel_w;
  if (weights == 0) return;
  const auto blocks = grid_blocks(weights, 1);
  launch("conv2d depthwise backward_weight", depthwise_backward_weight_kernel<T>, blocks, kThreadsPerBlock, g,
         g.out_height(), g.out_width(), gy, x, gw);
}

template <typename T>
void conv2d_fill_bias(const Conv2dGeometry& g, const T* bias, T* y) {
  const std::int64_t plane = g.out_height() * g.out_width(), total = g.batch * g.out_channels * plane;
  if (total == 0) return;
  launch("conv2d fill bias", fill_bias_kernel<T>, grid_blocks(total), kThreadsPerBlock, total, g.out_channels,
         plane, bias, y);
}

// Also writes zeros for an empty batch, as the reference does.
template <typename T>
void conv2d_backward_bias(const Conv2dGeometry& g, const T* gy, T* gb) {
  if (g.out_channels == 0) return;
  const auto blocks = grid_blocks(g.out_channels, 1);
  launch("conv2d backward_bias", backward_bias_kernel<T>, blocks, kThreadsPerBlock, g.batch, g.out_channels,
         g.out_height() * g.out_width(), g.channels_last, gy, gb);
}

template void depthwise_conv2d_forward<float>(const Conv2dGeometry&, const float*, const float*, const float*,
                                              float*);
template void depthwise_conv2d_backward_data<float>(const Conv2dGeometry&, const float*, const float*,
                                                    float*);
template void depthwise_conv2d_backward_weight<float>(const Conv2dGeometry&, const float*, const float*,
                                                      float*);
template void conv2d_fill_bias<float>(const Conv2dGeometry&, const float*, float*);
template void conv2d_backward_bias<float>(const Conv2dGeometry&, const float*, float*);
template void depthwise_conv2d_forward<double>(const Conv2dGeometry&, const double*, const double*,
                                               const double*, double*);
template void depthwise_conv2d_backward_data<double>(const Conv2dGeometry&, const double*, const double*,
                                                     double*);
template void depthwise_conv2d_backward_weight<double>(const Conv2dGeometry&, const double*, const double*,
                                                       double*);
template void conv2d_fill_bias<double>(const Conv2dGeometry&, const double*, double*);
template void conv2d_backward_bias<double>(const Conv2dGeometry&, const double*, double*);
template void depthwise_conv2d_forward<bfloat16>(const Conv2dGeometry&, const bfloat16*, const bfloat16*,
                                                 const bfloat16*, bfloat16*);
template void depthwise_conv2d_backward_data<bfloat16>(const Conv2dGeometry&, const bfloat16*,
                                                       const bfloat16*, bfloat16*);
template void depthwise_conv2d_backward_weight<bfloat16>(const Conv2dGeometry&, const bfloat16*,
                                                         const bfloat16*, bfloat16*);
template void conv2d_fill_bias<bfloat16>(const Conv2dGeometry&, const bfloat16*, bfloat16*);
template void conv2d_backward_bias<bfloat16>(const Conv2dGeometry&, const bfloat16*, bfloat16*);

}  // namespace kiln::kernels::cuda
