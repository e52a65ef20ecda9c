// 2-D convolution (cross-correlation, as in every deep learning framework), NCHW layout.
//
//   input  x  [N, C_in, H, W]
//   weight w  [C_out, C_in / groups, KH, KW]
//   bias   b  [C_out]                       (may be null)
//   output y  [N, C_out, OH, OW]
//
//   y[n, co, oh, ow] = b[co] + sum_{ci in group(co), kh, kw}
//                      x[n, ci, oh*stride_h - pad_h + kh*dilation_h, ow*stride_w - pad_w + kw*dilation_w]
//                      * w[co, ci - group_start, kh, kw]
//
// with out-of-range input positions reading as zero. Output channel co belongs to group
// co / (C_out / groups), which reads input channels [g * C_in/groups, (g+1) * C_in/groups).
// groups == C_in == C_out is depthwise convolution.
//
// All buffers are dense (contiguous) in the layouts above, or, with Conv2dGeometry::channels_last, the
// activations channels-last (NHWC): x, gx [N, H, W, C_in] and y, gy [N, OH, OW, C_out], the same dims stored
// with the channel innermost; weights and bias keep their layouts. Backward kernels overwrite their output.
#pragma once

#include <cstddef>
#include <cstdint>
#include <limits>

#include "core/bfloat16.hpp"
#include "core/device.hpp"

namespace kiln::kernels {

struct Conv2dGeometry {
  std::int64_t batch = 1, in_channels = 1, in_height = 1, in_width = 1;
  std::int64_t out_channels = 1, kernel_h = 1, kernel_w = 1;
  std::int64_t stride_h = 1, stride_w = 1;
  std::int64_t pad_h = 0, pad_w = 0;
  std::int64_t dilation_h = 1, dilation_w = 1;
  std::int64_t groups = 1;
  // The activations' layout (see the top). Every algorithm takes either: those that read and write
  // channels-last themselves run on it directly (conv2d_algorithm_takes_channels_last), the others behind a
  // conversion to NCHW and back in dispatch.cpp.
  bool channels_last = false;

  constexpr std::int64_t out_height() const {
    return (in_height + 2 * pad_h - dilation_h * (kernel_h - 1) - 1) / stride_h + 1;
  }
  constexpr std::int64_t out_width() const {
    return (in_width + 2 * pad_w - dilation_w * (kernel_w - 1) - 1) / stride_w + 1;
  }
  constexpr std::int64_t in_channels_per_group() const { return in_channels / groups; }
  constexpr std::int64_t out_channels_per_group() const { return out_channels / groups; }
  // The direct convolution's multiply-adds, the same in each direction: every output value of every image
  // takes one from each input channel of its group at each tap (padding's zeros counted, as is usual).
  constexpr std::int64_t multiply_adds() const {
    return batch * out_channels * out_height() * out_width() * in_channels_per_group() * kernel_h * kernel_w;
  }

