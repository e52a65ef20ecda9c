// The differentiable op API. Every function here computes its result through kernels/ and, when an
// input requires grad, records its derivative rule on the tape. The rules are in core/derivatives.cpp,
// one entry per op, next to the forward they differentiate.
//
// Binary ops broadcast (NumPy rules) and require operands of one dtype and device; a double operand
// becomes a scalar of the tensor's dtype.
#pragma once

#include <vector>

#include "core/autograd.hpp"
#include "core/op_options.hpp"
#include "core/tensor.hpp"

namespace kiln {

class Generator;

// ---- elementwise -------------------------------------------------------------------------------------
Tensor add(const Tensor& a, const Tensor& b);
Tensor sub(const Tensor& a, const Tensor& b);
Tensor mul(const Tensor& a, const Tensor& b);
// relu(a + b) as one op (a residual block's end): the same values, one pass over memory fewer each way.
Tensor add_relu(const Tensor& a, const Tensor& b);
Tensor div(const Tensor& a, const Tensor& b);
Tensor pow(const Tensor& base, const Tensor& exponent);  // needs base > 0 where the exponent's grad is used
Tensor pow(const Tensor& base, double exponent);
Tensor maximum(const Tensor& a, const Tensor& b);  // gradient to the larger (split evenly on ties)
Tensor minimum(const Tensor& a, const Tensor& b);
Tensor neg(const Tensor& x);
Tensor exp(const Tensor& x);
Tensor log(const Tensor& x);
Tensor sqrt(const Tensor& x);
Tensor abs(const Tensor& x);
Tensor relu(const Tensor& x);
Tensor leaky_relu(const Tensor& x, double negative_slope = 0.01);
Tensor sigmoid(const Tensor& x);
Tensor tanh(const Tensor& x);
Tensor gelu(const Tensor& x);
Tensor silu(const Tensor& x);         // x * sigmoid(x), Swish
Tensor hardsigmoid(const Tensor& x);  // relu6(x + 3) / 6, MobileNetV3's
Tensor hardswish(const Tensor& x);    // x * hardsigmoid(x), MobileNetV3's
Tensor clamp(const Tensor& x, double low, double high);

// Comparisons: 1 where true, 0 where false, in the operands' dtype; not differentiable.
Tensor eq(const Tensor& a, const Tensor& b);
Tensor gt(const Tensor& a, const Tensor& b);

Tensor operator+(const Tensor& a, const Tensor& b);
Tensor operator-(const Tensor& a, const Tensor& b);
Tensor operator*(const Tensor& a, const Tensor& b);
Tensor operator/(const Tensor& a, const Tensor& b);
Tensor operator-(const Tensor& x);
Tensor operator+(const Tensor& a, double b);
Tensor operator-(const Tensor& a, double b);
Tensor operator*(const Tensor& a, double b);
Tensor operator/(const Tensor& a, double b);
Tensor operator+(double a, const Tensor& b);
Tensor operator-(double a, const Tensor& b);
Tensor operator*(double a, const Tensor& b);
Tensor operator/(double a, const Tensor& b);

// ---- reductions (axes empty = all axes) ---------------------------------------------------------------
Tensor sum(const Tensor& x, const std::vector<int>& axes = {}, bool keepdim = false);
Tensor mean(const Tensor& x, const std::vector<int>& axes = {}, bool keepdim = false);
// Maximum over axes; the gradient is split evenly between tied maxima.
Tensor max(const Tensor& x, const std::vector<int>& axes = {}, bool keepdim = false);
// Variance over axes; `correction` 1 is the unbiased (Bessel) estimate, 0 the biased one.
Tensor var(const Tensor& x, const std::vector<int>& axes = {}, bool keepdim = false, int correction = 1);
// Index of the first maximum along `axis`, as int64; not differentiable.
Tensor argmax(const Tensor& x, int axis, bool keepdim = false);

// Joins tensors along `axis`; all other dims must match. The gradient of each input is its slice of g.
Tensor cat(const std::vector<Tensor>& tensors, int axis);

// x with its elements in reverse order along each of `axes` (torch.flip): flip(x, {3}) mirrors an NCHW
// batch left to right, flip(x, {2}) upside down, in x's layout. The gradient is g flipped back.
Tensor flip(const Tensor& x, const std::vector<int>& axes);

// x [N, C, H, W] -> [N, pad_before + C + pad_after, ceil(H / stride), ceil(W / stride)]: every stride-th
// pixel of each channel, between zero channels (a residual network's option-A shortcut), in x's layout.
// The same values as x.slice(2, .., stride).slice(3, .., stride) between zero tensors through cat, in one
// gather where those made five copies and fills forward and seven backward.
Tensor subsample_pad_channels(const Tensor& x, std::int64_t stride, std::int64_t pad_before,
                              std::int64_t pad_after);
// x [N, C, H, W] * scale [N, C] (or [N, C, 1, 1]): each image's channel scaled by its own gate, a
// squeeze-and-excitation block's last step, in x's layout. The values of x * scale.reshape({N, C, 1, 1});
// its backward is one pass over gy and x (kernels/channel_scale/channel_scale.hpp), where the broadcasting
// multiply's wrote two tensors and summed one.
Tensor channel_scale(const Tensor& x, const Tensor& scale);

// ---- linear algebra --------------------------------------------------------------------------------
// Batched matrix product: [..., M, K] @ [..., K, N] -> [..., M, N] with broadcast batch dims.
Tensor matmul(const Tensor& a, const Tensor& b);

// ---- neural network ops (NCHW) ----------------------------------------------------------------------
// x [N, C_in, H, W], weight [C_out, C_in/groups, KH, KW], bias [C_out] or undefined.
Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias = Tensor(),
              const Conv2dOptions& options = {});
