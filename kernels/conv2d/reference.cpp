// Reference 2-D convolution kernels: plain loops that read like the formula in conv2d.hpp.
// They are the oracle every optimized convolution kernel is tested against, so clarity beats speed here.
//
//   x, gx  [N, C_in, H, W]     w, gw  [C_out, C_in/groups, KH, KW]     b, gb  [C_out]
//   y, gy  [N, C_out, OH, OW]          (channels-last: x, gx [N, H, W, C_in], y, gy [N, OH, OW, C_out])
//
//   y[n, co, oh, ow] = b[co] + sum_{ci in group(co), kh, kw} x[n, ci, ih, iw] * w[co, ci - group_start, kh,
//   kw] with ih = oh*stride_h - pad_h + kh*dilation_h,  iw = ow*stride_w - pad_w + kw*dilation_w.
//
// Every sum is accumulated in double and rounded to T once at the end: a 3x3 convolution over 512
// channels adds 4608 products, and a float accumulator would lose several digits doing it. With a double
// accumulator the float result is (almost always) the correctly rounded value, which keeps the oracle tight.
// T is float, double or bfloat16 (whose reference is likewise: summed in double, rounded once).
#include <cstdint>
#include <vector>

#include "kernels/conv2d/conv2d.hpp"

namespace kiln::kernels::reference {
namespace {

// ---- where things live -------------------------------------------------------------------------------

// Offsets of one element in the dense buffers.
std::int64_t x_offset(const Conv2dGeometry& g, std::int64_t n, std::int64_t ci, std::int64_t ih,
                      std::int64_t iw) {  // x [N, C_in, H, W], or [N, H, W, C_in] channels-last
  if (g.channels_last) return ((n * g.in_height + ih) * g.in_width + iw) * g.in_channels + ci;
  return ((n * g.in_channels + ci) * g.in_height + ih) * g.in_width + iw;
}
std::int64_t w_offset(const Conv2dGeometry& g, std::int64_t co, std::int64_t ci_in_group, std::int64_t kh,
                      std::int64_t kw) {  // w [C_out, C_in/groups, KH, KW]
  return ((co * g.in_channels_per_group() + ci_in_group) * g.kernel_h + kh) * g.kernel_w + kw;
}
std::int64_t y_offset(const Conv2dGeometry& g, std::int64_t n, std::int64_t co, std::int64_t oh,
                      std::int64_t ow) {  // y [N, C_out, OH, OW], or [N, OH, OW, C_out] channels-last
  if (g.channels_last) return ((n * g.out_height() + oh) * g.out_width() + ow) * g.out_channels + co;
  return ((n * g.out_channels + co) * g.out_height() + oh) * g.out_width() + ow;
}

// The first input channel that output channel `co` reads: its group's start. The group's input channels
// are [first, first + C_in/groups).
std::int64_t first_input_channel(const Conv2dGeometry& g, std::int64_t co) {
  const std::int64_t group = co / g.out_channels_per_group();
  return group * g.in_channels_per_group();
}

// The input position that output position (oh, ow) reads through kernel tap (kh, kw). It may lie in the
// padding (negative, or past the end), where the input reads as zero.
std::int64_t input_row(const Conv2dGeometry& g, std::int64_t oh, std::int64_t kh) {
  return oh * g.stride_h - g.pad_h + kh * g.dilation_h;
}
std::int64_t input_col(const Conv2dGeometry& g, std::int64_t ow, std::int64_t kw) {
  return ow * g.stride_w - g.pad_w + kw * g.dilation_w;
}
bool inside_input(const Conv2dGeometry& g, std::int64_t ih, std::int64_t iw) {
  return ih >= 0 && ih < g.in_height && iw >= 0 && iw < g.in_width;
}

}  // namespace

// ---- forward -----------------------------------------------------------------------------------------

// y[n, co, oh, ow] = b[co] + sum over the group's input channels and the kernel taps of x * w.
// Taps that land in the padding are skipped, which is the same as reading a zero there.
template <typename T>
void conv2d_forward(const Conv2dGeometry& g, const T* x, const T* w, const T* bias, T* y) {
  const std::int64_t out_h = g.out_height(), out_w = g.out_width();
  for (std::int64_t n = 0; n < g.batch; ++n) {
    for (std::int64_t co = 0; co < g.out_channels; ++co) {
      const std::int64_t group_start = first_input_channel(g, co);
      for (std::int64_t oh = 0; oh < out_h; ++oh) {
        for (std::int64_t ow = 0; ow < out_w; ++ow) {
          double sum = bias ? static_cast<double>(bias[co]) : 0.0;
          for (std::int64_t ci = group_start; ci < group_start + g.in_channels_per_group(); ++ci) {
            for (std::int64_t kh = 0; kh < g.kernel_h; ++kh) {
              for (std::int64_t kw = 0; kw < g.kernel_w; ++kw) {
                const std::int64_t ih = input_row(g, oh, kh), iw = input_col(g, ow, kw);
                if (!inside_input(g, ih, iw)) continue;
                sum += static_cast<double>(x[x_offset(g, n, ci, ih, iw)]) *
                       static_cast<double>(w[w_offset(g, co, ci - group_start, kh, kw)]);
              }
            }
          }
          y[y_offset(g, n, co, oh, ow)] = static_cast<T>(sum);
        }
      }
    }
  }
}

// ---- backward ----------------------------------------------------------------------------------------

// gx[n, ci, ih, iw] = sum of gy[n, co, oh, ow] * w[co, ci - group_start, kh, kw] over every forward term
// x[n, ci, ih, iw] * w[...] that fed y[n, co, oh, ow].
//
// Written as a scatter: the forward's loop nest, unchanged, with its one multiply-add reversed (each term
// x * w -> y sends gy * w back to x). That makes the pairing with the forward visible line for line. The
// gather form (loop over gx, find the outputs that read it) has to invert ih = oh*stride - pad + kh*dilation,
// which needs a divisibility test by the stride: exactly where index bugs hide. The scatter adds into a
// double buffer the size of gx, rounded to T once at the end, so the sums stay as tight as the forward's.
template <typename T>
void conv2d_backward_data(const Conv2dGeometry& g, const T* gy, const T* w, T* gx) {
  const std::int64_t out_h = g.out_height(), out_w = g.out_width();
  std::vector<double> gx_sum(static_cast<std::size_t>(g.batch * g.in_channels * g.in_height * g.in_width),
                             0.0);
  for (std::int64_t n = 0; n < g.batch; ++n) {
    for (std::int64_t co = 0; co < g.out_channels; ++co) {
      const std::int64_t group_start = first_input_channel(g, co);
      for (std::int64_t oh = 0; oh < out_h; ++oh) {
        for (std::int64_t ow = 0; ow < out_w; ++ow) {
          const double grad_out = gy[y_offset(g, n, co, oh, ow)];
          for (std::int64_t ci = group_start; ci < group_start + g.in_channels_per_group(); ++ci) {
            for (std::int64_t kh = 0; kh < g.kernel_h; ++kh) {
              for (std::int64_t kw = 0; kw < g.kernel_w; ++kw) {
                const std::int64_t ih = input_row(g, oh, kh), iw = input_col(g, ow, kw);
                if (!inside_input(g, ih, iw)) continue;  // padding has no gradient to receive
                gx_sum[static_cast<std::size_t>(x_offset(g, n, ci, ih, iw))] +=
                    grad_out * static_cast<double>(w[w_offset(g, co, ci - group_start, kh, kw)]);
              }
            }
          }
        }
      }
    }
  }
  for (std::size_t i = 0; i < gx_sum.size(); ++i) gx[i] = static_cast<T>(gx_sum[i]);
}

// gw[co, ci - group_start, kh, kw] = sum over n, oh, ow of gy[n, co, oh, ow] * x[n, ci, ih, iw].
//
// Written as a gather: each weight is used once per (n, oh, ow), so its gradient is a plain sum over those,
// with no index to invert. One double accumulator per weight, as in the forward.
template <typename T>
void conv2d_backward_weight(const Conv2dGeometry& g, const T* gy, const T* x, T* gw) {
  const std::int64_t out_h = g.out_height(), out_w = g.out_width();
  for (std::int64_t co = 0; co < g.out_channels; ++co) {
    const std::int64_t group_start = first_input_channel(g, co);
    for (std::int64_t ci = group_start; ci < group_start + g.in_channels_per_group(); ++ci) {
      for (std::int64_t kh = 0; kh < g.kernel_h; ++kh) {
        for (std::int64_t kw = 0; kw < g.kernel_w; ++kw) {
          double sum = 0;
          for (std::int64_t n = 0; n < g.batch; ++n) {
            for (std::int64_t oh = 0; oh < out_h; ++oh) {
              for (std::int64_t ow = 0; ow < out_w; ++ow) {
                const std::int64_t ih = input_row(g, oh, kh), iw = input_col(g, ow, kw);
                if (!inside_input(g, ih, iw)) continue;  // this tap read a zero of the padding
                sum += static_cast<double>(gy[y_offset(g, n, co, oh, ow)]) *
                       static_cast<double>(x[x_offset(g, n, ci, ih, iw)]);
              }
            }
          }
          gw[w_offset(g, co, ci - group_start, kh, kw)] = static_cast<T>(sum);
        }
      }
    }
  }
}

// gb[co] = sum over n, oh, ow of gy[n, co, oh, ow]: the bias is added once to every output position.
template <typename T>
void conv2d_backward_bias(const Conv2dGeometry& g, const T* gy, T* gb) {
  const std::int64_t out_h = g.out_height(), out_w = g.out_width();
  for (std::int64_t co = 0; co < g.out_channels; ++co) {
    double sum = 0;
    for (std::int64_t n = 0; n < g.batch; ++n) {
      for (std::int64_t oh = 0; oh < out_h; ++oh) {
        for (std::int64_t ow = 0; ow < out_w; ++ow)
          sum += static_cast<double>(gy[y_offset(g, n, co, oh, ow)]);
      }
    }
    gb[co] = static_cast<T>(sum);
  }
}

// ---- explicit instantiations -------------------------------------------------------------------------

template void conv2d_forward<float>(const Conv2dGeometry&, const float*, const float*, const float*, float*);
template void conv2d_backward_data<float>(const Conv2dGeometry&, const float*, const float*, float*);
template void conv2d_backward_weight<float>(const Conv2dGeometry&, const float*, const float*, float*);
template void conv2d_backward_bias<float>(const Conv2dGeometry&, const float*, float*);

template void conv2d_forward<double>(const Conv2dGeometry&, const double*, const double*, const double*,
                                     double*);
template void conv2d_backward_data<double>(const Conv2dGeometry&, const double*, const double*, double*);
template void conv2d_backward_weight<double>(const Conv2dGeometry&, const double*, const double*, double*);
template void conv2d_backward_bias<double>(const Conv2dGeometry&, const double*, double*);

template void conv2d_forward<bfloat16>(const Conv2dGeometry&, const bfloat16*, const bfloat16*,
                                       const bfloat16*, bfloat16*);
template void conv2d_backward_data<bfloat16>(const Conv2dGeometry&, const bfloat16*, const bfloat16*,
                                             bfloat16*);
template void conv2d_backward_weight<bfloat16>(const Conv2dGeometry&, const bfloat16*, const bfloat16*,
                                               bfloat16*);
template void conv2d_backward_bias<bfloat16>(const Conv2dGeometry&, const bfloat16*, bfloat16*);

}  // namespace kiln::kernels::reference
