// QuantizedModel: an inference program (inference_program.hpp) with int8 weights and u8 activations,
// run by the int8 kernels (kernels/int8/). This is what `kiln quantize` writes and `kiln predict` and
// `kiln eval` run.
//
// Quantization (post-training, no retraining):
//   weights      symmetric s8 per output channel, after batch-norm folding (affine_quantization.hpp)
//   activations  affine u8 per tensor, from the ranges calibration saw (calibration.hpp); a value after a
//                ReLU gets zero point 0
//   bias         kept in float and added in the epilogue, with the activations' zero-point correction
//   logits       the classifier writes float (no final requantization)
//
// Every convolution (and Linear, a 1x1 convolution over a one-pixel image whose channels are the
// flattened input) sums exact u8 x s8 products in s32 and requantizes in its epilogue, with the residual
// shortcut and the ReLU fused (kernels/int8/int8_conv.hpp gives the arithmetic). Pools and the option-A
// shortcut keep their input's quantization and move bytes (int8_pool.hpp).
//
// Layouts: activations are channels last, [N][H][W][CS]. The image's channel stride is its channel count
// rounded up to 4 (VNNI multiplies 4 channels per lane); every convolution's output channels are rounded
// up to 16 (one vector of s32 sums), the padding channels' weights being zero.
//
// The file is a kiln checkpoint (train/checkpoint.hpp) whose header has kind "kiln-int8-classifier", the
// source model's architecture, classes and preprocessing (so predictions see the images training saw),
// the program's steps and each value's quantization; the tensors are each step's int8 weights in the
// float model's layout ([out, in / groups, KH, KW], or [out, in] for a Linear), per-channel scales and
// float biases. Kernel layouts are rebuilt when a model is made or loaded.
#pragma once

#include <cstdint>
#include <filesystem>
#include <limits>
#include <nlohmann/json_fwd.hpp>  // declarations only; the full json.hpp costs each includer ~2 s
#include <string>
#include <vector>

#include "core/tensor.hpp"
#include "kernels/int8/int8_conv.hpp"
#include "quant/affine_quantization.hpp"
#include "quant/calibration.hpp"
#include "quant/inference_program.hpp"
#include "train/checkpoint.hpp"

namespace kiln::quant {

inline constexpr const char* kQuantizedModelKind = "kiln-int8-classifier";
inline constexpr int kQuantizedModelSchema = 1;

struct QuantizedValue {
  ValueShape shape;
  std::int64_t channel_stride = 0;  // CS of the channels-last buffer
  AffineQuantization quantization;  // unused for the (float) logits
};

struct QuantizedStep {
  StepKind kind = StepKind::Conv;
  std::string name;
  int input = 0, output = 0, residual = -1;
  std::int64_t kernel = 1, stride = 1, padding = 0, dilation = 1, groups = 1;
  bool relu = false;
  float relu_upper = std::numeric_limits<float>::infinity();  // the ReLU's top in real values: 6 for ReLU6
  Pool2dOptions pool;
  std::int64_t channels_before = 0;
  // Conv and Linear, as stored: weights in the float layout, one scale and one bias per output channel.
  std::vector<std::int64_t> weight_shape;  // [out, in / groups, KH, KW] or [out, in]
  PerChannelWeights weights;
  std::vector<float> bias;
  // Derived by prepare(): the kernel's weights and epilogue constants.
  std::vector<std::int8_t> kernel_weights;  // packed (int8_conv.hpp), or [KH][KW][CS] for depthwise
  std::vector<float> multiplier, offset;
  float residual_multiplier = 0.0f;
};

class QuantizedModel {
 public:
  // Quantizes `program` with the activation ranges calibration measured (one per program value).
  static QuantizedModel quantize(const InferenceProgram& program, const std::vector<ValueRange>& ranges);

  // images float [N, C, H, W], preprocessed as for the float model -> logits float [N, classes].
  Tensor forward(const Tensor& images);

  // Writes the model with `header` (an object: architecture, classes, preprocessing, ...) plus the keys
  // this class owns ("kind", "schema", "int8"). Atomic, like every checkpoint.
  void save(const std::filesystem::path& path, nlohmann::json header) const;
  // Reads a model saved by save(); `header` receives the file's header. Throws naming the file when it is
  // not an int8 model or a field or tensor is missing or inconsistent.
  static QuantizedModel load(const std::filesystem::path& path, nlohmann::json* header = nullptr);
  // The same from a checkpoint already read from `path` (named in errors).
  static QuantizedModel from_checkpoint(const train::Checkpoint& checkpoint,
                                        const std::filesystem::path& path);

  std::int64_t classes() const { return values_[static_cast<std::size_t>(output_)].shape.channels; }
  const std::vector<QuantizedStep>& steps() const { return steps_; }
  const std::vector<QuantizedValue>& values() const { return values_; }
  std::int64_t weight_bytes() const;  // int8 weights plus float scales and biases, as stored

 private:
  void prepare();  // channel strides, kernel weights and epilogue constants from the stored fields
  void prepare_weights(QuantizedStep& step, const QuantizedValue& in, const QuantizedValue& out);
  void prepare_epilogue(QuantizedStep& step, const QuantizedValue& in, const QuantizedValue& out);
  bool writes_logits(const QuantizedStep& step) const { return step.output == output_; }  // float, not u8
  kernels::Int8Epilogue epilogue(const QuantizedStep& step) const;   // the residual read from its buffer
  void* destination(const QuantizedStep& step, std::int64_t batch);  // logits_, or the output's buffer
  void run_conv(const QuantizedStep& step, std::int64_t batch);
  void run_linear(const QuantizedStep& step, std::int64_t batch);
  std::uint8_t* buffer(int value, std::int64_t batch);

  std::vector<QuantizedValue> values_;
  std::vector<QuantizedStep> steps_;
  int output_ = 0;
  // Per-value activation buffers and the padded-input scratch, reused across forward calls.
  std::vector<std::vector<std::uint8_t>> buffers_;
  std::vector<std::uint8_t> padded_;
  std::vector<float> logits_;
};

}  // namespace kiln::quant
