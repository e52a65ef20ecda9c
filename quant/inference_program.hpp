// An inference program: a trained model lowered to the straight-line list of steps that int8 inference
// runs, with batch-norm folded into the convolution before it and each ReLU fused into the step it
// follows.
//
//   ResNet-20:  conv1+bn1+relu -> [conv1+bn1+relu -> conv2+bn2 (+ shortcut) + relu] x 9 -> global pool -> fc
//
// Folding batch-norm (inference mode, y = gamma (x - mean) / sqrt(var + eps) + beta) into the convolution
// before it:  w'[co] = w[co] * gamma[co] / sqrt(var[co] + eps)
//             b'[co] = (b[co] - mean[co]) * gamma[co] / sqrt(var[co] + eps) + beta[co]
//
// The program keeps the float weights: run_float evaluates it in float32 with kiln's ops (the calibration
// pass that measures each value's range, and the check that lowering kept the model's function), and
// quant/quantized_model.hpp turns it into int8 steps.
//
// Values are numbered: 0 is the input image, each step writes one new value. Shapes are per image,
// [channels, height, width]; a Linear's output is [features, 1, 1]. A Linear reads its input value as
// flattened in NCHW order (Flatten is folded into it), so it takes a conv stack's [C, H, W] directly.
//
// Supported: Sequential, Conv2d (any stride, padding, dilation; groups 1 or depthwise), BatchNorm2d after a
// Conv2d, ReLU or ReLU6 after a Conv2d or Linear (ReLU6: a ReLU with a top, which the int8 steps clamp at
// too), Linear, MaxPool2d, AvgPool2d, GlobalAvgPool2d, Flatten, Dropout (the identity), BasicBlock with any
// shortcut, DepthwiseSeparable, InvertedResidual: every model in the zoo. Anything else is an error naming
// the module.
#pragma once

#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "core/op_options.hpp"
#include "core/tensor.hpp"
#include "kernels/pool/pool.hpp"
#include "layers/module.hpp"

namespace kiln::quant {

struct ValueShape {
  std::int64_t channels = 1, height = 1, width = 1;
  std::int64_t numel() const { return channels * height * width; }
};

enum class StepKind { Conv, Linear, MaxPool, AvgPool, GlobalAvgPool, PadShortcut };

struct Step {
  StepKind kind = StepKind::Conv;
  std::string name;  // the module's path in the model: "stage1.0.conv1"
  int input = 0, output = 0;
  int residual = -1;  // Conv: a value added before the ReLU (a residual block's shortcut); -1: none
  // Conv: weight [out, in / groups, KH, KW]; Linear: weight [out, in]. Batch-norm folded in; bias [out].
  Tensor weight;
  std::vector<float> bias;
  std::int64_t stride = 1, padding = 0, dilation = 1, groups = 1;  // Conv; PadShortcut uses stride
  bool relu = false;                                               // Conv, Linear
  double relu_upper = std::numeric_limits<double>::infinity();     // the ReLU's top: 6 for a ReLU6
  Pool2dOptions pool;                                              // MaxPool, AvgPool
  std::int64_t channels_before = 0;                                // PadShortcut: zero channels in front
};

struct InferenceProgram {
  std::vector<ValueShape> values;  // values[0]: the input image
  std::vector<Step> steps;         // in execution order
  int output = 0;                  // the logits, [classes, 1, 1]

  std::int64_t classes() const { return values[static_cast<std::size_t>(output)].channels; }
};

// A MaxPool or AvgPool step's geometry on `batch` images of shape `in` (a stride of 0 means the kernel's).
kernels::Pool2dGeometry pool_geometry(const Pool2dOptions& options, const ValueShape& in,
                                      std::int64_t batch = 1);

// Lowers `model` (in eval mode: batch-norm uses its running statistics) for images of shape `input`.
// Throws kiln::Error naming the first module it cannot lower.
InferenceProgram lower_for_inference(const layers::Module& model, ValueShape input);

// Called with each value's id and its float tensor [N, C, H, W] as run_float computes it.
using ValueObserver = std::function<void(int value, const Tensor& tensor)>;

// Evaluates the program in float32 (no tape): images [N, C, H, W] -> logits [N, classes].
Tensor run_float(const InferenceProgram& program, const Tensor& images, const ValueObserver& observe = {});

}  // namespace kiln::quant
