// Tensor-level kernel calls: validate shapes and dtypes, allocate outputs, pick the C++ type, and call
// the op's one dispatch function in kernels/. Nothing here is recorded on the tape: the differentiable
// ops in core/derivatives.cpp call these for their forward values and their rules call them for
// gradients.
//
// Every error names the op and the shapes involved.
#pragma once

#include <limits>
#include <optional>
#include <string_view>
#include <vector>

#include "core/op_options.hpp"
#include "core/tensor.hpp"
#include "kernels/batchnorm/batchnorm.hpp"
#include "kernels/elementwise/elementwise.hpp"
#include "kernels/reduce/reduce.hpp"

namespace kiln {
class Generator;
}

namespace kiln::raw {

// Calls fn.template operator()<T>() with T = float, double or bfloat16 for a floating dtype; throws naming
// `op` for any other dtype. For the ops with bfloat16 kernels (the ones mixed-precision training runs in
// bfloat16: elementwise, reductions, matmul, convolution, pooling, batch normalization, dropout).
template <typename Fn> decltype(auto) visit_floating(DType dtype, std::string_view op, Fn&& fn) {
  switch (dtype) {
    case DType::Float32: return fn.template operator()<float>();
    case DType::Float64: return fn.template operator()<double>();
    case DType::BFloat16:
      return fn.template operator()<bfloat16>();
    default:
      fail(op, ": dtype ", dtype_name(dtype), " is not supported (expected float32, float64 or bfloat16)");
  }
}

// The same for float and double only: the ops that mixed precision keeps in float32 (softmax, the losses,
// random draws, optimizer updates), whose bfloat16 error says so.
template <typename Fn>
decltype(auto) visit_float_or_double(DType dtype, std::string_view op, Fn&& fn) {
  switch (dtype) {
    case DType::Float32:
      return fn.template operator()<float>();
    case DType::Float64:
      return fn.template operator()<double>();
    case DType::BFloat16:
      fail(op, ": runs in float32 or float64, not bfloat16 (cast the input to float32 first)");
    default: fail(op, ": dtype ", dtype_name(dtype), " is not supported (expected float32 or float64)");
  }
}

// Throws unless every defined tensor has `reference`'s dtype and device.
void check_same_dtype_and_device(std::string_view op, const Tensor& reference,
                                 std::initializer_list<const Tensor*> others);

// ---- elementwise -----------------------------------------------------------------------------------
Tensor unary(kernels::UnaryOp op, const kernels::UnaryParams& params, const Tensor& x);
Tensor unary_backward(kernels::UnaryOp op, const kernels::UnaryParams& params, const Tensor& x,
                      const Tensor& y, const Tensor& gy);
// Broadcasting binary op; `name` is used in errors.
Tensor binary(kernels::BinaryOp op, const Tensor& a, const Tensor& b, std::string_view name);
// destination += source in place: destination dense in either layout (contiguous or channels-last), source of
// its shape, dtype and device, any strides. The autograd engine's gradient accumulation (core/autograd.cpp).
void add_in_place(const Tensor& destination, const Tensor& source);
// Writes `source`, broadcast to destination's shape and converted to its dtype, into the view `destination`;
// a source on another device is moved to the destination's first.
void copy(const Tensor& destination, const Tensor& source);
void fill(const Tensor& destination, double value);
Tensor contiguous(const Tensor& x);
// x with the order of its elements reversed along each of `axes` (normalized, distinct), dense in x's
// layout.
Tensor flip(const Tensor& x, const std::vector<int>& axes);
// x converted to dtype, dense in x's layout (a channels-last tensor stays channels-last).
Tensor cast(const Tensor& x, DType dtype);

// ---- channels-last (Tensor::is_channels_last) -------------------------------------------------------
// True when x is channels-last and not also NCHW-dense (a [N, C, H, W] with C == 1 or H * W == 1 is both,
// and takes the NCHW kernels as it is).
bool stored_channels_last(const Tensor& x);
// True when x is stored channels-last or is a view of such a tensor that keeps its order (a strided slice
// of H or W, say): its channels lie closest together, then W, then H, then N. An op that makes a new tensor
// from such a view (cat of a subsampled shortcut) makes it channels-last, so the network's layout holds.
bool lies_channels_last(const Tensor& x);
// An uninitialized [N, C, H, W] tensor stored channels-last.
Tensor empty_channels_last(const Shape& shape, DType dtype, Device device);
// A dense channels-last copy of x (x itself when it is one already).
Tensor to_channels_last(const Tensor& x);
// An uninitialized [N, C, H, W] tensor, channels-last or dense NCHW as `channels_last` says.
Tensor empty_in_layout(const Shape& shape, DType dtype, Device device, bool channels_last);
// An uninitialized tensor shaped and stored like x: channels-last when x is stored so, else dense.
Tensor empty_like(const Tensor& x);
// Whether a layout-keeping kernel (conv2d, batch norm) runs channels-last on x: when x is stored so, on the
// CPU or a CUDA device.
bool runs_channels_last(const Tensor& x);
// t dense in the layout an op runs in: channels-last (to_channels_last) or NCHW (contiguous). An op that
// takes several activations runs in its principal input's layout and brings the others to it, so a
// gradient arriving NCHW (from a pooling head, or a loss) joins a channels-last network once.
Tensor in_layout(const Tensor& t, bool channels_last);
Tensor random_uniform(const Shape& shape, DType dtype, Generator& generator, double low, double high);
Tensor random_normal(const Shape& shape, DType dtype, Generator& generator, double mean, double std);

// ---- reductions ------------------------------------------------------------------------------------
// Reduces over `axes` (all when empty); keepdim leaves them as size 1.
Tensor reduce(kernels::ReduceOp op, const Tensor& x, const std::vector<int>& axes, bool keepdim);
Tensor argmax(const Tensor& x, int axis, bool keepdim);
// Sums a broadcast result back to `shape` (the shape of an operand before broadcasting).
Tensor sum_to(const Tensor& x, const Shape& shape);
// The shape `x` has after reducing `axes` (all when empty).
Shape reduced_shape(const Shape& x, const std::vector<int>& axes, bool keepdim, std::string_view op);

// ---- linear algebra --------------------------------------------------------------------------------
// [..., M, K] @ [..., K, N] -> [..., M, N], batch dims broadcast; 1-d operands as in NumPy's matmul.
Tensor matmul(const Tensor& a, const Tensor& b);

// ---- convolution -----------------------------------------------------------------------------------
Tensor conv2d_forward(const Tensor& x, const Tensor& w, const Tensor& bias, const Conv2dOptions& options);
// With `into` (a dense tensor of x's shape, dtype and device: the gradient summed so far for an input used
// twice), the input gradient is added into it, in the kernel's stores where it can
// (kernels::conv2d_accumulates_input_gradient), and `into` returned.
Tensor conv2d_backward_data(const Tensor& gy, const Tensor& w, const Shape& x_shape,
                            const Conv2dOptions& options, const Tensor* into = nullptr);
Tensor conv2d_backward_weight(const Tensor& gy, const Tensor& x, const Shape& w_shape,
                              const Conv2dOptions& options);
Tensor conv2d_backward_bias(const Tensor& gy);
// conv2d_forward, then batchnorm2d_forward in eval mode on its output (gamma, beta, running_mean, running_var
// [C_out] in the opmath dtype; options.eps and options.fused_relu; residual of the output's shape, dtype and
// device, or undefined), in one call: kernels::conv2d_forward_batchnorm_eval, the same values.
Tensor conv2d_batchnorm_eval_forward(const Tensor& x, const Tensor& w, const Tensor& bias,
                                     const Conv2dOptions& conv_options, const Tensor& gamma,
                                     const Tensor& beta, const Tensor& running_mean,
                                     const Tensor& running_var, const BatchNormOptions& norm_options,
                                     const Tensor& residual = Tensor());

// ---- pooling ---------------------------------------------------------------------------------------
// The forwards run in x's layout (runs_channels_last) and return y (and argmax) in it; each backward takes
// that layout (channels_last: runs_channels_last(x) at the forward), brings gy to it, and returns gx in it.
struct MaxPoolResult {
  Tensor output;   // [N, C, OH, OW]
  Tensor argmax;   // int32 [N, C, OH, OW], flat index ih * W + iw into each input plane
};
MaxPoolResult max_pool2d_forward(const Tensor& x, const Pool2dOptions& options);
Tensor max_pool2d_backward(const Tensor& gy, const Tensor& argmax, const Shape& x_shape,
                           const Pool2dOptions& options, bool channels_last);
Tensor avg_pool2d_forward(const Tensor& x, const Pool2dOptions& options);
Tensor avg_pool2d_backward(const Tensor& gy, const Shape& x_shape, const Pool2dOptions& options,
                           bool channels_last);
Tensor global_avg_pool2d_forward(const Tensor& x);  // [N, C, H, W] -> [N, C]
// With `into` (a dense tensor of x's shape, dtype and device in that layout), the gradient is added into it
// and `into` returned.
Tensor global_avg_pool2d_backward(const Tensor& gy, const Shape& x_shape, bool channels_last,
                                  const Tensor* into = nullptr);

// ---- the pad-identity shortcut (kernels/shortcut/subsample_pad.hpp) -------------------------------
// x [N, C, H, W] -> [N, pad_before + C + pad_after, ceil(H / stride), ceil(W / stride)]: every stride-th
// pixel, between zero channels, in x's layout (channels-last where x lies so, a view included).
Tensor subsample_pad_channels_forward(const Tensor& x, std::int64_t stride, std::int64_t pad_before,
                                      std::int64_t pad_after);
// The gradient for x (shape x_shape, the layout the forward ran in), from gy: a fresh tensor; or, where
// `into` is given (a dense tensor of x's shape, dtype and device in that layout), gy's values added into it
// at the pixels the forward kept, and `into` returned.
Tensor subsample_pad_channels_backward(const Tensor& gy, const Shape& x_shape, std::int64_t stride,
                                       std::int64_t pad_before, bool channels_last,
                                       const Tensor* into = nullptr);
// Whether t is dense in the layout an op runs in: channels-last as `channels_last` says, or contiguous.
bool dense_in_layout(const Tensor& t, bool channels_last);

// ---- the channel scale (kernels/channel_scale/channel_scale.hpp) ----------------------------------
// x [N, C, H, W] times scale [N, C] (any shape of N * C values, dense: [N, C, 1, 1] too), per channel, in
// x's layout (channels-last where x runs so).
Tensor channel_scale_forward(const Tensor& x, const Tensor& scale);
struct ChannelScaleGrads {
  Tensor x;      // gy * scale, in the layout the forward ran in
  Tensor scale;  // [N, C]: each plane's sum of gy * x
};
ChannelScaleGrads channel_scale_backward(const Tensor& gy, const Tensor& x, const Tensor& scale);

// ---- batch normalization -------------------------------------------------------------------------
struct BatchNormResult {
  Tensor output;       // the backward reads it when options.fused_relu (relu's rule)
  Tensor save_mean;    // [C], train mode only
  Tensor save_invstd;  // [C], train mode only
  // A residual was added before the ReLU: the backward must keep the gradient through the ReLU, as that
  // backward takes the mask from the output (without, the CPU kernels recompute it from x alone).
  bool residual_before_relu = false;
};
// The kernels' geometry of x for a batch norm with these per-channel tensors, after checking them against
// x: [C], dense, of x's opmath dtype and device (the running statistics may be undefined), gamma and beta
// given.
kernels::BatchNorm2dGeometry batchnorm2d_geometry(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                                                  const Tensor& running_mean, const Tensor& running_var);
// Updates running_mean / running_var in place in train mode when they are defined. With a residual (x's
// shape, dtype and device), the output is act(batch_norm2d(x) + residual), act the fused ReLU or nothing.
BatchNormResult batchnorm2d_forward(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                                    const Tensor& running_mean, const Tensor& running_var,
                                    const BatchNormOptions& options, const Tensor& residual = Tensor());
// The train forward's statistics alone (save_mean, save_invstd; the running statistics moved), with no
// output: for a convolution that normalizes its input itself (conv2d_forward_normalized_input). Float on the
// CPU's fast kernels (where conv2d_normalizes_input).
BatchNormResult batchnorm2d_statistics(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                                       const Tensor& running_mean, const Tensor& running_var,
                                       const BatchNormOptions& options);
struct BatchNormGrads {
  Tensor x, gamma, beta;
  Tensor through_relu;  // gy * relu'(y), with the fused ReLU when keep_through_relu (a residual's gradient)
};
BatchNormGrads batchnorm2d_backward(const Tensor& gy, const Tensor& x, const Tensor& gamma,
                                    const Tensor& beta, const BatchNormResult& saved,
                                    const Tensor& running_mean, const Tensor& running_var,
                                    const BatchNormOptions& options, bool keep_through_relu = false);

// A train-mode batch norm (and its activation) in front of a convolution, inside it
// (kernels::InputNormalization): the per-input-channel coefficients, float [C_in], x' = act((x - shift) *
// scale + offset), as the batch norm's own normalizing pass computes them from its saved statistics, gamma
// and beta; act the activation `options` fuse (the ReLU, capped at relu_upper, or the hard swish; or none).
struct ChannelNormalization {
  Tensor shift, scale, offset;
  bool relu = false;
  float relu_upper = std::numeric_limits<float>::infinity();
  bool hardswish = false;
};
ChannelNormalization batchnorm_channel_normalization(const BatchNormResult& saved, const Tensor& gamma,
                                                     const Tensor& beta, const BatchNormOptions& options);
// Whether the two calls below run for x and w under options (kernels::conv2d_normalizes_input).
bool conv2d_normalizes_input(const Tensor& x, const Tensor& w, const Conv2dOptions& options);
// conv2d_forward and conv2d_backward_weight of the normalized x, which is never made.
Tensor conv2d_forward_normalized_input(const Tensor& x, const ChannelNormalization& input, const Tensor& w,
                                       const Tensor& bias, const Conv2dOptions& options);
Tensor conv2d_backward_weight_normalized_input(const Tensor& gy, const Tensor& x,
                                               const ChannelNormalization& input, const Shape& w_shape,
                                               const Conv2dOptions& options);

// ---- softmax and losses ----------------------------------------------------------------------------
Tensor softmax_forward(const Tensor& x, int axis);
Tensor softmax_backward(const Tensor& y, const Tensor& gy, int axis);
Tensor log_softmax_forward(const Tensor& x, int axis);
Tensor log_softmax_backward(const Tensor& y, const Tensor& gy, int axis);
struct CrossEntropyResult {
  Tensor loss;       // [N], per sample
  Tensor log_probs;  // [N, C]
};
CrossEntropyResult cross_entropy_forward(const Tensor& logits, const Tensor& labels, const Tensor& class_weight,
                                         double smoothing);
Tensor cross_entropy_backward(const CrossEntropyResult& saved, const Tensor& labels, const Tensor& class_weight,
                              double smoothing, const Tensor& gloss);
Tensor bce_with_logits_forward(const Tensor& logits, const Tensor& targets, const Tensor& pos_weight);
Tensor bce_with_logits_backward(const Tensor& logits, const Tensor& targets, const Tensor& pos_weight,
                                const Tensor& gloss);

// ---- indexing ----------------------------------------------------------------------------------------
// table[indices]: table float or double [size], indices int64 of any shape, on table's device; the result
// has the indices' shape. Indices on the CPU are checked; on a GPU an index outside [0, size) gives NaN
// (kernels/take/take.hpp).
Tensor take(const Tensor& table, const Tensor& indices);

// ---- dropout -----------------------------------------------------------------------------------------
struct DropoutResult {
  Tensor output, mask;
};
DropoutResult dropout_forward(const Tensor& x, double p, Generator& generator);

}  // namespace kiln::raw
