// A convolution and the batch norm after it (then, optionally, a residual's sum, and a ReLU, a ReLU6 or the
// hard swish), as the blocks and Sequential run them:
//
//   conv_then_batch_norm(conv, norm, x, after)                  = after(norm(conv(x)))
//   conv_then_batch_norm(conv, norm, x, after, residual)        = after(norm(conv(x)) + residual)
//
// after: FusedActivation::None, Relu, Relu6 or Hardswish (layers/batchnorm.hpp); with a residual, None (an
// inverted residual block's tail) or Relu (a ResNet block's).
//
// Inference (norm in eval mode, grad mode off: `kiln eval`, `kiln predict`, the evaluation after each epoch)
// takes one op, kiln::conv2d_batch_norm_eval, whose normalization rides the convolution's stores where the
// kernels can (the CPU's Winograd layers) instead of a pass of its own over the output; a hard swish then
// follows as an op of its own (the stores apply a ReLU at most). Otherwise the layers'
// own forwards: batch statistics in training, and the tape when gradients flow. The values are the same
// either way, bit for bit.
#pragma once

#include "core/tensor.hpp"
#include "layers/batchnorm.hpp"
#include "layers/conv2d.hpp"

namespace kiln::layers {

Tensor conv_then_batch_norm(Conv2d& conv, BatchNorm2d& norm, const Tensor& input, FusedActivation after,
                            const Tensor& residual = Tensor());

// conv(after(norm(input))): a batch norm, its activation and the convolution that reads them, as a residual
// block's middle (the ReLU before its second 3x3) and an inverted residual block's expansion (its activation
// before the depthwise convolution) run them. In training one op, kiln::conv2d_of_batch_norm: where the
// kernels can, the batch norm computes its statistics alone and the convolution normalizes and activates its
// input as it copies it in (forward, and again for its weight gradient), so the batch norm's output is never
// written to memory. Otherwise, and in eval mode, the layers' own forwards. The same values, gradients and
// running statistics either way.
Tensor batch_norm_then_conv(BatchNorm2d& norm, Conv2d& conv, const Tensor& input, FusedActivation after);

}  // namespace kiln::layers
