// Tensor-level calls of the pad-identity shortcut's kernels (kernels/shortcut/subsample_pad.hpp).
#include "core/raw.hpp"
#include "kernels/shortcut/subsample_pad.hpp"

namespace kiln::raw {
namespace {

kernels::SubsamplePadGeometry subsample_pad_geometry(const Shape& x, std::int64_t stride,
                                                     std::int64_t pad_before, std::int64_t pad_after,
                                                     bool channels_last) {
  KILN_CHECK(x.rank() == 4, "subsample_pad_channels: input ", x, " must be [N, C, H, W]");
  KILN_CHECK(stride >= 1 && pad_before >= 0 && pad_after >= 0, "subsample_pad_channels: stride ", stride,
             " must be positive and the paddings ", pad_before, ", ", pad_after, " not negative");
  return {.batch = x[0],
          .channels = x[1],
          .height = x[2],
          .width = x[3],
          .stride = stride,
          .pad_before = pad_before,
          .pad_after = pad_after,
          .channels_last = channels_last};
}

}  // namespace

bool dense_in_layout(const Tensor& t, bool channels_last) {
  return channels_last ? t.is_channels_last() : t.is_contiguous();
}

Tensor subsample_pad_channels_forward(const Tensor& x, std::int64_t stride, std::int64_t pad_before,
                                      std::int64_t pad_after) {
  const bool channels_last = lies_channels_last(x);
  const kernels::SubsamplePadGeometry g =
      subsample_pad_geometry(x.shape(), stride, pad_before, pad_after, channels_last);
  const Tensor input = in_layout(x, channels_last);
  Tensor output = empty_in_layout({g.batch, g.out_channels(), g.out_height(), g.out_width()}, x.dtype(),
                                  x.device(), channels_last);
  visit_floating(x.dtype(), "subsample_pad_channels", [&]<typename T>() {
    kernels::subsample_pad_forward<T>(x.device(), g, input.data<T>(), output.data<T>());
  });
  return output;
}

Tensor subsample_pad_channels_backward(const Tensor& gy, const Shape& x_shape, std::int64_t stride,
                                       std::int64_t pad_before, bool channels_last, const Tensor* into) {
  const kernels::SubsamplePadGeometry g = subsample_pad_geometry(
      x_shape, stride, pad_before, gy.size(1) - x_shape[1] - pad_before, channels_last);
  KILN_CHECK(gy.shape() == Shape({g.batch, g.out_channels(), g.out_height(), g.out_width()}),
             "subsample_pad_channels backward: gradient ", gy.describe(), " does not fit the input ",
             x_shape);
  if (into) {
    KILN_CHECK(into->shape() == x_shape && into->dtype() == gy.dtype() && into->device() == gy.device() &&
                   dense_in_layout(*into, channels_last),
               "subsample_pad_channels backward: cannot add into ", into->describe());
  }
  const Tensor grad_output = in_layout(gy, channels_last);
  Tensor grad_input = into ? *into : empty_in_layout(x_shape, gy.dtype(), gy.device(), channels_last);
  visit_floating(gy.dtype(), "subsample_pad_channels backward", [&]<typename T>() {
    kernels::subsample_pad_backward<T>(gy.device(), g, grad_output.data<T>(), grad_input.data<T>(),
                                       into != nullptr);
  });
  return grad_input;
}

}  // namespace kiln::raw
