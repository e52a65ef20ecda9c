#include "layers/blocks.hpp"

#include <sstream>

#include "layers/conv_batch_norm.hpp"
#include "layers/sequential.hpp"

namespace kiln::layers {

// ---- PadIdentityShortcut ---------------------------------------------------------------------------------

PadIdentityShortcut::PadIdentityShortcut(std::int64_t in_channels, std::int64_t out_channels,
                                         std::int64_t stride)
    : in_channels_(in_channels), out_channels_(out_channels), stride_(stride) {
  KILN_CHECK(in_channels > 0 && out_channels >= in_channels && stride > 0,
             "PadIdentityShortcut: ", in_channels, " -> ", out_channels, " channels with stride ", stride,
             " (padding can only add channels, and the stride must be positive)");
}

Tensor PadIdentityShortcut::forward(const Tensor& input) {
  KILN_CHECK(input.dim() == 4 && input.size(1) == in_channels_, describe(), ": input ", input.describe(),
             " must be [N, ", in_channels_, ", H, W]");
  // [N, in, H, W] -> [N, out, ceil(H / stride), ceil(W / stride)]: the pixels a stride-s 3x3 convolution
  // with padding 1 centres on, between zero channels.
  const std::int64_t pad_before = (out_channels_ - in_channels_) / 2;
  return subsample_pad_channels(input, stride_, pad_before, out_channels_ - in_channels_ - pad_before);
}

std::string PadIdentityShortcut::describe() const {
  std::ostringstream out;
  out << "PadIdentityShortcut(" << in_channels_ << " -> " << out_channels_ << ", stride=" << stride_ << ")";
  return out.str();
}

// ---- BasicBlock ------------------------------------------------------------------------------------------

BasicBlock::BasicBlock(std::int64_t in_channels, std::int64_t out_channels, std::int64_t stride,
                       Generator& generator, Shortcut shortcut)
    : in_channels_(in_channels), out_channels_(out_channels), stride_(stride) {
  KILN_CHECK(in_channels > 0 && out_channels > 0 && stride > 0, "BasicBlock: in_channels ", in_channels,
             ", out_channels ", out_channels, " and stride ", stride, " must be positive");
  conv1_ = register_module(
      "conv1", std::make_shared<Conv2d>(in_channels, out_channels, 3, generator,
                                        Conv2dLayerOptions{.stride = stride, .padding = 1, .bias = false}));
  bn1_ = register_module("bn1", std::make_shared<BatchNorm2d>(out_channels));
  conv2_ =
      register_module("conv2", std::make_shared<Conv2d>(out_channels, out_channels, 3, generator,
                                                        Conv2dLayerOptions{.padding = 1, .bias = false}));
  bn2_ = register_module("bn2", std::make_shared<BatchNorm2d>(out_channels));

  if (in_channels == out_channels && stride == 1) {
    shortcut_name_ = "identity";
  } else if (shortcut == Shortcut::PadIdentity) {
    KILN_CHECK(out_channels >= in_channels, "BasicBlock(", in_channels, ", ", out_channels,
               "): the pad-identity shortcut cannot reduce channels; use Shortcut::Projection");
    shortcut_name_ = "pad-identity";
    shortcut_ =
        register_module("shortcut", std::make_shared<PadIdentityShortcut>(in_channels, out_channels, stride));
  } else {
    shortcut_name_ = "projection";
    auto projection = std::make_shared<Sequential>();
    projection
        ->add("conv", std::make_shared<Conv2d>(in_channels, out_channels, 1, generator,
                                               Conv2dLayerOptions{.stride = stride, .bias = false}))
        .add("bn", std::make_shared<BatchNorm2d>(out_channels));
    shortcut_ = register_module("shortcut", ModulePtr(projection));
  }
}

// relu(bn2(conv2(relu(bn1(conv1(x))))) + shortcut(x)), the sum and the last ReLU inside bn2's pass. In
// training bn1's normalizing pass and ReLU go into conv2's copies in; at inference each batch norm into its
// convolution's stores (conv_batch_norm.hpp).
Tensor BasicBlock::forward(const Tensor& input) {
  const Tensor identity = shortcut_ ? shortcut_->forward(input) : input;
  if (bn1_->is_training()) {
    const Tensor branch = batch_norm_then_conv(*bn1_, *conv2_, conv1_->forward(input), FusedActivation::Relu);
    return bn2_->forward_add_relu(branch, identity);
  }
  const Tensor hidden = conv_then_batch_norm(*conv1_, *bn1_, input, FusedActivation::Relu);
  return conv_then_batch_norm(*conv2_, *bn2_, hidden, FusedActivation::Relu, identity);
}

std::string BasicBlock::describe() const {
  std::ostringstream out;
  out << "BasicBlock(" << in_channels_ << ", " << out_channels_ << ", stride=" << stride_
      << ", shortcut=" << shortcut_name_ << ")";
  return out.str();
}

// ---- DepthwiseSeparable ----------------------------------------------------------------------------------

DepthwiseSeparable::DepthwiseSeparable(std::int64_t in_channels, std::int64_t out_channels,
                                       std::int64_t stride, Generator& generator)
    : in_channels_(in_channels), out_channels_(out_channels), stride_(stride) {
  KILN_CHECK(in_channels > 0 && out_channels > 0 && stride > 0, "DepthwiseSeparable: in_channels ",
             in_channels, ", out_channels ", out_channels, " and stride ", stride, " must be positive");
  depthwise_ = register_module(
      "depthwise",
      std::make_shared<Conv2d>(
          in_channels, in_channels, 3, generator,
          Conv2dLayerOptions{.stride = stride, .padding = 1, .groups = in_channels, .bias = false}));
  bn1_ = register_module("bn1", std::make_shared<BatchNorm2d>(in_channels));
  pointwise_ = register_module("pointwise", std::make_shared<Conv2d>(in_channels, out_channels, 1, generator,
                                                                     Conv2dLayerOptions{.bias = false}));
  bn2_ = register_module("bn2", std::make_shared<BatchNorm2d>(out_channels));
}

Tensor DepthwiseSeparable::forward(const Tensor& input) {
  const Tensor per_channel = conv_then_batch_norm(*depthwise_, *bn1_, input, FusedActivation::Relu);
  return conv_then_batch_norm(*pointwise_, *bn2_, per_channel, FusedActivation::Relu);
}

std::string DepthwiseSeparable::describe() const {
  std::ostringstream out;
  out << "DepthwiseSeparable(" << in_channels_ << ", " << out_channels_ << ", stride=" << stride_ << ")";
  return out.str();
}

// ---- InvertedResidual ------------------------------------------------------------------------------------

std::string_view block_activation_name(BlockActivation activation) {
  switch (activation) {
    case BlockActivation::Relu6:
      return "relu6";
    case BlockActivation::Relu:
      return "relu";
    case BlockActivation::Hardswish:
      return "hardswish";
  }
  return "?";
}

InvertedResidual::InvertedResidual(std::int64_t in_channels, std::int64_t out_channels, std::int64_t stride,
                                   std::int64_t expansion, Generator& generator)
    : InvertedResidual(in_channels, out_channels, {.stride = stride, .expansion = expansion}, generator) {}

InvertedResidual::InvertedResidual(std::int64_t in_channels, std::int64_t out_channels,
                                   const InvertedResidualOptions& options, Generator& generator)
    : in_channels_(in_channels),
      out_channels_(out_channels),
      hidden_(options.hidden_channels > 0 ? options.hidden_channels : in_channels * options.expansion),
      options_(options) {
  KILN_CHECK(in_channels > 0 && out_channels > 0 && options.stride > 0 && options.expansion > 0 &&
                 options.hidden_channels >= 0 && options.squeeze_channels >= 0,
             "InvertedResidual: in_channels ", in_channels, ", out_channels ", out_channels, ", stride ",
             options.stride, " and expansion ", options.expansion, " must be positive (hidden_channels ",
             options.hidden_channels, " and squeeze_channels ", options.squeeze_channels, " at least 0)");
  KILN_CHECK(options.kernel > 0 && options.kernel % 2 == 1, "InvertedResidual: the depthwise kernel ",
             options.kernel, " must be odd (it is padded by kernel / 2 on each side)");
  if (expands()) {
    expand_ = register_module("expand", std::make_shared<Conv2d>(in_channels, hidden_, 1, generator,
                                                                 Conv2dLayerOptions{.bias = false}));
    bn0_ = register_module("bn0", std::make_shared<BatchNorm2d>(hidden_));
  }
  depthwise_ = register_module(
      "depthwise",
      std::make_shared<Conv2d>(
          hidden_, hidden_, options.kernel, generator,
          Conv2dLayerOptions{
              .stride = options.stride, .padding = options.kernel / 2, .groups = hidden_, .bias = false}));
  bn1_ = register_module("bn1", std::make_shared<BatchNorm2d>(hidden_));
  if (options.squeeze_channels > 0) {
    squeeze_ =
        register_module("squeeze", std::make_shared<SqueezeExcitation>(hidden_, options.squeeze_channels,
                                                                       SqueezeGate::Hardsigmoid, generator));
  }
  project_ = register_module("project", std::make_shared<Conv2d>(hidden_, out_channels, 1, generator,
                                                                 Conv2dLayerOptions{.bias = false}));
  bn2_ = register_module("bn2", std::make_shared<BatchNorm2d>(out_channels));
}

FusedActivation InvertedResidual::fused_activation() const {
  switch (options_.activation) {
    case BlockActivation::Relu6:
      return FusedActivation::Relu6;
    case BlockActivation::Relu:
      return FusedActivation::Relu;
    case BlockActivation::Hardswish:
      break;
  }
  return FusedActivation::Hardswish;
}

// conv -> batch norm -> the block's activation, three times (the last without the activation). Each
// activation rides its batch norm's passes (FusedActivation); at inference each batch norm rides its
// convolution's stores, and in training the expansion's rides the depthwise convolution's copies in
// (conv_batch_norm.hpp).
Tensor InvertedResidual::forward(const Tensor& input) {
  const FusedActivation activation = fused_activation();
  Tensor hidden;
  if (expand_ && bn0_->is_training()) {
    // The expansion's batch norm and activation ride the depthwise convolution's copies in
    // (batch_norm_then_conv): the widest tensor of the block is never written normalized.
    hidden = bn1_->forward_then(batch_norm_then_conv(*bn0_, *depthwise_, expand_->forward(input), activation),
                                activation);
  } else {
    hidden = expand_ ? conv_then_batch_norm(*expand_, *bn0_, input, activation) : input;
    hidden = conv_then_batch_norm(*depthwise_, *bn1_, hidden, activation);
  }
  if (squeeze_) hidden = (*squeeze_)(hidden);
  // The shortcut's sum rides the projection's batch norm (batch_norm2d_add).
  return conv_then_batch_norm(*project_, *bn2_, hidden, FusedActivation::None, residual() ? input : Tensor());
}

std::string InvertedResidual::describe() const {
  std::ostringstream out;
  out << "InvertedResidual(" << in_channels_ << ", " << out_channels_ << ", stride=" << options_.stride;
  const InvertedResidualOptions v2;  // MobileNetV2's block is described as it always was
  if (options_.hidden_channels == 0) out << ", expansion=" << options_.expansion;
  if (options_.hidden_channels > 0) out << ", hidden=" << hidden_;
  if (options_.kernel != v2.kernel) out << ", kernel=" << options_.kernel;
  if (options_.activation != v2.activation) out << ", " << block_activation_name(options_.activation);
  if (squeeze_) out << ", squeeze=" << options_.squeeze_channels;
  out << ")";
  return out.str();
}

// ---- SqueezeExcitation -----------------------------------------------------------------------------------

std::string_view squeeze_gate_name(SqueezeGate gate) {
  return gate == SqueezeGate::Sigmoid ? "sigmoid" : "hardsigmoid";
}

SqueezeExcitation::SqueezeExcitation(std::int64_t channels, std::int64_t squeeze_channels, SqueezeGate gate,
                                     Generator& generator)
    : channels_(channels), squeeze_channels_(squeeze_channels), gate_(gate) {
  KILN_CHECK(channels > 0 && squeeze_channels > 0, "SqueezeExcitation: channels ", channels,
             " and squeeze_channels ", squeeze_channels, " must be positive");
  reduce_ = register_module("reduce", std::make_shared<Conv2d>(channels, squeeze_channels, 1, generator));
  expand_ = register_module("expand", std::make_shared<Conv2d>(squeeze_channels, channels, 1, generator));
}

Tensor SqueezeExcitation::forward(const Tensor& input) {
  KILN_CHECK(input.dim() == 4 && input.size(1) == channels_, describe(), ": input ", input.describe(),
             " must be [N, ", channels_, ", H, W]");
  // The means through the pooling kernel ([N, C], either layout), then one pixel an image for the 1x1s.
  const Tensor means = global_avg_pool2d(input).reshape({input.size(0), channels_, 1, 1});
  const Tensor logits = (*expand_)(relu((*reduce_)(means)));
  const Tensor scale = gate_ == SqueezeGate::Sigmoid ? sigmoid(logits) : hardsigmoid(logits);
  return channel_scale(input, scale);  // [N, C, H, W] * [N, C, 1, 1], in one pass each way
}

std::string SqueezeExcitation::describe() const {
  std::ostringstream out;
  out << "SqueezeExcitation(" << channels_ << ", squeeze=" << squeeze_channels_
      << ", gate=" << squeeze_gate_name(gate_) << ")";
  return out.str();
}

}  // namespace kiln::layers
