// Tensor-level calls of the conv2d kernels: shape validation and the geometry they share.
#include "core/raw.hpp"
#include "kernels/conv2d/conv2d.hpp"

namespace kiln::raw {
namespace {

// The kernels' geometry for input shape [N, C_in, H, W] and weight shape [C_out, C_in/groups, KH, KW],
// after checking that the two fit together under `options`.
kernels::Conv2dGeometry conv2d_geometry(const Shape& x, const Shape& w, const Conv2dOptions& options) {
  KILN_CHECK(x.rank() == 4, "conv2d: input must be [N, C, H, W], got ", x);
  KILN_CHECK(w.rank() == 4, "conv2d: weight must be [C_out, C_in/groups, KH, KW], got ", w);
  const std::int64_t groups = options.groups;
  KILN_CHECK(groups >= 1 && x[1] % groups == 0 && w[0] % groups == 0, "conv2d: groups=", groups,
             " must divide input channels (", x[1], ") and output channels (", w[0], ")");
  KILN_CHECK(w[1] * groups == x[1], "conv2d: weight ", w, " expects ", w[1] * groups, " input channels with groups=",
             groups, ", but input ", x, " has ", x[1]);
  for (int i = 0; i < 2; ++i) {
    KILN_CHECK(options.stride[i] >= 1 && options.dilation[i] >= 1 && options.padding[i] >= 0,
               "conv2d: stride and dilation must be >= 1 and padding >= 0");
  }
  const kernels::Conv2dGeometry g{x[0], x[1], x[2], x[3], w[0], w[2], w[3],
                                  options.stride[0], options.stride[1], options.padding[0], options.padding[1],
                                  options.dilation[0], options.dilation[1], groups};
  KILN_CHECK(g.out_height() >= 1 && g.out_width() >= 1, "conv2d: input ", x, " is smaller than the dilated kernel ",
             w, " with padding ", options.padding[0], "x", options.padding[1]);
  return g;
}

// What a forward pass hands the kernels, checked: the geometry (its layout x's, runs_channels_last), x, the
// weight and the bias in the layouts the kernels read, and the output to write, in x's layout.
struct ForwardOperands {
  kernels::Conv2dGeometry g;
  Tensor input, weight, bias, output;
};
ForwardOperands forward_operands(const Tensor& x, const Tensor& w, const Tensor& bias,
                                 const Conv2dOptions& options) {
  check_same_dtype_and_device("conv2d", x, {&w, &bias});
  ForwardOperands operands;
  operands.g = conv2d_geometry(x.shape(), w.shape(), options);
  kernels::Conv2dGeometry& g = operands.g;
  KILN_CHECK(!bias.defined() || bias.shape() == Shape{g.out_channels}, "conv2d: bias ", bias.describe(),
             " must be [", g.out_channels, "]");
  operands.weight = contiguous(w);
  operands.bias = bias.defined() ? contiguous(bias) : Tensor();
  g.channels_last = runs_channels_last(x);
  operands.input = in_layout(x, g.channels_last);
  operands.output = empty_in_layout({g.batch, g.out_channels, g.out_height(), g.out_width()}, x.dtype(),
                                    x.device(), g.channels_last);
  return operands;
}

}  // namespace

Tensor conv2d_forward(const Tensor& x, const Tensor& w, const Tensor& bias, const Conv2dOptions& options) {
  const ForwardOperands op = forward_operands(x, w, bias, options);
  visit_floating(x.dtype(), "conv2d", [&]<typename T>() {
    kernels::conv2d_forward<T>(x.device(), op.g, op.input.data<T>(), op.weight.data<T>(),
                               data_or_null<T>(op.bias), op.output.data<T>());
  });
  return op.output;
}

Tensor conv2d_batchnorm_eval_forward(const Tensor& x, const Tensor& w, const Tensor& bias,
                                     const Conv2dOptions& conv_options, const Tensor& gamma,
                                     const Tensor& beta, const Tensor& running_mean,
                                     const Tensor& running_var, const BatchNormOptions& norm_options,
                                     const Tensor& residual) {
  KILN_CHECK(!norm_options.training,
             "conv2d + batch_norm2d: the fused op is eval mode's (running statistics)");
  const ForwardOperands op = forward_operands(x, w, bias, conv_options);
  // The batch norm's own checks, on the output it normalizes.
  batchnorm2d_geometry(op.output, gamma, beta, running_mean, running_var);
  KILN_CHECK(running_mean.defined() && running_var.defined(),
             "batch_norm2d: eval mode needs running_mean and running_var");
  Tensor added;  // the residual in the output's layout, when there is one
  if (residual.defined()) {
    KILN_CHECK(residual.shape() == op.output.shape(), "batch_norm2d: residual ", residual.describe(),
               " must have the convolution's output shape ", op.output.shape());
    check_same_dtype_and_device("batch_norm2d", x, {&residual});
    added = in_layout(residual, op.g.channels_last);
  }
  visit_floating(x.dtype(), "conv2d", [&]<typename T>() {
    using P = opmath_t<T>;
    const kernels::BatchNormEval<T> norm{.gamma = gamma.data<P>(),
                                         .beta = beta.data<P>(),
                                         .running_mean = running_mean.data<P>(),
                                         .running_var = running_var.data<P>(),
                                         .eps = static_cast<P>(norm_options.eps),
                                         .residual = data_or_null<T>(added),
                                         .relu = norm_options.fused_relu,
                                         .relu_upper = norm_options.relu_upper};
    kernels::conv2d_forward_batchnorm_eval<T>(x.device(), op.g, op.input.data<T>(), op.weight.data<T>(),
                                              data_or_null<T>(op.bias), norm, op.output.data<T>());
  });
  return op.output;
}

bool conv2d_normalizes_input(const Tensor& x, const Tensor& w, const Conv2dOptions& options) {
  if (x.dtype() != DType::Float32 || w.dtype() != DType::Float32 || runs_channels_last(x)) return false;
  return kernels::conv2d_normalizes_input(x.device(), conv2d_geometry(x.shape(), w.shape(), options));
}

namespace {

kernels::InputNormalization kernel_normalization(const ChannelNormalization& input, std::int64_t channels) {
  for (const Tensor* t : {&input.shift, &input.scale, &input.offset}) {
    KILN_CHECK(t->dtype() == DType::Float32 && t->shape() == Shape{channels} && t->is_contiguous(),
               "conv2d: the input normalization's coefficients must be dense float32 [", channels, "], got ",
               t->describe());
  }
  return {.shift = input.shift.data<float>(),
          .scale = input.scale.data<float>(),
          .offset = input.offset.data<float>(),
          .relu = input.relu,
          .relu_upper = input.relu_upper,
          .hardswish = input.hardswish};
}

}  // namespace

// (kernels::conv2d_forward_normalized_input and its weight gradient check conv2d_normalizes_input.)
Tensor conv2d_forward_normalized_input(const Tensor& x, const ChannelNormalization& input, const Tensor& w,
                                       const Tensor& bias, const Conv2dOptions& options) {
  const ForwardOperands op = forward_operands(x, w, bias, options);
  kernels::conv2d_forward_normalized_input(
      x.device(), op.g, op.input.data<float>(), kernel_normalization(input, op.g.in_channels),
      op.weight.data<float>(), data_or_null<float>(op.bias), op.output.data<float>());
  return op.output;
}

Tensor conv2d_backward_weight_normalized_input(const Tensor& gy, const Tensor& x,
                                               const ChannelNormalization& input, const Shape& w_shape,
                                               const Conv2dOptions& options) {
  kernels::Conv2dGeometry g = conv2d_geometry(x.shape(), w_shape, options);
  g.channels_last = runs_channels_last(x);
  const Tensor grad_output = in_layout(gy, g.channels_last), input_dense = in_layout(x, g.channels_last);
  Tensor grad_weight = Tensor::empty(w_shape, DType::Float32, x.device());
  kernels::conv2d_backward_weight_normalized_input(
      x.device(), g, grad_output.data<float>(), input_dense.data<float>(),
      kernel_normalization(input, g.in_channels), grad_weight.data<float>());
  return grad_weight;
}

Tensor conv2d_backward_data(const Tensor& gy, const Tensor& w, const Shape& x_shape,
                            const Conv2dOptions& options, const Tensor* into) {
  kernels::Conv2dGeometry g = conv2d_geometry(x_shape, w.shape(), options);
  g.channels_last = runs_channels_last(gy);
  const Tensor grad_output = in_layout(gy, g.channels_last), weight = contiguous(w);
  KILN_CHECK(!into || (into->shape() == x_shape && into->dtype() == gy.dtype() &&
                       into->device() == gy.device() && (into->is_contiguous() || into->is_channels_last())),
             "conv2d backward: cannot add the input gradient into ", into ? into->describe() : "");
  Tensor grad_input;  // a fresh gradient, unless it is summed into `into` in the kernel's stores
  visit_floating(gy.dtype(), "conv2d backward", [&]<typename T>() {
    if (into && dense_in_layout(*into, g.channels_last) &&
        kernels::conv2d_accumulates_input_gradient<T>(gy.device(), g)) {
      return kernels::conv2d_backward_data_accumulate<T>(gy.device(), g, grad_output.data<T>(),
                                                         weight.data<T>(), into->data<T>());
    }
    grad_input = empty_in_layout(x_shape, gy.dtype(), gy.device(), g.channels_last);
    kernels::conv2d_backward_data<T>(gy.device(), g, grad_output.data<T>(), weight.data<T>(), grad_input.data<T>());
    if (into) add_in_place(*into, grad_input);
  });
  return into ? *into : grad_input;
}

Tensor conv2d_backward_weight(const Tensor& gy, const Tensor& x, const Shape& w_shape, const Conv2dOptions& options) {
  kernels::Conv2dGeometry g = conv2d_geometry(x.shape(), w_shape, options);
  g.channels_last = runs_channels_last(x);
  const Tensor grad_output = in_layout(gy, g.channels_last), input = in_layout(x, g.channels_last);
  Tensor grad_weight = Tensor::empty(w_shape, gy.dtype(), gy.device());
  visit_floating(gy.dtype(), "conv2d backward", [&]<typename T>() {
    kernels::conv2d_backward_weight<T>(gy.device(), g, grad_output.data<T>(), input.data<T>(), grad_weight.data<T>());
  });
  return grad_weight;
}

Tensor conv2d_backward_bias(const Tensor& gy) {
  kernels::Conv2dGeometry g;  // the bias kernel reads only batch, out_channels, the output extent and layout
  g.channels_last = runs_channels_last(gy);
  const Tensor grad_output = in_layout(gy, g.channels_last);
  g.batch = gy.size(0);
  g.out_channels = gy.size(1);
  g.in_height = gy.size(2);
  g.in_width = gy.size(3);
  Tensor grad_bias = Tensor::empty({g.out_channels}, gy.dtype(), gy.device());
  visit_floating(gy.dtype(), "conv2d backward", [&]<typename T>() {
    kernels::conv2d_backward_bias<T>(gy.device(), g, grad_output.data<T>(), grad_bias.data<T>());
  });
  return grad_bias;
}

}  // namespace kiln::raw
