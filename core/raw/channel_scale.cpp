// Tensor-level calls of the channel-scale kernels (kernels/channel_scale/channel_scale.hpp).
#include "kernels/channel_scale/channel_scale.hpp"

#include "core/raw.hpp"

namespace kiln::raw {
namespace {

// x's geometry, after checking the gates against it: N * C of them, x's dtype and device.
kernels::ChannelScaleGeometry channel_scale_geometry(const Tensor& x, const Tensor& scale) {
  KILN_CHECK(x.dim() == 4, "channel_scale: input ", x.describe(), " must be [N, C, H, W]");
  KILN_CHECK(scale.numel() == x.size(0) * x.size(1), "channel_scale: scale ", scale.describe(),
             " must hold one value per image and channel of ", x.describe());
  check_same_dtype_and_device("channel_scale", x, {&scale});
  return {.batch = x.size(0),
          .channels = x.size(1),
          .height = x.size(2),
          .width = x.size(3),
          .channels_last = runs_channels_last(x)};
}

}  // namespace

Tensor channel_scale_forward(const Tensor& x, const Tensor& scale) {
  const kernels::ChannelScaleGeometry g = channel_scale_geometry(x, scale);
  const Tensor input = in_layout(x, g.channels_last), gates = contiguous(scale);
  Tensor output = empty_in_layout(x.shape(), x.dtype(), x.device(), g.channels_last);
  visit_floating(x.dtype(), "channel_scale", [&]<typename T>() {
    kernels::channel_scale_forward<T>(x.device(), g, input.data<T>(), gates.data<T>(), output.data<T>());
  });
  return output;
}

ChannelScaleGrads channel_scale_backward(const Tensor& gy, const Tensor& x, const Tensor& scale) {
  const kernels::ChannelScaleGeometry g = channel_scale_geometry(x, scale);
  check_same_dtype_and_device("channel_scale backward", x, {&gy});
  const Tensor input = in_layout(x, g.channels_last), gates = contiguous(scale);
  const Tensor grad_output = in_layout(gy, g.channels_last);
  ChannelScaleGrads grads{empty_in_layout(x.shape(), x.dtype(), x.device(), g.channels_last),
                          Tensor::empty({g.batch, g.channels}, x.dtype(), x.device())};
  visit_floating(x.dtype(), "channel_scale backward", [&]<typename T>() {
    kernels::channel_scale_backward<T>(x.device(), g, input.data<T>(), gates.data<T>(), grad_output.data<T>(),
                                       grads.x.data<T>(), grads.scale.data<T>());
  });
  return grads;
}

}  // namespace kiln::raw
