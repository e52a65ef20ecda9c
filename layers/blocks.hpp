// The building blocks of residual networks and MobileNets (the first and the second), and the
// squeeze-and-excitation block.
//
// BasicBlock (He et al. 2015, "Deep Residual Learning for Image Recognition", figure 2):
//
//   x [N, in, H, W] ─ conv 3x3 (stride, pad 1) ─ BN ─ ReLU ─ conv 3x3 (pad 1) ─ BN ─(+)─ ReLU ─ y
//                  └──────────────────────── shortcut(x) ──────────────────────────┘
//   y [N, out, H_out, W_out], H_out = ceil(H / stride)
//
// The convolutions have no bias (the batch-norm after each supplies one). The shortcut is the identity
// when the shape is kept (in == out, stride 1); otherwise one of the paper's two options:
//   PadIdentity (option A, its CIFAR networks): keep every stride-th pixel and append zero channels;
//                no parameters.
//   Projection  (option B): a 1x1 convolution with the stride, then batch-norm.
//
// DepthwiseSeparable (Howard et al. 2017, "MobileNets", figure 3): a standard 3x3 convolution factored
// into a per-channel 3x3 and a 1x1 that mixes channels, each followed by BN and ReLU:
//
//   x [N, in, H, W] ─ depthwise conv 3x3 (groups = in, stride, pad 1) ─ BN ─ ReLU   [N, in, H_out, W_out]
//                   ─ pointwise conv 1x1 (in -> out) ─ BN ─ ReLU                      [N, out, H_out, W_out]
//
// InvertedResidual (Sandler et al. 2018, "MobileNetV2", figure 3 and table 1): the separable block turned
// around: a 1x1 expands the channels t-fold, the depthwise 3x3 filters in the wide space, and a 1x1 projects
// to a narrow output with no activation after it (a ReLU there would destroy information in so few
// channels); the shortcut joins the narrow ends when the shape is kept:
//
//   x [N, in, H, W] ─ conv 1x1 (in -> t in) ─ BN ─ ReLU6          [N, t in, H, W]  (left out when t == 1)
//                   ─ depthwise conv 3x3 (stride, pad 1) ─ BN ─ ReLU6   [N, t in, H_out, W_out]
//                   ─ conv 1x1 (t in -> out) ─ BN ─(+ x when stride 1 and in == out)   [N, out, H_out, W_out]
//
// MobileNetV3 (Howard et al. 2019, "Searching for MobileNetV3", figure 4 and table 2) keeps the block and
// varies it (InvertedResidualOptions): the hidden width set outright, a 5x5 depthwise in places, ReLU or
// the hard swish for ReLU6, and a squeeze-and-excitation on the hidden channels after the depthwise.
//
// SqueezeExcitation (Hu et al. 2018, "Squeeze-and-Excitation Networks", figure 2; MobileNetV3's with the hard
// sigmoid, Howard et al. 2019): each channel scaled by a gate in [0, 1] that every channel's mean decides,
// through a bottleneck of `squeeze` channels (1x1 convolutions with biases, on one pixel an image):
//
//   x [N, C, H, W] ─ mean over H, W [N, C, 1, 1] ─ conv 1x1 (C -> squeeze) ─ ReLU
//                  ─ conv 1x1 (squeeze -> C) ─ gate (sigmoid or hard sigmoid)   s [N, C, 1, 1]
//   y = x * s      [N, C, H, W]
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "core/generator.hpp"
#include "layers/batchnorm.hpp"
#include "layers/conv2d.hpp"
#include "layers/module.hpp"

namespace kiln::layers {

enum class Shortcut { PadIdentity, Projection };

// Option A's shortcut: x [N, in, H, W] -> [N, out, ceil(H / stride), ceil(W / stride)]. Keeps every
// stride-th row and column, then pads the channels with zeros split evenly around x's channels
// ((out - in) / 2 before, the rest after), as the common CIFAR ResNet implementations do.
class PadIdentityShortcut : public Module {
 public:
  PadIdentityShortcut(std::int64_t in_channels, std::int64_t out_channels, std::int64_t stride);
  Tensor forward(const Tensor& input) override;
  std::string describe() const override;  // "PadIdentityShortcut(16 -> 32, stride=2)"

  std::int64_t in_channels() const { return in_channels_; }
  std::int64_t out_channels() const { return out_channels_; }
  std::int64_t stride() const { return stride_; }

 private:
  std::int64_t in_channels_, out_channels_, stride_;
};

// Children "conv1", "bn1", "conv2", "bn2", and "shortcut" when it is not the identity: a
// PadIdentityShortcut, or a Sequential of "conv" and "bn" (so "shortcut.conv.weight").
class BasicBlock : public Module {
 public:
  BasicBlock(std::int64_t in_channels, std::int64_t out_channels, std::int64_t stride, Generator& generator,
             Shortcut shortcut = Shortcut::PadIdentity);

  Tensor forward(const Tensor& input) override;
  std::string describe() const override;  // "BasicBlock(16, 32, stride=2, shortcut=pad-identity)"

  // Null when the shortcut is the identity.
  const ModulePtr& shortcut() const { return shortcut_; }

