// BatchNorm2d: batch normalization over the channels of NCHW images (Ioffe and Szegedy, 2015).
//
//   input [N, C, H, W] -> output [N, C, H, W],  y = weight * (x - mean) / sqrt(var + eps) + bias
//
// In train mode mean and var are the batch's, per channel over (N, H, W), and the running statistics
// move towards them: running = (1 - momentum) * running + momentum * batch (the running variance uses
// the unbiased batch variance, as in PyTorch). In eval mode the running statistics normalize instead.
#pragma once

#include <cstdint>
#include <string>

#include "core/op_options.hpp"
#include "layers/module.hpp"

namespace kiln::layers {

// The activation a batch norm's fused op applies to its output, in the same passes over memory
// (BatchNormOptions::fused_relu and relu_upper, fused_hardswish): none, ReLU, ReLU6 (min(max(x, 0), 6),
// clamp's values and gradients), or the hard swish (x * relu6(x + 3) / 6, MobileNetV3's).
enum class FusedActivation { None, Relu, Relu6, Hardswish };

struct BatchNormLayerOptions {
  double momentum = 0.1;
  double eps = 1e-5;
};

class BatchNorm2d : public Module {
 public:
  // Parameters "weight" (ones) and "bias" (zeros), buffers "running_mean" (zeros) and "running_var"
  // (ones), all [channels].
  explicit BatchNorm2d(std::int64_t channels, BatchNormLayerOptions options = {});

  Tensor forward(const Tensor& input) override;  // kiln::batch_norm2d with training = is_training()
  // relu(forward(input)) as one fused op (BatchNormOptions::fused_relu): what Sequential runs for a
  // BatchNorm2d followed by a ReLU, and what the blocks call for their BN -> ReLU pairs.
  Tensor forward_then_relu(const Tensor& input);
  // min(relu(forward(input)), 6) as one fused op: Sequential's BatchNorm2d followed by a ReLU6, and
  // MobileNetV2's blocks' BN -> ReLU6 pairs.
  Tensor forward_then_relu6(const Tensor& input);
  // The activation after forward(input) as one fused op: forward_then_relu, forward_then_relu6, the hard
  // swish (Sequential's BatchNorm2d followed by a Hardswish, MobileNetV3's blocks) or forward alone.
  Tensor forward_then(const Tensor& input, FusedActivation activation);
  // The options kiln's batch-norm ops take for this layer with `activation` fused: its mode (is_training),
  // momentum and eps (for the fused convolutions of conv_batch_norm.hpp).
  BatchNormOptions kernel_options(FusedActivation activation) const;
  // forward(input) + residual, then `activation` (None or Relu), as one op (kiln::batch_norm2d_add): a
  // residual block's tail, ResNet's with the ReLU, MobileNetV2's without.
  Tensor forward_add(const Tensor& input, const Tensor& residual, FusedActivation activation);
  // relu(forward(input) + residual): forward_add with the ReLU.
  Tensor forward_add_relu(const Tensor& input, const Tensor& residual);
  std::string describe() const override;         // "BatchNorm2d(16, eps=1e-05, momentum=0.1)"

  const Tensor& weight() const { return weight_; }
  const Tensor& bias() const { return bias_; }
  const Tensor& running_mean() const { return running_mean_; }
  const Tensor& running_var() const { return running_var_; }
  const BatchNormLayerOptions& options() const { return options_; }
  std::int64_t channels() const { return channels_; }

 private:
  void check_input(const Tensor& input) const;

  std::int64_t channels_;
  BatchNormLayerOptions options_;
  Tensor weight_, bias_, running_mean_, running_var_;
};

}  // namespace kiln::layers