  friend constexpr bool operator==(const Conv2dGeometry&, const Conv2dGeometry&) = default;
};

// Backward data at stride 1 is a forward convolution, the transposed one: of gy [N, C_out, OH, OW] through
// the filter turned 180 degrees with its channel roles swapped (wt[ci][co][kh][kw] = w[co][ci][KH-1-kh]
// [KW-1-kw], within each group), padded by dilation * (K - 1) - pad: its output position (ih, iw) then reads
// gy[ih + pad - kh' dilation ...], exactly the outputs input (ih, iw) fed in the forward. This is that
// forward convolution's geometry (stride 1 keeps the sizes exact; a padding below 0 means it does not exist).
constexpr Conv2dGeometry transposed_convolution(const Conv2dGeometry& g) {
  Conv2dGeometry transposed = g;
  transposed.in_channels = g.out_channels;
  transposed.out_channels = g.in_channels;
  transposed.in_height = g.out_height();
  transposed.in_width = g.out_width();
  transposed.pad_h = g.dilation_h * (g.kernel_h - 1) - g.pad_h;
  transposed.pad_w = g.dilation_w * (g.kernel_w - 1) - g.pad_w;
  return transposed;
}

// Dispatch: the one place that picks the implementation for a device and CPU level (dispatch.cpp).
// T is float, double or bfloat16. bfloat16 on the CPU runs the AMX tile convolutions where they serve
// (amx_bf16_conv.hpp), else the float kernels (below) on its tensors where they take bfloat16, or on copies
// widened to float (exactly), the output rounded to bfloat16 once (bfloat16_conv2d_path); at the Reference
// CPU level it runs the bfloat16 reference kernels.
template <typename T>
void conv2d_forward(Device device, const Conv2dGeometry& g, const T* x, const T* w, const T* bias, T* y);
// An eval-mode batch norm on the convolution's output, as batchnorm2d_forward_eval takes it
// (kernels/batchnorm/batchnorm.hpp): per output channel [C_out] of opmath_t<T>, and the residual, laid out
// as y (or null), added before the ReLU (when relu; capped at relu_upper, +inf for none, 6 for ReLU6).
template <typename T>
struct BatchNormEval {
  const opmath_t<T>* gamma = nullptr;
  const opmath_t<T>* beta = nullptr;
  const opmath_t<T>* running_mean = nullptr;
  const opmath_t<T>* running_var = nullptr;
  opmath_t<T> eps = 0;
  const T* residual = nullptr;
  bool relu = false;
  float relu_upper = std::numeric_limits<float>::infinity();
};
// conv2d_forward, then batchnorm2d_forward_eval on its output: inference's conv -> batch norm (-> sum ->
// ReLU), the same bits as the two calls. Where the float CPU path runs Winograd over NCHW tensors (ResNet's
// 3x3 layers), the normalization rides the convolution's stores (OutputNormalization, below), on outputs
// still in L1, instead of a pass of its own over memory; elsewhere it is the two calls.
template <typename T>
void conv2d_forward_batchnorm_eval(Device device, const Conv2dGeometry& g, const T* x, const T* w,
                                   const T* bias, const BatchNormEval<T>& norm, T* y);

// What a forward kernel does to its outputs before it is done with them, per output channel c:
//   y = act(fma(y - shift[c], scale[c], offset[c]) + residual)
// (act: the ReLU when relu, capped at relu_upper, else nothing; residual laid out as y, or null): an
// eval-mode batch norm (shift the running mean, scale batchnorm_eval_scale, offset beta) with its fused sum
// and ReLU, in the vectorized eval kernel's arithmetic (batchnorm_vector_ops.hpp's `normalized`, the same
// function) and order.
struct OutputNormalization {
  const float* shift = nullptr;
  const float* scale = nullptr;
  const float* offset = nullptr;
  const float* residual = nullptr;
  bool relu = false;
  float relu_upper = std::numeric_limits<float>::infinity();
};

// What a pass does to its input x as it copies it in, per input channel c:
//   x' = act(fma(x - shift[c], scale[c], offset[c]))
// (act: the ReLU when relu, capped at relu_upper; the hard swish when hardswish; else nothing): a train-mode
// batch norm's normalizing pass and the activation after it (shift the batch mean, scale invstd * gamma,
// offset beta: batchnorm_vector_ops.hpp's arithmetic; input_normalization.hpp), applied inside the
// convolution that reads their output, which then never has to exist in memory.
struct InputNormalization {
  const float* shift = nullptr;
  const float* scale = nullptr;
  const float* offset = nullptr;
  bool relu = false;
  float relu_upper = std::numeric_limits<float>::infinity();
  bool hardswish = false;
};

// A train-mode batch norm (and its activation) in front of a convolution, inside it: the forward and
// weight-gradient passes of g over x normalized as InputNormalization says, the bits of the same passes over
// the normalized tensor. Where conv2d_normalizes_input(device, g): float NCHW on the CPU's fast kernels,
// where both passes run Winograd or the depthwise kernels (whose copies in take the normalization); the
// callers materialize the normalized input elsewhere.
bool conv2d_normalizes_input(Device device, const Conv2dGeometry& g);

// Backward data added into gx (gx += the input gradient): the gradient of an input another op also read (a
// ResNet block's input, which its shortcut reads too), summed as it is stored, where a fresh gradient would
// be written and then read back by a separate add with the sum so far (a pass over three tensors). Where
// conv2d_accumulates_input_gradient<T>(device, g): on the CPU, float NCHW where backward data runs Winograd
// (whose output stores add), bfloat16 where it runs on AMX tiles (whose rounded rows add); the bits of
// conv2d_backward_data into a fresh buffer, then the add. The callers add a fresh gradient elsewhere.
template <typename T>
bool conv2d_accumulates_input_gradient(Device device, const Conv2dGeometry& g);
template <typename T>
void conv2d_backward_data_accumulate(Device device, const Conv2dGeometry& g, const T* gy, const T* w, T* gx);
void conv2d_forward_normalized_input(Device device, const Conv2dGeometry& g, const float* x,
                                     const InputNormalization& input, const float* w, const float* bias,
                                     float* y);
void conv2d_backward_weight_normalized_input(Device device, const Conv2dGeometry& g, const float* gy,
                                             const float* x, const InputNormalization& input, float* gw);

// gx[N, C_in, H, W] = d loss / d x, from gy[N, C_out, OH, OW] and w.
template <typename T>
void conv2d_backward_data(Device device, const Conv2dGeometry& g, const T* gy, const T* w, T* gx);
// gw[C_out, C_in/groups, KH, KW] = d loss / d w, from gy and x.
template <typename T>
void conv2d_backward_weight(Device device, const Conv2dGeometry& g, const T* gy, const T* x, T* gw);
// gb[C_out] = sum over n, oh, ow of gy.
template <typename T> void conv2d_backward_bias(Device device, const Conv2dGeometry& g, const T* gy, T* gb);

// What bfloat16 runs on the CPU for a geometry and direction (dispatch.cpp decides with it; benchmarks
// name it): the bfloat16 reference (the Reference CPU level); the AMX tiles (amx_bf16_conv.hpp) on
// channels-last activations, or on NCHW ones copied channels-last around them; the depthwise-channels kernels
// on channels-last bfloat16 tensors and the Winograd kernels on bfloat16 tensors of either layout, where the
// float dispatch would choose them; where the CPU has AVX512-BF16 (and AMX does not serve), channels-last
// pointwise convolutions on its pair dot products, and the other ungrouped channels-last ones on the same
// products directly (channel pairs forward and backward data, image pairs for the weight gradient); else
// the float kernels on widened copies, the output rounded once.
enum class Conv2dDirection;
enum class Bfloat16Conv2dPath {
  Reference,
  Amx,
  AmxThroughChannelsLast,
  DepthwiseChannels,
  Winograd,
  PointwiseDotProducts,
  DirectDotProducts,
  Widened
};
Bfloat16Conv2dPath bfloat16_conv2d_path(const Conv2dGeometry& g, Conv2dDirection direction);
const char* bfloat16_conv2d_path_name(Bfloat16Conv2dPath path);

// The reference kernels: plain loops that read like the formula above; the oracle for every faster kernel.
// Every sum is accumulated in double and rounded to T (float, double or bfloat16) once.
namespace reference {
template <typename T> void conv2d_forward(const Conv2dGeometry& g, const T* x, const T* w, const T* bias, T* y);
template <typename T> void conv2d_backward_data(const Conv2dGeometry& g, const T* gy, const T* w, T* gx);
template <typename T> void conv2d_backward_weight(const Conv2dGeometry& g, const T* gy, const T* x, T* gw);
template <typename T> void conv2d_backward_bias(const Conv2dGeometry& g, const T* gy, T* gb);
}  // namespace reference

// The fast float kernels. dispatch.cpp chooses among them with the heuristic in algorithm.hpp; each one
// overwrites its output, as the reference kernels do, and gives bitwise the same result for any thread count.

// im2col + GEMM (gemm_conv.cpp): any geometry. Each image (or fixed chunk of images) is unfolded into a
// [C_in/groups * KH * KW, OH * OW] matrix per group, and the convolution becomes one GEMM with the weights.
// `unfold` is the im2col / col2im_add pair for the CPU level (im2col.hpp), chosen by dispatch.cpp.
struct Im2colKernels;
namespace im2col_gemm {
void conv2d_forward(const Im2colKernels& unfold, const Conv2dGeometry& g, const float* x, const float* w,
                    const float* bias, float* y);
void conv2d_backward_data(const Im2colKernels& unfold, const Conv2dGeometry& g, const float* gy,
                          const float* w, float* gx);
void conv2d_backward_weight(const Im2colKernels& unfold, const Conv2dGeometry& g, const float* gy,
                            const float* x, float* gw);
}  // namespace im2col_gemm

// Pointwise (pointwise.cpp): 1x1 kernel, stride 1, no padding. The NCHW input image already is the GEMM
// operand [C_in, H * W], so there is no im2col at all.
namespace pointwise {
// `normalization` (NCHW only) normalizes each chunk of images once its products are done, while in cache.
void conv2d_forward(const Conv2dGeometry& g, const float* x, const float* w, const float* bias, float* y,
                    const OutputNormalization* normalization = nullptr);
void conv2d_backward_data(const Conv2dGeometry& g, const float* gy, const float* w, float* gx);
void conv2d_backward_weight(const Conv2dGeometry& g, const float* gy, const float* x, float* gw);
// bfloat16 channels-last tensors on AVX512-BF16's pair dot products (kernels/gemm/gemm.hpp, avx512_bf16),
// summed in float: the bias (float, may be null) added to the sums and y rounded once; gx rounded once; the
// weight gradient left as float sums, for the caller to round. Only where avx512_bf16_usable() and
// g.channels_last.
void conv2d_forward_bf16(const Conv2dGeometry& g, const bfloat16* x, const bfloat16* w, const float* bias,
                         bfloat16* y);
void conv2d_backward_data_bf16(const Conv2dGeometry& g, const bfloat16* gy, const bfloat16* w, bfloat16* gx);
void conv2d_backward_weight_bf16(const Conv2dGeometry& g, const bfloat16* gy, const bfloat16* x, float* gw);
}  // namespace pointwise

// Planes of a few pixels (2x2) as one GEMM over the batch, the kernel unrolled into the dense matrix U from
// an image's whole input to its whole output (unrolled_gemm.cpp): one group, any stride, padding and
// dilation, NCHW (the batch is a GEMM operand as it lies; channels-last runs behind dispatch's conversion).
// U, [C_out * OH*OW, C_in * H*W], is built for every call, so `serves` caps it at kMaxUnrolledFloats.
namespace unrolled_gemm {
inline constexpr std::int64_t kMaxUnrolledFloats = std::int64_t{1} << 24;  // 64 MiB
bool serves(const Conv2dGeometry& g);
// The share of U's entries some tap fills: 1 where the kernel reaches every (output, input) pair.
double density(const Conv2dGeometry& g);
void conv2d_forward(const Conv2dGeometry& g, const float* x, const float* w, const float* bias, float* y);
void conv2d_backward_data(const Conv2dGeometry& g, const float* gy, const float* w, float* gx);
void conv2d_backward_weight(const Conv2dGeometry& g, const float* gy, const float* x, float* gw);
}  // namespace unrolled_gemm

// Small planes as GEMMs over the batch, one per kernel tap and run of output positions, the images the GEMM's
// rows (tap_gemm.cpp): one group, any stride, padding and dilation, NCHW or channels-last as they lie (both
// give the same bits). Only the (tap, position) pairs that reach the input are multiplied.
namespace tap_gemm {
bool serves(const Conv2dGeometry& g);
void conv2d_forward(const Conv2dGeometry& g, const float* x, const float* w, const float* bias, float* y);
void conv2d_backward_data(const Conv2dGeometry& g, const float* gy, const float* w, float* gx);
void conv2d_backward_weight(const Conv2dGeometry& g, const float* gy, const float* x, float* gw);
}  // namespace tap_gemm

// The direct convolution on the AVX512-BF16 pair dot products over channels-last bfloat16 tensors
// (avx512_bf16_direct.cpp): each pixel's channel pairs read straight from the activations, no im2col. The
// forward of any geometry with one group, as pointwise's bfloat16 functions take it (the bias float and may
// be null, y rounded once); backward data where the transposed convolution is a forward
// (direct_backward_data_fits), gx rounded once; the weight gradient of any geometry with one group, summed
// over pairs of images (avx512_bf16_weight_gradient.cpp), gw float sums to round. Only where
// avx512_bf16_usable().
namespace direct_dot_products {
bool serves(const Conv2dGeometry& g, Conv2dDirection direction);
void conv2d_forward_bf16(const Conv2dGeometry& g, const bfloat16* x, const bfloat16* w, const float* bias,
                         bfloat16* y);
void conv2d_backward_data_bf16(const Conv2dGeometry& g, const bfloat16* gy, const bfloat16* w, bfloat16* gx);
void conv2d_backward_weight_bf16(const Conv2dGeometry& g, const bfloat16* gy, const bfloat16* x, float* gw);
}  // namespace direct_dot_products

// Direct convolution (direct_kernel.hpp, avx512_direct.cpp, avx2_direct.cpp): a GEMM over a zero-padded
// "strip" of a chunk of images (direct_strip.hpp) on which every tap is a constant offset, so there is no
// im2col. Forward and backward-weight take any geometry; backward-data is the forward of gy through the
// transposed kernel, which needs stride 1 and padding no wider than the kernel's reach,
// pad <= dilation * (K - 1), along each axis (every "same" and "valid" convolution).
constexpr bool direct_backward_data_fits(const Conv2dGeometry& g) {
  return g.stride_h == 1 && g.stride_w == 1 && g.pad_h <= g.dilation_h * (g.kernel_h - 1) &&
         g.pad_w <= g.dilation_w * (g.kernel_w - 1);
}

// The channel-vectorized direct convolution (direct_channels_kernel.hpp, avx512_direct_channels.cpp,
// avx2_direct_channels.cpp): the same strip read one output row at a time, so no junk; forward and
// backward-data (one phase of the input gradient at a time) for any geometry.
//
// Winograd F(2x2, 3x3) and F(4x4, 3x3) (winograd_kernel.hpp, avx512_winograd.cpp, avx2_winograd.cpp): 3x3
// kernel, dilation 1, groups 1; 16 multiplies per 2x2 outputs, or 36 per 4x4, where the direct method takes
// 36 per 2x2. At stride 1, forward and backward-weight at any padding, backward-data where
// direct_backward_data_fits (pad <= 2); at stride 2, forward and backward-weight at any padding and
// backward-data at pad 1 (25 multiplies per 2x2 outputs, 81 per 4x4).
//
// Direct depthwise kernels (avx512_depthwise.cpp, avx2_depthwise.cpp): groups == C_in == C_out, vectorized
// along the output row (the per-plane loops of depthwise_kernel.hpp) or along the channels
// (depthwise_channels_kernel.hpp), each at its vector width.
// The bias kernels (avx512_bias.cpp, avx2_bias.cpp) add the bias to y and sum gy per channel.
enum class WinogradTile { F2x2, F4x4 };  // the outputs one patch gives: 2x2 or 4x4
namespace avx512 {
// F(2x2, 3x3) or F(4x4, 3x3) as `tile` says; float activations, or bfloat16 ones (float weights and weight
// gradient; winograd_kernel.hpp widens and rounds in its copies).
// `normalization`, when not null, is applied to the outputs as they are stored: float NCHW activations only.
// `input`, when not null, normalizes x as it is copied in: float NCHW activations only.
template <typename A>  // float or bfloat16 (instantiated for both)
void winograd_conv2d_forward(WinogradTile tile, const Conv2dGeometry& g, const A* x, const float* w,
                             const float* bias, A* y, const OutputNormalization* normalization = nullptr,
                             const InputNormalization* input = nullptr);
// `accumulate` (float NCHW activations only) adds the gradient to gx's values instead of replacing them.
template <typename A>
void winograd_conv2d_backward_data(WinogradTile tile, const Conv2dGeometry& g, const A* gy, const float* w,
                                   A* gx, bool accumulate = false);
template <typename A>
void winograd_conv2d_backward_weight(WinogradTile tile, const Conv2dGeometry& g, const A* gy, const A* x,
                                     float* gw, const InputNormalization* input = nullptr);
void direct_conv2d_forward(const Conv2dGeometry& g, const float* x, const float* w, const float* bias, float* y);
void direct_conv2d_backward_data(const Conv2dGeometry& g, const float* gy, const float* w, float* gx);
void direct_conv2d_backward_weight(const Conv2dGeometry& g, const float* gy, const float* x, float* gw);
void direct_channels_conv2d_forward(const Conv2dGeometry& g, const float* x, const float* w,
                                    const float* bias, float* y);
void direct_channels_conv2d_backward_data(const Conv2dGeometry& g, const float* gy, const float* w,
                                          float* gx);
// `normalization` (NCHW) normalizes each output plane as soon as it is computed, in L1.
void depthwise_conv2d_forward(const Conv2dGeometry& g, const float* x, const float* w, const float* bias,
                              float* y, const OutputNormalization* normalization = nullptr,
                              const InputNormalization* input = nullptr);
void depthwise_conv2d_backward_data(const Conv2dGeometry& g, const float* gy, const float* w, float* gx);
void depthwise_conv2d_backward_weight(const Conv2dGeometry& g, const float* gy, const float* x, float* gw,
                                      const InputNormalization* input = nullptr);
void depthwise_channels_conv2d_forward(const Conv2dGeometry& g, const float* x, const float* w,
                                       const float* bias, float* y,
                                       const InputNormalization* input = nullptr);
void depthwise_channels_conv2d_backward_data(const Conv2dGeometry& g, const float* gy, const float* w,
                                             float* gx);
void depthwise_channels_conv2d_backward_weight(const Conv2dGeometry& g, const float* gy, const float* x,
                                               float* gw, const InputNormalization* input = nullptr);
// bfloat16 channels-last activations, float weights and weight gradient (depthwise_channels_kernel.hpp).
void depthwise_channels_conv2d_forward(const Conv2dGeometry& g, const bfloat16* x, const float* w,
                                       const float* bias, bfloat16* y);
void depthwise_channels_conv2d_backward_data(const Conv2dGeometry& g, const bfloat16* gy, const float* w,
                                             bfloat16* gx);
void depthwise_channels_conv2d_backward_weight(const Conv2dGeometry& g, const bfloat16* gy, const bfloat16* x,
                                               float* gw);
void conv2d_add_bias(const Conv2dGeometry& g, const float* bias, float* y);
void conv2d_normalize_outputs(const Conv2dGeometry& g, const OutputNormalization& normalization, float* y);
// Either layout; bfloat16 gy and gb too (bias_kernel.hpp).
void conv2d_backward_bias(const Conv2dGeometry& g, const float* gy, float* gb);
void conv2d_backward_bias(const Conv2dGeometry& g, const bfloat16* gy, bfloat16* gb);
}  // namespace avx512
namespace avx2 {
// F(2x2, 3x3) or F(4x4, 3x3) as `tile` says; float activations, or bfloat16 ones (float weights and weight
// gradient; winograd_kernel.hpp widens and rounds in its copies).
// `normalization`, when not null, is applied to the outputs as they are stored: float NCHW activations only.
// `input`, when not null, normalizes x as it is copied in: float NCHW activations only.
template <typename A>  // float or bfloat16 (instantiated for both)
void winograd_conv2d_forward(WinogradTile tile, const Conv2dGeometry& g, const A* x, const float* w,
                             const float* bias, A* y, const OutputNormalization* normalization = nullptr,
                             const InputNormalization* input = nullptr);
// `accumulate` (float NCHW activations only) adds the gradient to gx's values instead of replacing them.
template <typename A>
void winograd_conv2d_backward_data(WinogradTile tile, const Conv2dGeometry& g, const A* gy, const float* w,
                                   A* gx, bool accumulate = false);
template <typename A>
void winograd_conv2d_backward_weight(WinogradTile tile, const Conv2dGeometry& g, const A* gy, const A* x,
                                     float* gw, const InputNormalization* input = nullptr);
void direct_conv2d_forward(const Conv2dGeometry& g, const float* x, const float* w, const float* bias, float* y);
void direct_conv2d_backward_data(const Conv2dGeometry& g, const float* gy, const float* w, float* gx);
void direct_conv2d_backward_weight(const Conv2dGeometry& g, const float* gy, const float* x, float* gw);
void direct_channels_conv2d_forward(const Conv2dGeometry& g, const float* x, const float* w,
                                    const float* bias, float* y);
void direct_channels_conv2d_backward_data(const Conv2dGeometry& g, const float* gy, const float* w,
                                          float* gx);
// `normalization` (NCHW) normalizes each output plane as soon as it is computed, in L1.
void depthwise_conv2d_forward(const Conv2dGeometry& g, const float* x, const float* w, const float* bias,
                              float* y, const OutputNormalization* normalization = nullptr,
                              const InputNormalization* input = nullptr);
void depthwise_conv2d_backward_data(const Conv2dGeometry& g, const float* gy, const float* w, float* gx);
void depthwise_conv2d_backward_weight(const Conv2dGeometry& g, const float* gy, const float* x, float* gw,
                                      const InputNormalization* input = nullptr);
void depthwise_channels_conv2d_forward(const Conv2dGeometry& g, const float* x, const float* w,
                                       const float* bias, float* y,
                                       const InputNormalization* input = nullptr);
void depthwise_channels_conv2d_backward_data(const Conv2dGeometry& g, const float* gy, const float* w,
                                             float* gx);
void depthwise_channels_conv2d_backward_weight(const Conv2dGeometry& g, const float* gy, const float* x,
                                               float* gw, const InputNormalization* input = nullptr);
// bfloat16 channels-last activations, float weights and weight gradient (depthwise_channels_kernel.hpp).
void depthwise_channels_conv2d_forward(const Conv2dGeometry& g, const bfloat16* x, const float* w,
                                       const float* bias, bfloat16* y);
void depthwise_channels_conv2d_backward_data(const Conv2dGeometry& g, const bfloat16* gy, const float* w,
                                             bfloat16* gx);
void depthwise_channels_conv2d_backward_weight(const Conv2dGeometry& g, const bfloat16* gy, const bfloat16* x,
                                               float* gw);
void conv2d_add_bias(const Conv2dGeometry& g, const float* bias, float* y);
void conv2d_normalize_outputs(const Conv2dGeometry& g, const OutputNormalization& normalization, float* y);
// Either layout; bfloat16 gy and gb too (bias_kernel.hpp).
void conv2d_backward_bias(const Conv2dGeometry& g, const float* gy, float* gb);
void conv2d_backward_bias(const Conv2dGeometry& g, const bfloat16* gy, bfloat16* gb);
}  // namespace avx2

// y[n, co, :, :] += bias[co], at the current CPU level (dispatch.cpp); the GEMM-based kernels call it. And
// `normalization` on NCHW outputs y, in place, likewise.
void conv2d_add_bias(const Conv2dGeometry& g, const float* bias, float* y);
void conv2d_normalize_outputs(const Conv2dGeometry& g, const OutputNormalization& normalization, float* y);

// The CUDA kernels (cuda_conv2d.cu, cuda_im2col.cu, cuda_depthwise.cu; built when CMake finds a CUDA
// compiler), float, double and bfloat16: every buffer a device pointer in the layouts above, every kernel on
// the current device, on the compute stream, asynchronously, with the reference's semantics (outputs
// overwritten). Together they are the library path: the direct kernels for depthwise geometries, im2col +
// GEMM for every other one. dispatch.cpp runs it, or a step of the convolution ladder measured faster on the
// shape (cuda_tuning.hpp). README.md ("On a CUDA device") explains the choices.
//
// What bfloat16 accumulates in: every sum in float or wider, every output rounded to bfloat16 once. The
// GEMMs sum in float inside cuBLAS (CUBLAS_COMPUTE_32F); the forward GEMM starts from y filled with the bias
// (beta = 1), so the bias is added before the one rounding; backward-data's GEMM writes float columns that
// col2im folds in float; backward-weight sums its chunks of images in a float workspace (beta = 1) and
// rounds it once at the end. The depthwise forward and backward-data sums run in float (opmath_t<T>), the
// depthwise weight and bias gradients in double.
namespace cuda {

// The most scratch one im2col + GEMM call allocates for its columns: the batch is cut into chunks of images
// that fit (one image at least, whatever it needs).
inline constexpr std::size_t kConv2dWorkspaceBytes = std::size_t{256} << 20;

// im2col + cuBLAS GEMM (cuda_conv2d.cu), any geometry; a 1x1, stride-1, unpadded convolution skips the
// im2col (its NCHW image already is the GEMM operand). workspace_bytes bounds the column scratch (tests pass
// a small one to force many chunks); bfloat16's float weight-gradient accumulator [C_out, C_in/groups * KH *
// KW] comes on top.
template <typename T>
void gemm_conv2d_forward(const Conv2dGeometry& g, const T* x, const T* w, const T* bias, T* y,
                         std::size_t workspace_bytes = kConv2dWorkspaceBytes);
template <typename T>
void gemm_conv2d_backward_data(const Conv2dGeometry& g, const T* gy, const T* w, T* gx,
                               std::size_t workspace_bytes = kConv2dWorkspaceBytes);
template <typename T>
void gemm_conv2d_backward_weight(const Conv2dGeometry& g, const T* gy, const T* x, T* gw,
                                 std::size_t workspace_bytes = kConv2dWorkspaceBytes);

// Direct depthwise kernels (cuda_depthwise.cu): groups == C_in == C_out, any kernel, stride, padding and
// dilation, activations NCHW or channels-last as g says (the same sums in the same order: the same bits).
// The weight gradient is a deterministic block reduction (no atomics).
template <typename T>
void depthwise_conv2d_forward(const Conv2dGeometry& g, const T* x, const T* w, const T* bias, T* y);
template <typename T>
void depthwise_conv2d_backward_data(const Conv2dGeometry& g, const T* gy, const T* w, T* gx);
template <typename T>
void depthwise_conv2d_backward_weight(const Conv2dGeometry& g, const T* gy, const T* x, T* gw);

// y[n, co, :, :] = bias[co] (what the forward GEMM then adds to, with beta = 1, so the bias joins the sum
// before its one rounding); gb[co] = sum of gy[:, co, :, :], a deterministic block reduction in double
// (cuda_depthwise.cu).
template <typename T>
void conv2d_fill_bias(const Conv2dGeometry& g, const T* bias, T* y);
template <typename T>
void conv2d_backward_bias(const Conv2dGeometry& g, const T* gy, T* gb);

// The unfolding (cuda_im2col.cu), for a chunk of `count` consecutive images x_images [count, C_in, H, W]
// (all C_in channels; a group's rows are a contiguous block of them):
//
//   col[b * image_stride + r * row_stride + p] = x_images[b, ci, ih, iw]   (0 in the padding)
//   with r = (ci * KH + kh) * KW + kw, p = oh * OW + ow, ih and iw as in the formula at the top.
//
// image_stride = C_in*KH*KW * OH*OW, row_stride = OH*OW: one [C_in*KH*KW, OH*OW] matrix per image.
// image_stride = OH*OW, row_stride = count * OH*OW: the images side by side in one [C_in*KH*KW, count*OH*OW].
template <typename T>
void im2col(const Conv2dGeometry& g, const T* x_images, std::int64_t count, std::int64_t image_stride,
            std::int64_t row_stride, T* col);
// gx_images [count, C_in, H, W] = the adjoint of im2col, overwritten: each input element gathers the col
// entries that were read from it, in a fixed order (deterministic, no atomics), summed in opmath_t<T> and
// rounded to T once. Same layout parameters. col is opmath_t<T>: float columns for bfloat16 gx, so the
// backward-data GEMM's float sums are not rounded to bfloat16 before they are folded.
template <typename T>
void col2im(const Conv2dGeometry& g, const opmath_t<T>* col, std::int64_t count, std::int64_t image_stride,
            std::int64_t row_stride, T* gx_images);
// dense[i] = T(wide[i]) for i < count: the one rounding of a float accumulator (bfloat16 only).
void round_to_bfloat16(const float* wide, std::int64_t count, bfloat16* dense);
// matrix [channels, count * plane] from images [count, channels, plane]: the images' planes side by side.
template <typename T>
void gather_images(const T* images, std::int64_t count, std::int64_t channels, std::int64_t plane, T* matrix);

}  // namespace cuda

}  // namespace kiln::kernels