Tensor max_pool2d(const Tensor& x, const Pool2dOptions& options);
Tensor avg_pool2d(const Tensor& x, const Pool2dOptions& options);
Tensor global_avg_pool2d(const Tensor& x);  // [N, C, H, W] -> [N, C]
// gamma, beta [C]. In training mode normalizes by batch statistics and updates the running ones in place
// (when defined); in eval mode normalizes by the running statistics.
Tensor batch_norm2d(const Tensor& x, const Tensor& gamma, const Tensor& beta, const Tensor& running_mean,
                    const Tensor& running_var, const BatchNormOptions& options = {});
// batch_norm2d(x) + residual as one op, then the ReLU when options.fused_relu (uncapped; no hard swish),
// residual of x's shape: a residual block's tail, whose shortcut's sum (and ReLU) ride batch norm's
// normalizing pass. MobileNetV2's inverted residual ends without the ReLU: its residual's gradient is the
// output's own, and the sum's pass over memory is gone both ways.
Tensor batch_norm2d_add(const Tensor& x, const Tensor& residual, const Tensor& gamma, const Tensor& beta,
                        const Tensor& running_mean, const Tensor& running_var,
                        const BatchNormOptions& options = {});
// relu(batch_norm2d(x) + residual): batch_norm2d_add with options.fused_relu implied (ResNet's blocks).
Tensor batch_norm2d_add_relu(const Tensor& x, const Tensor& residual, const Tensor& gamma, const Tensor& beta,
                             const Tensor& running_mean, const Tensor& running_var,
                             const BatchNormOptions& options = {});
// batch_norm2d(conv2d(x, weight, bias)) in eval mode, and with a residual that + residual, then the ReLU
// when options.fused_relu (as batch_norm2d_add), in one op: inference's convolution and the
// batch norm after it. The same values as the two ops; on the CPU's Winograd layers the normalization rides
// the convolution's stores instead of a pass of its own over memory. It records no gradient, so no input may
// require one while grad mode is on (with gradients, use the two ops).
Tensor conv2d_batch_norm_eval(const Tensor& x, const Tensor& weight, const Tensor& bias,
                              const Conv2dOptions& conv_options, const Tensor& gamma, const Tensor& beta,
                              const Tensor& running_mean, const Tensor& running_var,
                              const BatchNormOptions& options, const Tensor& residual = Tensor());
// conv2d(act(batch_norm2d(x))) in training mode (options.training), act the activation options fuse (the
// ReLU, capped or not, the hard swish, or none), one op: where the kernels can (float NCHW on the CPU, both
// of the convolution's passes Winograd or depthwise: raw::conv2d_normalizes_input) the batch norm computes
// its statistics alone and the convolution applies the normalization and the activation as it copies x in,
// forward and for its weight gradient, so that their output never exists in memory; elsewhere the two ops.
// The same values, gradients and running statistics either way, bit for bit.
Tensor conv2d_of_batch_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                            const Tensor& running_mean, const Tensor& running_var,
                            const BatchNormOptions& options, const Tensor& weight, const Tensor& bias,
                            const Conv2dOptions& conv_options);
Tensor softmax(const Tensor& x, int axis = -1);
Tensor log_softmax(const Tensor& x, int axis = -1);
// logits [N, C], labels int64 [N], class_weight [C] or undefined. PyTorch's semantics, including the
// weighted mean (divides by the sum of the labels' weights).
Tensor cross_entropy(const Tensor& logits, const Tensor& labels, const Tensor& class_weight = Tensor(),
                     const CrossEntropyOptions& options = {});
// Multi-label loss on logits; targets in [0, 1] of the logits' shape; pos_weight broadcasts or undefined.
Tensor binary_cross_entropy_with_logits(const Tensor& logits, const Tensor& targets,
                                        const Tensor& pos_weight = Tensor(),
                                        Reduction reduction = Reduction::Mean);
// Inverted dropout: identity when !training or p == 0.
Tensor dropout(const Tensor& x, double p, bool training, Generator* generator = nullptr);

}  // namespace kiln