 private:
  std::int64_t in_channels_, out_channels_, stride_;
  std::shared_ptr<Conv2d> conv1_;
  std::shared_ptr<BatchNorm2d> bn1_;
  std::shared_ptr<Conv2d> conv2_;
  std::shared_ptr<BatchNorm2d> bn2_;
  ModulePtr shortcut_;
  std::string shortcut_name_;  // "identity", "pad-identity" or "projection", for describe()
};

// Children "depthwise", "bn1", "pointwise", "bn2". Parameters: in * 9 (depthwise) + 2 * in (bn1)
// + in * out (pointwise) + 2 * out (bn2).
class DepthwiseSeparable : public Module {
 public:
  DepthwiseSeparable(std::int64_t in_channels, std::int64_t out_channels, std::int64_t stride,
                     Generator& generator);

  Tensor forward(const Tensor& input) override;
  std::string describe() const override;  // "DepthwiseSeparable(32, 64, stride=1)"

 private:
  std::int64_t in_channels_, out_channels_, stride_;
  std::shared_ptr<Conv2d> depthwise_;
  std::shared_ptr<BatchNorm2d> bn1_;
  std::shared_ptr<Conv2d> pointwise_;
  std::shared_ptr<BatchNorm2d> bn2_;
};

// The squeeze-and-excitation block's gate: the sigmoid (Hu et al.) or the hard sigmoid, relu6(x + 3) / 6
// (MobileNetV3's, no exponential).
enum class SqueezeGate { Sigmoid, Hardsigmoid };
std::string_view squeeze_gate_name(SqueezeGate gate);  // "sigmoid", "hardsigmoid"

// Children "reduce" and "expand", 1x1 convolutions with biases. Parameters: 2 C squeeze + squeeze + C.
class SqueezeExcitation : public Module {
 public:
  SqueezeExcitation(std::int64_t channels, std::int64_t squeeze_channels, SqueezeGate gate,
                    Generator& generator);

  Tensor forward(const Tensor& input) override;
  std::string describe() const override;  // "SqueezeExcitation(64, squeeze=16, gate=hardsigmoid)"

  std::int64_t channels() const { return channels_; }
  std::int64_t squeeze_channels() const { return squeeze_channels_; }
  SqueezeGate gate() const { return gate_; }

 private:
  std::int64_t channels_, squeeze_channels_;
  SqueezeGate gate_;
  std::shared_ptr<Conv2d> reduce_;
  std::shared_ptr<Conv2d> expand_;
};

// The activation after an inverted residual block's expansion and its depthwise convolution.
enum class BlockActivation { Relu6, Relu, Hardswish };
std::string_view block_activation_name(BlockActivation activation);  // "relu6", "relu", "hardswish"

// The defaults are MobileNetV2's block; MobileNetV3's (Howard et al. 2019, table 2) sets the hidden width
// outright, a 5x5 depthwise kernel in places, the hard swish, and a squeeze-and-excitation after the
// depthwise convolution.
struct InvertedResidualOptions {
  std::int64_t stride = 1;
  std::int64_t expansion = 6;        // hidden = expansion * in, unless hidden_channels is set
  std::int64_t hidden_channels = 0;  // > 0: the hidden width itself (MobileNetV3's "exp size")
  std::int64_t kernel = 3;           // the depthwise convolution's, padded by kernel / 2
  BlockActivation activation = BlockActivation::Relu6;
  std::int64_t squeeze_channels = 0;  // > 0: a squeeze-and-excitation (hard-sigmoid gate) on the hidden
};

// Children "expand" and "bn0" (when the hidden width is not the input's), "depthwise", "bn1", "squeeze"
// (with squeeze_channels), "project", "bn2". Parameters, h the hidden width, k the kernel: in * h + 2 h
// (when expanded) + k^2 h + 2 h + the squeeze's + h * out + 2 out.
class InvertedResidual : public Module {
 public:
  InvertedResidual(std::int64_t in_channels, std::int64_t out_channels, std::int64_t stride,
                   std::int64_t expansion, Generator& generator);
  InvertedResidual(std::int64_t in_channels, std::int64_t out_channels,
                   const InvertedResidualOptions& options, Generator& generator);

  Tensor forward(const Tensor& input) override;
  // "InvertedResidual(16, 24, stride=2, expansion=6)" for MobileNetV2's block; otherwise
  // "InvertedResidual(16, 24, stride=2, hidden=72, kernel=5, hardswish, squeeze=24)", naming what is set.
  std::string describe() const override;

  const InvertedResidualOptions& options() const { return options_; }
  std::int64_t hidden_channels() const { return hidden_; }
  // Whether a 1x1 convolution widens the input: the hidden width is not the input's.
  bool expands() const { return hidden_ != in_channels_; }
  // Whether the input is added to the output: stride 1 and as many channels out as in.
  bool residual() const { return options_.stride == 1 && in_channels_ == out_channels_; }

 private:
  // The block's activation as its batch norms fuse it.
  FusedActivation fused_activation() const;

  std::int64_t in_channels_, out_channels_, hidden_;
  InvertedResidualOptions options_;
  std::shared_ptr<Conv2d> expand_;  // null when the block does not expand
  std::shared_ptr<BatchNorm2d> bn0_;
  std::shared_ptr<Conv2d> depthwise_;
  std::shared_ptr<BatchNorm2d> bn1_;
  std::shared_ptr<SqueezeExcitation> squeeze_;  // null without squeeze_channels
  std::shared_ptr<Conv2d> project_;
  std::shared_ptr<BatchNorm2d> bn2_;
};

}  // namespace kiln::layers
