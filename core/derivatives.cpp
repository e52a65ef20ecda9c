// The table of differentiable ops: each entry computes its forward value through core/raw.hpp (which
// calls the op's kernel dispatch) and records its derivative rule beside it. A rule maps the gradient of
// the output, g, to one gradient per input; it names the kernels it calls and contains no loops.
//
// Adding an op means adding one entry here, one kernel call in core/raw/, and one gradcheck line in
// tests/core/gradcheck_ops_test.cpp.
#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/generator.hpp"
#include "core/ops.hpp"
#include "core/raw.hpp"

namespace kiln {
namespace {

using kernels::BinaryOp;
using kernels::ReduceOp;
using kernels::UnaryOp;
using kernels::UnaryParams;

Tensor scalar_like(double value, const Tensor& like) { return Tensor::scalar(value, like.dtype(), like.device()); }

// Elementwise unary ops share one rule: the kernel's own backward, which reads x or y as it needs.
Tensor unary_op(std::string_view name, UnaryOp op, const UnaryParams& params, const Tensor& x) {
  Tensor y = raw::unary(op, params, x);
  return record(name, {x}, y, [op, params, x, y = y.detach()](const Tensor& g) {
    return Grads{raw::unary_backward(op, params, x, y, g)};
  });
}

// The shape of a reduction's output with the reduced axes kept as size 1, so g broadcasts back to x.
Tensor unreduce(const Tensor& g, const Shape& x_shape, const std::vector<int>& axes) {
  return g.reshape(raw::reduced_shape(x_shape, axes, true, "backward")).expand(x_shape);
}

std::int64_t reduced_count(const Shape& shape, const std::vector<int>& axes) {
  std::int64_t count = 1;
  for (int axis : normalize_axes(axes, shape.rank(), "reduce")) count *= shape[axis];
  return count;
}

Tensor reduce_loss(const Tensor& per_sample, Reduction reduction, const Tensor& mean_denominator) {
  switch (reduction) {
    case Reduction::None: return per_sample;
    case Reduction::Sum: return sum(per_sample);
    case Reduction::Mean: return div(sum(per_sample), mean_denominator);
  }
  return per_sample;
}

}  // namespace

// ---- elementwise binary --------------------------------------------------------------------------------

Tensor add(const Tensor& a, const Tensor& b) {
  return record("add", {a, b}, raw::binary(BinaryOp::Add, a, b, "add"), [sa = a.shape(), sb = b.shape()](const Tensor& g) {
    return Grads{raw::sum_to(g, sa), raw::sum_to(g, sb)};
  });
}

// relu(a + b) in one pass forward; backward, relu's rule from the output (y > 0 exactly where a + b > 0),
// then the sum's: the same gradient to both operands, summed over broadcast dimensions.
Tensor add_relu(const Tensor& a, const Tensor& b) {
  Tensor y = raw::binary(BinaryOp::AddRelu, a, b, "add_relu");
  return record("add_relu", {a, b}, y, [sa = a.shape(), sb = b.shape(), y = y.detach()](const Tensor& g) {
    const Tensor through_relu = raw::unary_backward(UnaryOp::Relu, {}, y, y, g);
    return Grads{raw::sum_to(through_relu, sa), raw::sum_to(through_relu, sb)};
  });
}

Tensor sub(const Tensor& a, const Tensor& b) {
  return record("sub", {a, b}, raw::binary(BinaryOp::Sub, a, b, "sub"), [sa = a.shape(), sb = b.shape()](const Tensor& g) {
    return Grads{raw::sum_to(g, sa), raw::sum_to(neg(g), sb)};
  });
}

Tensor mul(const Tensor& a, const Tensor& b) {
  return record("mul", {a, b}, raw::binary(BinaryOp::Mul, a, b, "mul"), [a, b](const Tensor& g, const NeedsGrad& needs) {
    return Grads{needs[0] ? raw::sum_to(g * b, a.shape()) : Tensor(), needs[1] ? raw::sum_to(g * a, b.shape()) : Tensor()};
  });
}

Tensor div(const Tensor& a, const Tensor& b) {
  Tensor y = raw::binary(BinaryOp::Div, a, b, "div");
  return record("div", {a, b}, y, [a, b, y = y.detach()](const Tensor& g, const NeedsGrad& needs) {
    // d(a/b)/da = 1/b;  d(a/b)/db = -a/b^2 = -y/b
    return Grads{needs[0] ? raw::sum_to(g / b, a.shape()) : Tensor(),
                 needs[1] ? raw::sum_to(neg(g * y / b), b.shape()) : Tensor()};
  });
}

Tensor pow(const Tensor& base, const Tensor& exponent) {
  Tensor y = raw::binary(BinaryOp::Pow, base, exponent, "pow");
  return record("pow", {base, exponent}, y, [base, exponent, y = y.detach()](const Tensor& g, const NeedsGrad& needs) {
    // d(a^b)/da = b a^(b-1);  d(a^b)/db = a^b ln a
    return Grads{needs[0] ? raw::sum_to(g * exponent * pow(base, exponent - 1.0), base.shape()) : Tensor(),
                 needs[1] ? raw::sum_to(g * y * log(base), exponent.shape()) : Tensor()};
  });
}

Tensor pow(const Tensor& base, double exponent) { return pow(base, scalar_like(exponent, base)); }

// max(a, b) sends g to the larger operand and splits it evenly on ties (so the gradient stays a
// subgradient and the two shares sum to g).
Tensor maximum(const Tensor& a, const Tensor& b) {
  return record("maximum", {a, b}, raw::binary(BinaryOp::Maximum, a, b, "maximum"), [a, b](const Tensor& g) {
    const Tensor share_a = gt(a, b) + 0.5 * eq(a, b);
    return Grads{raw::sum_to(g * share_a, a.shape()), raw::sum_to(g * (1.0 - share_a), b.shape())};
  });
}

Tensor minimum(const Tensor& a, const Tensor& b) {
  return record("minimum", {a, b}, raw::binary(BinaryOp::Minimum, a, b, "minimum"), [a, b](const Tensor& g) {
    const Tensor share_a = gt(b, a) + 0.5 * eq(a, b);
    return Grads{raw::sum_to(g * share_a, a.shape()), raw::sum_to(g * (1.0 - share_a), b.shape())};
  });
}

Tensor eq(const Tensor& a, const Tensor& b) { return raw::binary(BinaryOp::Equal, a, b, "eq"); }
Tensor gt(const Tensor& a, const Tensor& b) { return raw::binary(BinaryOp::Greater, a, b, "gt"); }

// ---- elementwise unary ---------------------------------------------------------------------------------

Tensor neg(const Tensor& x) { return unary_op("neg", UnaryOp::Neg, {}, x); }
Tensor exp(const Tensor& x) { return unary_op("exp", UnaryOp::Exp, {}, x); }
Tensor log(const Tensor& x) { return unary_op("log", UnaryOp::Log, {}, x); }
Tensor sqrt(const Tensor& x) { return unary_op("sqrt", UnaryOp::Sqrt, {}, x); }
Tensor abs(const Tensor& x) { return unary_op("abs", UnaryOp::Abs, {}, x); }
Tensor relu(const Tensor& x) { return unary_op("relu", UnaryOp::Relu, {}, x); }
Tensor leaky_relu(const Tensor& x, double negative_slope) {
  return unary_op("leaky_relu", UnaryOp::LeakyRelu, {.alpha = negative_slope}, x);
}
Tensor sigmoid(const Tensor& x) { return unary_op("sigmoid", UnaryOp::Sigmoid, {}, x); }
Tensor tanh(const Tensor& x) { return unary_op("tanh", UnaryOp::Tanh, {}, x); }
Tensor gelu(const Tensor& x) { return unary_op("gelu", UnaryOp::Gelu, {}, x); }
Tensor silu(const Tensor& x) { return unary_op("silu", UnaryOp::Silu, {}, x); }
Tensor hardsigmoid(const Tensor& x) { return unary_op("hardsigmoid", UnaryOp::Hardsigmoid, {}, x); }
Tensor hardswish(const Tensor& x) { return unary_op("hardswish", UnaryOp::Hardswish, {}, x); }
Tensor clamp(const Tensor& x, double low, double high) {
  KILN_CHECK(low <= high, "clamp: low ", low, " is above high ", high);
  return unary_op("clamp", UnaryOp::Clamp, {.low = low, .high = high}, x);
}

Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
Tensor operator/(const Tensor& a, const Tensor& b) { return div(a, b); }
Tensor operator-(const Tensor& x) { return neg(x); }
Tensor operator+(const Tensor& a, double b) { return add(a, scalar_like(b, a)); }
Tensor operator-(const Tensor& a, double b) { return sub(a, scalar_like(b, a)); }
Tensor operator*(const Tensor& a, double b) { return mul(a, scalar_like(b, a)); }
Tensor operator/(const Tensor& a, double b) { return div(a, scalar_like(b, a)); }
Tensor operator+(double a, const Tensor& b) { return add(scalar_like(a, b), b); }
Tensor operator-(double a, const Tensor& b) { return sub(scalar_like(a, b), b); }
Tensor operator*(double a, const Tensor& b) { return mul(scalar_like(a, b), b); }
Tensor operator/(double a, const Tensor& b) { return div(scalar_like(a, b), b); }

// ---- reductions ------------------------------------------------------------------------------------------

Tensor sum(const Tensor& x, const std::vector<int>& axes, bool keepdim) {
  return record("sum", {x}, raw::reduce(ReduceOp::Sum, x, axes, keepdim), [shape = x.shape(), axes](const Tensor& g) {
    return Grads{unreduce(g, shape, axes)};
  });
}

Tensor mean(const Tensor& x, const std::vector<int>& axes, bool keepdim) {
  return sum(x, axes, keepdim) * (1.0 / static_cast<double>(reduced_count(x.shape(), axes)));
}

Tensor max(const Tensor& x, const std::vector<int>& axes, bool keepdim) {
  Tensor y = raw::reduce(ReduceOp::Max, x, axes, keepdim);
  return record("max", {x}, y, [x, axes, y = y.detach()](const Tensor& g) {
    const Tensor winners = eq(x, unreduce(y, x.shape(), axes));
    const Tensor count = sum(winners, axes, true);
    return Grads{unreduce(g, x.shape(), axes) * winners / count};
  });
}

Tensor var(const Tensor& x, const std::vector<int>& axes, bool keepdim, int correction) {
  const std::int64_t count = reduced_count(x.shape(), axes);
  KILN_CHECK(count > correction, "var: ", count, " values are too few for correction ", correction);
  const Tensor centered = x - mean(x, axes, true);
  return sum(centered * centered, axes, keepdim) * (1.0 / static_cast<double>(count - correction));
}

Tensor argmax(const Tensor& x, int axis, bool keepdim) { return raw::argmax(x, axis, keepdim); }

Tensor cat(const std::vector<Tensor>& tensors, int axis) {
  KILN_CHECK(!tensors.empty(), "cat: no tensors to join");
  const Tensor& first = tensors.front();
  const int a = normalize_axis(axis, first.dim(), "cat");
  std::vector<std::int64_t> dims = first.shape().dims();
  dims[static_cast<std::size_t>(a)] = 0;
  for (const Tensor& t : tensors) {
    raw::check_same_dtype_and_device("cat", first, {&t});
    KILN_CHECK(t.dim() == first.dim(), "cat: ", t.describe(), " and ", first.describe(), " differ in rank");
    for (int i = 0; i < t.dim(); ++i) {
      KILN_CHECK(i == a || t.shape()[i] == first.shape()[i], "cat: ", t.describe(), " and ", first.describe(),
                 " differ outside axis ", axis);
    }
    dims[static_cast<std::size_t>(a)] += t.shape()[a];
  }
  // Channels-last when any input lies so, stored or a view (a channels-last network's padded, subsampled
  // shortcut stays channels-last).
  const bool channels_last =
      std::any_of(tensors.begin(), tensors.end(), [](const Tensor& t) { return raw::lies_channels_last(t); });
  Tensor output = raw::empty_in_layout(Shape(dims), first.dtype(), first.device(), channels_last);
  std::vector<std::int64_t> bounds{0};  // input i occupies [bounds[i], bounds[i + 1]) along the axis
  for (const Tensor& t : tensors) {
    bounds.push_back(bounds.back() + t.shape()[a]);
    const NoGradGuard no_grad;  // the slice is a destination view, not part of the tape
    raw::copy(output.slice(a, bounds[bounds.size() - 2], bounds.back()), t);
  }
  return record("cat", tensors, output, [a, bounds](const Tensor& g, const NeedsGrad& needs) {
    Grads grads(needs.size());
    for (std::size_t i = 0; i < needs.size(); ++i) {
      if (needs[i]) grads[i] = g.slice(a, bounds[i], bounds[i + 1]);
    }
    return grads;
  });
}

Tensor flip(const Tensor& x, const std::vector<int>& axes) {
  std::vector<int> normalized;
  for (const int axis : axes) {
    const int a = normalize_axis(axis, x.dim(), "flip");
    KILN_CHECK(std::find(normalized.begin(), normalized.end(), a) == normalized.end(), "flip: axis ", axis,
               " is given twice for ", x.describe());
    normalized.push_back(a);
  }
  return record("flip", {x}, raw::flip(x, normalized),
                [normalized](const Tensor& g) { return Grads{flip(g, normalized)}; });
}

// ResNet's option-A shortcut in one pass each way (kernels/shortcut/subsample_pad.hpp). The backward adds
// into the gradient already summed for x where the engine offers it (the block's first convolution's, when
// that ran first): then only the kept pixels are touched, and x gets no second gradient to add.
Tensor subsample_pad_channels(const Tensor& x, std::int64_t stride, std::int64_t pad_before,
                              std::int64_t pad_after) {
  KILN_CHECK(x.dim() == 4, "subsample_pad_channels: input ", x.describe(), " must be [N, C, H, W]");
  return record("subsample_pad_channels", {x},
                raw::subsample_pad_channels_forward(x, stride, pad_before, pad_after),
                [shape = x.shape(), dtype = x.dtype(), channels_last = raw::lies_channels_last(x), stride,
                 pad_before](const Tensor& g, const NeedsGrad& needs) {
                  const Tensor* sum = needs.sum_into(0);
                  const bool adds = sum && sum->dtype() == dtype && sum->device() == g.device() &&
                                    raw::dense_in_layout(*sum, channels_last);
                  return Grads{raw::subsample_pad_channels_backward(g, shape, stride, pad_before,
                                                                    channels_last, adds ? sum : nullptr)};
                });
}

// The squeeze-and-excitation's gate applied per channel (kernels/channel_scale/channel_scale.hpp): gx and the
// gates' gradient from one pass over gy and x, the gates' in their own shape.
Tensor channel_scale(const Tensor& x, const Tensor& scale) {
  return record(
      "channel_scale", {x, scale}, raw::channel_scale_forward(x, scale),
      [x, scale](const Tensor& g, const NeedsGrad& needs) {
        raw::ChannelScaleGrads grads = raw::channel_scale_backward(g, x, scale);
        return Grads{needs[0] ? grads.x : Tensor(), needs[1] ? grads.scale.reshape(scale.shape()) : Tensor()};
      });
}

// ---- linear algebra --------------------------------------------------------------------------------------

Tensor matmul(const Tensor& a, const Tensor& b) {
  // Vectors take NumPy's meaning through differentiable views, so the rule below sees only matrices.
  if (a.dim() == 1) return matmul(a.unsqueeze(0), b).squeeze(-2);
  if (b.dim() == 1) return matmul(a, b.unsqueeze(-1)).squeeze(-1);
  return record("matmul", {a, b}, raw::matmul(a, b), [a, b](const Tensor& g, const NeedsGrad& needs) {
    // y = a b:  ga = g b^T,  gb = a^T g, summed over broadcast batch dims.
    return Grads{needs[0] ? raw::sum_to(raw::matmul(g, b.transpose(-1, -2)), a.shape()) : Tensor(),
                 needs[1] ? raw::sum_to(raw::matmul(a.transpose(-1, -2), g), b.shape()) : Tensor()};
  });
}

// ---- neural network ops ------------------------------------------------------------------------------------

// Backward data adds into x's gradient so far where the engine offers it (NeedsGrad::sum_into: a ResNet
// block's input, whose shortcut's gradient came first).
Tensor conv2d(const Tensor& x, const Tensor& weight, const Tensor& bias, const Conv2dOptions& options) {
  return record(
      "conv2d", {x, weight, bias}, raw::conv2d_forward(x, weight, bias, options),
      [x, weight, options](const Tensor& g, const NeedsGrad& needs) {
        const Tensor* sum = needs.sum_into(0);
        const Tensor* into = sum && sum->dtype() == g.dtype() && sum->device() == g.device() ? sum : nullptr;
        return Grads{needs[0] ? raw::conv2d_backward_data(g, weight, x.shape(), options, into) : Tensor(),
                     needs[1] ? raw::conv2d_backward_weight(g, x, weight.shape(), options) : Tensor(),
                     needs[2] ? raw::conv2d_backward_bias(g) : Tensor()};
      });
}

// The pools' backward passes run in the layout their forward ran in (raw.hpp): recorded here with x's shape.
Tensor max_pool2d(const Tensor& x, const Pool2dOptions& options) {
  raw::MaxPoolResult result = raw::max_pool2d_forward(x, options);
  return record("max_pool2d", {x}, result.output,
                [shape = x.shape(), channels_last = raw::runs_channels_last(x), argmax = result.argmax,
                 options](const Tensor& g) {
                  return Grads{raw::max_pool2d_backward(g, argmax, shape, options, channels_last)};
                });
}

Tensor avg_pool2d(const Tensor& x, const Pool2dOptions& options) {
  return record("avg_pool2d", {x}, raw::avg_pool2d_forward(x, options),
                [shape = x.shape(), channels_last = raw::runs_channels_last(x), options](const Tensor& g) {
                  return Grads{raw::avg_pool2d_backward(g, shape, options, channels_last)};
                });
}

// The backward adds into x's gradient so far where the engine offers it (a squeeze-and-excitation's input,
// whose channel scale's gradient came first): one pass over it, and no gradient of its own to add.
Tensor global_avg_pool2d(const Tensor& x) {
  return record(
      "global_avg_pool2d", {x}, raw::global_avg_pool2d_forward(x),
      [shape = x.shape(), dtype = x.dtype(), channels_last = raw::runs_channels_last(x)](
          const Tensor& g, const NeedsGrad& needs) {
        const Tensor* sum = needs.sum_into(0);
        const bool adds = sum && sum->dtype() == dtype && sum->device() == g.device() &&
                          raw::dense_in_layout(*sum, channels_last);
        return Grads{raw::global_avg_pool2d_backward(g, shape, channels_last, adds ? sum : nullptr)};
      });
}

Tensor batch_norm2d(const Tensor& x, const Tensor& gamma, const Tensor& beta, const Tensor& running_mean,
                    const Tensor& running_var, const BatchNormOptions& options) {
  raw::BatchNormResult result = raw::batchnorm2d_forward(x, gamma, beta, running_mean, running_var, options);
  Tensor y = result.output;
  // The rule needs the saved statistics and the parameters, and the output only for a fused ReLU's mask
  // (which the CPU's vectorized kernels recompute from x and beta instead; kept detached, so the tape holds
  // no cycle through it). A fused hard swish's gradient is recomputed from x by every kernel.
  result.output = options.fused_relu ? y.detach() : Tensor();
  const std::string_view name = options.fused_hardswish ? "batch_norm2d_hardswish"
                                : options.fused_relu    ? "batch_norm2d_relu"
                                                        : "batch_norm2d";
  return record(
      name, {x, gamma, beta}, y,
      [x, gamma, beta, saved = std::move(result), running_mean, running_var, options](const Tensor& g) {
        raw::BatchNormGrads grads =
            raw::batchnorm2d_backward(g, x, gamma, beta, saved, running_mean, running_var, options);
        return Grads{grads.x, grads.gamma, grads.beta};
      });
}

// With the ReLU the backward is batch norm's with the fused ReLU, which keeps gy through ReLU's rule on the
// way: the residual's gradient (kernels/batchnorm/batchnorm.hpp). Without it the residual's gradient is the
// output's, as a sum's is.
Tensor batch_norm2d_add(const Tensor& x, const Tensor& residual, const Tensor& gamma, const Tensor& beta,
                        const Tensor& running_mean, const Tensor& running_var,
                        const BatchNormOptions& options) {
  KILN_CHECK(!options.fused_hardswish && std::isinf(options.relu_upper),
             "batch_norm2d_add: the activation after the sum is the ReLU, uncapped, or none");
  raw::BatchNormResult result =
      raw::batchnorm2d_forward(x, gamma, beta, running_mean, running_var, options, residual);
  Tensor y = result.output;
  // The ReLU's mask (detached: the tape holds no cycle through it).
  result.output = options.fused_relu ? y.detach() : Tensor();
  return record(
      options.fused_relu ? "batch_norm2d_add_relu" : "batch_norm2d_add", {x, residual, gamma, beta}, y,
      [x, gamma, beta, saved = std::move(result), running_mean, running_var, options](const Tensor& g) {
        const bool relu = options.fused_relu;  // keeps gy through its rule: the residual's gradient
        raw::BatchNormGrads grads =
            raw::batchnorm2d_backward(g, x, gamma, beta, saved, running_mean, running_var, options, relu);
        return Grads{grads.x, relu ? grads.through_relu : g, grads.gamma, grads.beta};
      });
}

Tensor batch_norm2d_add_relu(const Tensor& x, const Tensor& residual, const Tensor& gamma, const Tensor& beta,
                             const Tensor& running_mean, const Tensor& running_var,
                             const BatchNormOptions& options) {
  BatchNormOptions fused = options;
  fused.fused_relu = true;
  return batch_norm2d_add(x, residual, gamma, beta, running_mean, running_var, fused);
}

Tensor conv2d_batch_norm_eval(const Tensor& x, const Tensor& weight, const Tensor& bias,
                              const Conv2dOptions& conv_options, const Tensor& gamma, const Tensor& beta,
                              const Tensor& running_mean, const Tensor& running_var,
                              const BatchNormOptions& options, const Tensor& residual) {
  KILN_CHECK(!residual.defined() || std::isinf(options.relu_upper),
             "conv2d_batch_norm_eval: the ReLU after a residual's sum is uncapped");
  KILN_CHECK(!options.fused_hardswish,
             "conv2d_batch_norm_eval: the convolution's stores apply a ReLU, not the hard swish");
  if (grad_enabled()) {
    for (const Tensor* t : {&x, &weight, &bias, &gamma, &beta, &residual}) {
      KILN_CHECK(!t->defined() || !t->requires_grad(), "conv2d_batch_norm_eval: ", t->describe(),
                 " requires grad, which this inference op does not record; run it under NoGradGuard, or use "
                 "conv2d and batch_norm2d");
    }
  }
  return raw::conv2d_batchnorm_eval_forward(x, weight, bias, conv_options, gamma, beta, running_mean,
                                            running_var, options, residual);
}

// Backward: the convolution's backward-data gives the batch norm's output gradient, its weight gradient reads
// x normalized in its copies again, and the batch norm's backward (its fused activation's rule recomputed
// from x) gives x's, gamma's and beta's; each the bits its own op's rule gives.
Tensor conv2d_of_batch_norm(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                            const Tensor& running_mean, const Tensor& running_var,
                            const BatchNormOptions& options, const Tensor& weight, const Tensor& bias,
                            const Conv2dOptions& conv_options) {
  KILN_CHECK(options.training, "conv2d_of_batch_norm: the fused op is training mode's (batch statistics)");
  if (!raw::conv2d_normalizes_input(x, weight, conv_options))
    return conv2d(batch_norm2d(x, gamma, beta, running_mean, running_var, options), weight, bias,
                  conv_options);
  raw::BatchNormResult saved =
      raw::batchnorm2d_statistics(x, gamma, beta, running_mean, running_var, options);
  const raw::ChannelNormalization input = raw::batchnorm_channel_normalization(saved, gamma, beta, options);
  Tensor y = raw::conv2d_forward_normalized_input(x, input, weight, bias, conv_options);
  return record("conv2d_of_batch_norm", {x, gamma, beta, weight, bias}, y,
                [x, gamma, beta, saved = std::move(saved), input, running_mean, running_var, options, weight,
                 bias, conv_options](const Tensor& g, const NeedsGrad& needs) {
                  Grads grads(5);
                  if (needs[0] || needs[1] || needs[2]) {
                    const Tensor g_normalized = raw::conv2d_backward_data(g, weight, x.shape(), conv_options);
                    raw::BatchNormGrads norm = raw::batchnorm2d_backward(g_normalized, x, gamma, beta, saved,
                                                                         running_mean, running_var, options);
                    grads[0] = needs[0] ? norm.x : Tensor();
                    grads[1] = needs[1] ? norm.gamma : Tensor();
                    grads[2] = needs[2] ? norm.beta : Tensor();
                  }
                  if (needs[3])
                    grads[3] = raw::conv2d_backward_weight_normalized_input(g, x, input, weight.shape(),
                                                                            conv_options);
                  if (needs[4] && bias.defined()) grads[4] = raw::conv2d_backward_bias(g);
                  return grads;
                });
}

Tensor softmax(const Tensor& x, int axis) {
  Tensor y = raw::softmax_forward(x, axis);
  return record("softmax", {x}, y, [axis, y = y.detach()](const Tensor& g) {
    return Grads{raw::softmax_backward(y, g, axis)};
  });
}

Tensor log_softmax(const Tensor& x, int axis) {
  Tensor y = raw::log_softmax_forward(x, axis);
  return record("log_softmax", {x}, y, [axis, y = y.detach()](const Tensor& g) {
    return Grads{raw::log_softmax_backward(y, g, axis)};
  });
}

Tensor cross_entropy(const Tensor& logits, const Tensor& labels, const Tensor& class_weight,
                     const CrossEntropyOptions& options) {
  const double smoothing = options.label_smoothing;
  raw::CrossEntropyResult saved = raw::cross_entropy_forward(logits, labels, class_weight, smoothing);
  Tensor per_sample = saved.loss;
  saved.loss = Tensor();
  per_sample = record("cross_entropy", {logits}, per_sample,
                      [saved = std::move(saved), labels, class_weight, smoothing](const Tensor& g) {
                        return Grads{raw::cross_entropy_backward(saved, labels, class_weight, smoothing, g)};
                      });
  // PyTorch's weighted mean divides by the total weight of the samples' labels, not by N: summed where the
  // labels are, so a GPU run never reads them back. A constant, as the weights are throughout (the tape
  // records the logits alone), as in PyTorch.
  const Tensor denominator =
      class_weight.defined() ? raw::reduce(kernels::ReduceOp::Sum, raw::take(class_weight, labels), {}, false)
                             : scalar_like(static_cast<double>(logits.size(0)), logits);
  return reduce_loss(per_sample, options.reduction, denominator);
}

Tensor binary_cross_entropy_with_logits(const Tensor& logits, const Tensor& targets, const Tensor& pos_weight,
                                        Reduction reduction) {
  Tensor per_element = record("binary_cross_entropy_with_logits", {logits},
                              raw::bce_with_logits_forward(logits, targets, pos_weight),
                              [logits, targets, pos_weight](const Tensor& g) {
                                return Grads{raw::bce_with_logits_backward(logits, targets, pos_weight, g)};
                              });
  return reduce_loss(per_element, reduction, scalar_like(static_cast<double>(logits.numel()), logits));
}

Tensor dropout(const Tensor& x, double p, bool training, Generator* generator) {
  if (!training || p == 0.0) return x;
  raw::DropoutResult result = raw::dropout_forward(x, p, generator ? *generator : default_generator());
  return record("dropout", {x}, result.output, [mask = result.mask](const Tensor& g) { return Grads{g * mask}; });
}

// ---- views and copies (Tensor's differentiable methods) ------------------------------------------------------

Tensor Tensor::reshape(const Shape& requested) const {
  std::vector<std::int64_t> dims(requested.begin(), requested.end());
  const auto inferred = std::find(dims.begin(), dims.end(), -1);
  if (inferred != dims.end()) {
    std::int64_t known = 1;
    for (std::int64_t size : dims) known *= size == -1 ? 1 : size;
    KILN_CHECK(known != 0 && numel() % known == 0, "reshape: cannot infer -1 in ", requested, " for ", describe());
    *inferred = numel() / known;
  }
  const Shape shape(dims);
  KILN_CHECK(shape.numel() == numel(), "reshape: ", describe(), " has ", numel(), " elements, shape ", shape, " has ",
             shape.numel());
  const Tensor dense = raw::contiguous(*this);
  return record("reshape", {*this}, make_view(dense, shape, contiguous_strides(shape), dense.offset()),
                [original = this->shape()](const Tensor& g) { return Grads{g.reshape(original)}; });
}

Tensor Tensor::view(const Shape& shape) const {
  KILN_CHECK(is_contiguous(), "view: tensor ", describe(), " is not dense; use reshape (which copies)");
  return reshape(shape);
}

Tensor Tensor::permute(const std::vector<int>& order) const {
  KILN_CHECK(static_cast<int>(order.size()) == dim(), "permute: order has ", order.size(), " axes, tensor ", describe(),
             " has ", dim());
  const std::vector<int> axes = normalize_axes(order, dim(), "permute");  // checks range and uniqueness
  std::vector<std::int64_t> dims;
  Strides permuted_strides;
  std::vector<int> inverse(order.size());
  for (std::size_t i = 0; i < order.size(); ++i) {
    const int axis = normalize_axis(order[i], dim(), "permute");
    dims.push_back(shape()[axis]);
    permuted_strides.push_back(strides()[static_cast<std::size_t>(axis)]);
    inverse[static_cast<std::size_t>(axis)] = static_cast<int>(i);
  }
  return record("permute", {*this}, make_view(*this, Shape(dims), permuted_strides, offset()),
                [inverse](const Tensor& g) { return Grads{g.permute(inverse)}; });
}

Tensor Tensor::transpose(int axis_a, int axis_b) const {
  std::vector<int> order(static_cast<std::size_t>(dim()));
  std::iota(order.begin(), order.end(), 0);
  std::swap(order[static_cast<std::size_t>(normalize_axis(axis_a, dim(), "transpose"))],
            order[static_cast<std::size_t>(normalize_axis(axis_b, dim(), "transpose"))]);
  return permute(order);
}

Tensor Tensor::slice(int axis, std::int64_t start, std::int64_t end, std::int64_t step) const {
  const int a = normalize_axis(axis, dim(), "slice");
  KILN_CHECK(step >= 1, "slice: step ", step, " must be positive");
  const std::int64_t extent = shape()[a];
  // Python's rules: negative positions count from the end; out-of-range ones are clamped.
  const auto clamp_position = [extent](std::int64_t position) {
    if (position < 0) position += extent;
    return std::clamp<std::int64_t>(position, 0, extent);
  };
  start = clamp_position(start);
  end = std::max(clamp_position(end), start);
  std::vector<std::int64_t> dims = shape().dims();
  Strides sliced_strides = strides();
  dims[static_cast<std::size_t>(a)] = (end - start + step - 1) / step;
  sliced_strides[static_cast<std::size_t>(a)] *= step;
  const std::int64_t sliced_offset = offset() + start * strides()[static_cast<std::size_t>(a)];
  // The gradient is laid out as the sliced tensor lies (channels-last in a channels-last network), so it
  // joins the other gradients of that tensor without a layout change.
  const bool channels_last = raw::lies_channels_last(*this);
  return record("slice", {*this}, make_view(*this, Shape(dims), sliced_strides, sliced_offset),
                [shape = shape(), dtype = dtype(), a, start, end, step, channels_last](const Tensor& g) {
                  Tensor grad = raw::empty_in_layout(shape, dtype, g.device(), channels_last);
                  raw::fill(grad, 0.0);
                  raw::copy(grad.slice(a, start, end, step), g);
                  return Grads{grad};
                });
}

Tensor Tensor::expand(const Shape& target) const {
  KILN_CHECK(target.rank() >= dim(), "expand: cannot expand ", describe(), " to fewer dimensions ", target);
  const int lead = target.rank() - dim();
  Strides expanded(static_cast<std::size_t>(target.rank()), 0);
  for (int axis = 0; axis < dim(); ++axis) {
    const std::int64_t size = shape()[axis];
    KILN_CHECK(size == target[axis + lead] || size == 1, "expand: cannot expand ", describe(), " to ", target);
    if (size != 1) expanded[static_cast<std::size_t>(axis + lead)] = strides()[static_cast<std::size_t>(axis)];
  }
  if (target == shape()) return *this;
  return record("expand", {*this}, make_view(*this, target, expanded, offset()),
                [original = shape()](const Tensor& g) { return Grads{raw::sum_to(g, original)}; });
}

Tensor Tensor::squeeze(int axis) const {
  const int a = normalize_axis(axis, dim(), "squeeze");
  KILN_CHECK(shape()[a] == 1, "squeeze: axis ", axis, " of ", describe(), " has size ", shape()[a], ", not 1");
  std::vector<std::int64_t> dims = shape().dims();
  Strides squeezed = strides();
  dims.erase(dims.begin() + a);
  squeezed.erase(squeezed.begin() + a);
  return record("squeeze", {*this}, make_view(*this, Shape(dims), squeezed, offset()),
                [original = shape()](const Tensor& g) { return Grads{g.reshape(original)}; });
}

Tensor Tensor::unsqueeze(int axis) const {
  const int a = normalize_axis(axis, dim() + 1, "unsqueeze");
  std::vector<std::int64_t> dims = shape().dims();
  Strides unsqueezed = strides();
  dims.insert(dims.begin() + a, 1);
  unsqueezed.insert(unsqueezed.begin() + a, 1);  // any stride serves a size-1 dim
  return record("unsqueeze", {*this}, make_view(*this, Shape(dims), unsqueezed, offset()),
                [original = shape()](const Tensor& g) { return Grads{g.reshape(original)}; });
}

Tensor Tensor::flatten(int start_axis, int end_axis) const {
  if (dim() == 0) return reshape({1});
  const int first = normalize_axis(start_axis, dim(), "flatten"), last = normalize_axis(end_axis, dim(), "flatten");
  KILN_CHECK(first <= last, "flatten: start axis ", start_axis, " is after end axis ", end_axis);
  std::vector<std::int64_t> dims(shape().begin(), shape().begin() + first);
  std::int64_t merged = 1;
  for (int axis = first; axis <= last; ++axis) merged *= shape()[axis];
  dims.push_back(merged);
  dims.insert(dims.end(), shape().begin() + last + 1, shape().end());
  return reshape(Shape(dims));
}

Tensor Tensor::contiguous() const {
  if (is_contiguous()) return *this;
  return clone();
}

Tensor Tensor::channels_last() const {
  if (is_channels_last()) return *this;
  return record("channels_last", {*this}, raw::to_channels_last(*this),
                [](const Tensor& g) { return Grads{g}; });
}

Tensor Tensor::clone() const {
  Tensor copy = Tensor::empty(shape(), dtype(), device());
  raw::copy(copy, *this);
  return record("clone", {*this}, copy, [](const Tensor& g) { return Grads{g}; });
}

Tensor Tensor::to(DType target) const {
  if (target == dtype()) return *this;
  Tensor converted = raw::cast(*this, target);
  if (!is_floating(target)) return converted;
  return record("to", {*this}, converted, [source = dtype()](const Tensor& g) { return Grads{g.to(source)}; });
}

}  // namespace kiln
