// Tensor-level calls of the pooling kernels. Each runs in its input's layout (runs_channels_last, as the
// convolutions and batch norms do), so a channels-last network stays channels-last through its pools; the
// backward passes run in the forward's layout, whatever layout the gradient arrives in, and return gx in it.
#include "kernels/pool/pool.hpp"

#include "core/raw.hpp"

namespace kiln::raw {
namespace {

kernels::Pool2dGeometry pool2d_geometry(const Shape& x, const Pool2dOptions& options, std::string_view op) {
  KILN_CHECK(x.rank() == 4, op, ": input must be [N, C, H, W], got ", x);
  kernels::Pool2dGeometry g;
  g.batch = x[0];
  g.channels = x[1];
  g.in_height = x[2];
  g.in_width = x[3];
  g.kernel_h = options.kernel[0];
  g.kernel_w = options.kernel[1];
  g.stride_h = options.stride[0] == 0 ? options.kernel[0] : options.stride[0];
  g.stride_w = options.stride[1] == 0 ? options.kernel[1] : options.stride[1];
  g.pad_h = options.padding[0];
  g.pad_w = options.padding[1];
  g.ceil_mode = options.ceil_mode;
  g.count_include_pad = options.count_include_pad;
  KILN_CHECK(g.kernel_h >= 1 && g.kernel_w >= 1 && g.stride_h >= 1 && g.stride_w >= 1, op,
             ": kernel and stride must be >= 1");
  // PyTorch's rule: padding beyond half the kernel would make windows that see only padding.
  KILN_CHECK(g.pad_h >= 0 && g.pad_w >= 0 && 2 * g.pad_h <= g.kernel_h && 2 * g.pad_w <= g.kernel_w, op,
             ": padding ", g.pad_h, "x", g.pad_w, " must be at most half the kernel ", g.kernel_h, "x", g.kernel_w);
  KILN_CHECK(g.out_height() >= 1 && g.out_width() >= 1, op, ": input ", x, " is smaller than the kernel ",
             g.kernel_h, "x", g.kernel_w);
  return g;
}

Shape pooled_shape(const kernels::Pool2dGeometry& g) { return {g.batch, g.channels, g.out_height(), g.out_width()}; }

kernels::GlobalPool2dGeometry global_pool2d_geometry(const Shape& x, bool channels_last) {
  return {.batch = x[0], .channels = x[1], .plane_size = x[2] * x[3], .channels_last = channels_last};
}

}  // namespace

MaxPoolResult max_pool2d_forward(const Tensor& x, const Pool2dOptions& options) {
  kernels::Pool2dGeometry g = pool2d_geometry(x.shape(), options, "max_pool2d");
  KILN_CHECK(g.in_height * g.in_width < (std::int64_t{1} << 31), "max_pool2d: input ", x.shape(),
             " has planes of 2^31 values or more, past what its int32 argmax indexes");
  g.channels_last = runs_channels_last(x);
  const Tensor input = in_layout(x, g.channels_last);
  MaxPoolResult result{empty_in_layout(pooled_shape(g), x.dtype(), x.device(), g.channels_last),
                       empty_in_layout(pooled_shape(g), DType::Int32, x.device(), g.channels_last)};
  visit_floating(x.dtype(), "max_pool2d", [&]<typename T>() {
    kernels::max_pool2d_forward<T>(x.device(), g, input.data<T>(), result.output.data<T>(),
                                   result.argmax.data<std::int32_t>());
  });
  return result;
}

Tensor max_pool2d_backward(const Tensor& gy, const Tensor& argmax, const Shape& x_shape,
                           const Pool2dOptions& options, bool channels_last) {
  kernels::Pool2dGeometry g = pool2d_geometry(x_shape, options, "max_pool2d backward");
  g.channels_last = channels_last;
  const Tensor grad_output = in_layout(gy, channels_last);
  KILN_CHECK(channels_last ? argmax.is_channels_last() : argmax.is_contiguous(),
             "max_pool2d backward: argmax ", argmax.describe(), " is not dense in the forward's layout");
  Tensor grad_input = empty_in_layout(x_shape, gy.dtype(), gy.device(), channels_last);
  visit_floating(gy.dtype(), "max_pool2d backward", [&]<typename T>() {
    kernels::max_pool2d_backward<T>(gy.device(), g, grad_output.data<T>(), argmax.data<std::int32_t>(),
                                    grad_input.data<T>());
  });
  return grad_input;
}

Tensor avg_pool2d_forward(const Tensor& x, const Pool2dOptions& options) {
  kernels::Pool2dGeometry g = pool2d_geometry(x.shape(), options, "avg_pool2d");
  g.channels_last = runs_channels_last(x);
  const Tensor input = in_layout(x, g.channels_last);
  Tensor output = empty_in_layout(pooled_shape(g), x.dtype(), x.device(), g.channels_last);
  visit_floating(x.dtype(), "avg_pool2d", [&]<typename T>() {
    kernels::avg_pool2d_forward<T>(x.device(), g, input.data<T>(), output.data<T>());
  });
  return output;
}

Tensor avg_pool2d_backward(const Tensor& gy, const Shape& x_shape, const Pool2dOptions& options,
                           bool channels_last) {
  kernels::Pool2dGeometry g = pool2d_geometry(x_shape, options, "avg_pool2d backward");
  g.channels_last = channels_last;
  const Tensor grad_output = in_layout(gy, channels_last);
  Tensor grad_input = empty_in_layout(x_shape, gy.dtype(), gy.device(), channels_last);
  visit_floating(gy.dtype(), "avg_pool2d backward", [&]<typename T>() {
    kernels::avg_pool2d_backward<T>(gy.device(), g, grad_output.data<T>(), grad_input.data<T>());
  });
  return grad_input;
}

Tensor global_avg_pool2d_forward(const Tensor& x) {
  KILN_CHECK(x.dim() == 4 && x.size(2) * x.size(3) > 0, "global_avg_pool2d: input must be [N, C, H, W] with H, W > 0, got ",
             x.shape());
  const kernels::GlobalPool2dGeometry g = global_pool2d_geometry(x.shape(), runs_channels_last(x));
  const Tensor input = in_layout(x, g.channels_last);
  Tensor output = Tensor::empty({x.size(0), x.size(1)}, x.dtype(), x.device());
  visit_floating(x.dtype(), "global_avg_pool2d", [&]<typename T>() {
    kernels::global_avg_pool2d_forward<T>(x.device(), g, input.data<T>(), output.data<T>());
  });
  return output;
}

Tensor global_avg_pool2d_backward(const Tensor& gy, const Shape& x_shape, bool channels_last,
                                  const Tensor* into) {
  const kernels::GlobalPool2dGeometry g = global_pool2d_geometry(x_shape, channels_last);
  const Tensor grad_output = contiguous(gy);
  if (into) {
    KILN_CHECK(into->shape() == x_shape && dense_in_layout(*into, channels_last),
               "global_avg_pool2d backward: ", into->describe(), " is no dense gradient of ", x_shape,
               " to add into");
    check_same_dtype_and_device("global_avg_pool2d backward", *into, {&grad_output});
  }
  Tensor grad_input = into ? *into : empty_in_layout(x_shape, gy.dtype(), gy.device(), channels_last);
  visit_floating(gy.dtype(), "global_avg_pool2d backward", [&]<typename T>() {
    kernels::global_avg_pool2d_backward<T>(gy.device(), g, grad_output.data<T>(), grad_input.data<T>(),
                                           into != nullptr);
  });
  return grad_input;
}

}  // namespace kiln::raw
