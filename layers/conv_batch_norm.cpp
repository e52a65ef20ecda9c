#include "layers/conv_batch_norm.hpp"

#include "core/autograd.hpp"
#include "core/ops.hpp"
#include "layers/compute_dtype.hpp"

namespace kiln::layers {

Tensor conv_then_batch_norm(Conv2d& conv, BatchNorm2d& norm, const Tensor& input, FusedActivation after,
                            const Tensor& residual) {
  KILN_CHECK(!residual.defined() || after == FusedActivation::None || after == FusedActivation::Relu,
             "conv_then_batch_norm: ", norm.describe(),
             "'s residual's sum is followed by the ReLU or nothing");
  if (norm.is_training() || grad_enabled()) {
    const Tensor output = conv.forward(input);
    if (residual.defined()) return norm.forward_add(output, residual, after);
    return norm.forward_then(output, after);
  }
  KILN_CHECK(conv.out_channels() == norm.channels(), conv.describe(), " gives ", conv.out_channels(),
             " channels, but ", norm.describe(), " normalizes ", norm.channels());
  if (after == FusedActivation::Hardswish) {  // the convolutions' stores apply a ReLU at most
    return hardswish(conv2d_batch_norm_eval(input, as_compute_dtype(conv.weight(), input),
                                            as_compute_dtype(conv.bias(), input), conv.conv_options(),
                                            norm.weight(), norm.bias(), norm.running_mean(),
                                            norm.running_var(), norm.kernel_options(FusedActivation::None)));
  }
  return conv2d_batch_norm_eval(input, as_compute_dtype(conv.weight(), input),
                                as_compute_dtype(conv.bias(), input), conv.conv_options(), norm.weight(),
                                norm.bias(), norm.running_mean(), norm.running_var(),
                                norm.kernel_options(after), residual);
}

Tensor batch_norm_then_conv(BatchNorm2d& norm, Conv2d& conv, const Tensor& input, FusedActivation after) {
  if (!norm.is_training()) return conv.forward(norm.forward_then(input, after));
  KILN_CHECK(norm.channels() == conv.in_channels(), norm.describe(), " gives ", norm.channels(),
             " channels, but ", conv.describe(), " reads ", conv.in_channels());
  return conv2d_of_batch_norm(input, norm.weight(), norm.bias(), norm.running_mean(), norm.running_var(),
                              norm.kernel_options(after), as_compute_dtype(conv.weight(), input),
                              as_compute_dtype(conv.bias(), input), conv.conv_options());
}

}  // namespace kiln::layers
