#include "layers/batchnorm.hpp"

#include <sstream>

namespace kiln::layers {

BatchNorm2d::BatchNorm2d(std::int64_t channels, BatchNormLayerOptions options)
    : channels_(channels), options_(options) {
  KILN_CHECK(channels > 0, "BatchNorm2d: channels ", channels, " must be positive");
  KILN_CHECK(options.momentum >= 0.0 && options.momentum <= 1.0 && options.eps > 0.0,
             "BatchNorm2d: momentum ", options.momentum, " must be in [0, 1] and eps ", options.eps,
             " positive");
  weight_ = register_parameter("weight", Tensor::ones({channels}));
  bias_ = register_parameter("bias", Tensor::zeros({channels}));
  running_mean_ = register_buffer("running_mean", Tensor::zeros({channels}));
  running_var_ = register_buffer("running_var", Tensor::ones({channels}));
}

Tensor BatchNorm2d::forward(const Tensor& input) { return forward_then(input, FusedActivation::None); }

Tensor BatchNorm2d::forward_then_relu(const Tensor& input) {
  return forward_then(input, FusedActivation::Relu);
}

Tensor BatchNorm2d::forward_then_relu6(const Tensor& input) {
  return forward_then(input, FusedActivation::Relu6);
}

Tensor BatchNorm2d::forward_then(const Tensor& input, FusedActivation activation) {
  check_input(input);
  return batch_norm2d(input, weight_, bias_, running_mean_, running_var_, kernel_options(activation));
}

Tensor BatchNorm2d::forward_add(const Tensor& input, const Tensor& residual, FusedActivation activation) {
  KILN_CHECK(activation == FusedActivation::None || activation == FusedActivation::Relu, describe(),
             ": the activation after a residual's sum is the ReLU or none");
  check_input(input);
  return batch_norm2d_add(input, residual, weight_, bias_, running_mean_, running_var_,
                          kernel_options(activation));
}

Tensor BatchNorm2d::forward_add_relu(const Tensor& input, const Tensor& residual) {
  return forward_add(input, residual, FusedActivation::Relu);
}

void BatchNorm2d::check_input(const Tensor& input) const {
  KILN_CHECK(input.dim() == 4 && input.size(1) == channels_, describe(), ": input ", input.describe(),
             " must be [N, ", channels_, ", H, W]");
}

BatchNormOptions BatchNorm2d::kernel_options(FusedActivation activation) const {
  BatchNormOptions options{
      .training = is_training(),
      .momentum = options_.momentum,
      .eps = options_.eps,
      .fused_relu = activation == FusedActivation::Relu || activation == FusedActivation::Relu6,
      .fused_hardswish = activation == FusedActivation::Hardswish};
  if (activation == FusedActivation::Relu6) options.relu_upper = 6.0f;
  return options;
}

std::string BatchNorm2d::describe() const {
  std::ostringstream out;
  out << "BatchNorm2d(" << channels_ << ", eps=" << options_.eps << ", momentum=" << options_.momentum << ")";
  return out.str();
}

}  // namespace kiln::layers
