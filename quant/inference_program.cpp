#include "quant/inference_program.hpp"

#include <cmath>
#include <limits>
#include <memory>
#include <optional>

#include "core/autograd.hpp"
#include "core/error.hpp"
#include "core/ops.hpp"
#include "kernels/pool/pool.hpp"
#include "layers/layers.hpp"

namespace kiln::quant {
namespace {

using layers::Module;

std::string join(const std::string& path, const std::string& name) {
  return path.empty() ? name : path + "." + name;
}

std::string shown(const std::string& path) { return path.empty() ? "(the model)" : "'" + path + "'"; }

// Walks the module tree, appending steps; current_ is the value the next step reads.
class Lowering {
 public:
  explicit Lowering(ValueShape input) { program_.values.push_back(input); }

  InferenceProgram finish() {
    KILN_CHECK(!program_.steps.empty() && program_.steps.back().kind == StepKind::Linear &&
                   !program_.steps.back().relu,
               "quantize: the model must end with a Linear classifier (its logits are the output)");
    program_.output = current_;
    return std::move(program_);
  }

  void lower(const Module& module, const std::string& path) {
    if (const auto* sequential = dynamic_cast<const layers::Sequential*>(&module))
      return lower_sequence(*sequential, path);
    if (const auto* block = dynamic_cast<const layers::BasicBlock*>(&module))
      return lower_basic_block(*block, path);
    if (const auto* block = dynamic_cast<const layers::DepthwiseSeparable*>(&module))
      return lower_depthwise_separable(*block, path);
    if (const auto* block = dynamic_cast<const layers::InvertedResidual*>(&module))
      return lower_inverted_residual(*block, path);
    if (const auto* conv = dynamic_cast<const layers::Conv2d*>(&module))
      return (void)conv_step(*conv, nullptr, false, path);
    if (const auto* linear = dynamic_cast<const layers::Linear*>(&module))
      return linear_step(*linear, false, path);
    if (const auto* pool = dynamic_cast<const layers::MaxPool2d*>(&module))
      return pool_step(StepKind::MaxPool, pool->options(), path);
    if (const auto* pool = dynamic_cast<const layers::AvgPool2d*>(&module))
      return pool_step(StepKind::AvgPool, pool->options(), path);
    if (dynamic_cast<const layers::GlobalAvgPool2d*>(&module))
      return pool_step(StepKind::GlobalAvgPool, {}, path);
    if (const auto* flatten = dynamic_cast<const layers::Flatten*>(&module)) {
      // Folded into the Linear that follows, which reads its input flattened.
      KILN_CHECK(flatten->start_axis() == 1, "quantize: ", shown(path), " is ", flatten->describe(),
                 "; only start_axis=1 is supported");
      return;
    }
    if (dynamic_cast<const layers::Dropout*>(&module)) return;  // the identity at inference
    if (dynamic_cast<const layers::ReLU*>(&module)) return fuse_relu(path, kNoTop);
    if (dynamic_cast<const layers::ReLU6*>(&module)) return fuse_relu(path, kRelu6Top);
    fail("quantize: module ", shown(path), " is ", module.describe(),
         ", which int8 inference does not support",
         dynamic_cast<const layers::BatchNorm2d*>(&module) ? " (batch-norm must follow a convolution)" : "");
  }

 private:
  static constexpr double kNoTop = std::numeric_limits<double>::infinity();  // a ReLU: no top
  static constexpr double kRelu6Top = 6.0;

  // The child after `i` as a Layer, or null when it is another module or there is none.
  template <typename Layer>
  static const Layer* next_as(const layers::Sequential& sequence, std::size_t i) {
    return i + 1 < sequence.size() ? dynamic_cast<const Layer*>(sequence[i + 1].get()) : nullptr;
  }

  // The top of the ReLU or ReLU6 after child `i` (+inf for a ReLU), or nothing when neither follows.
  static std::optional<double> activation_after(const layers::Sequential& sequence, std::size_t i) {
    if (next_as<layers::ReLU>(sequence, i)) return kNoTop;
    if (next_as<layers::ReLU6>(sequence, i)) return kRelu6Top;
    return std::nullopt;
  }

  // Conv2d [+ BatchNorm2d] [+ ReLU or ReLU6] and Linear [+ ReLU or ReLU6] become one step; everything else
  // is lowered alone.
  void lower_sequence(const layers::Sequential& sequence, const std::string& path) {
    for (std::size_t i = 0; i < sequence.size(); ++i) {
      const Module& module = *sequence[i];
      const std::string module_path = join(path, sequence.name(i));
      if (const auto* conv = dynamic_cast<const layers::Conv2d*>(&module)) {
        const auto* norm = next_as<layers::BatchNorm2d>(sequence, i);
        if (norm) ++i;
        const std::optional<double> top = activation_after(sequence, i);
        if (top) ++i;
        conv_step(*conv, norm, top.has_value(), module_path, -1, top.value_or(kNoTop));
      } else if (const auto* linear = dynamic_cast<const layers::Linear*>(&module)) {
        const std::optional<double> top = activation_after(sequence, i);
        if (top) ++i;
        linear_step(*linear, top.has_value(), module_path, top.value_or(kNoTop));
      } else {
        lower(module, module_path);
      }
    }
  }

  void lower_basic_block(const layers::BasicBlock& block, const std::string& path) {
    const int input = current_;
    conv_step(layers::child_as<layers::Conv2d>(block, "conv1"),
              &layers::child_as<layers::BatchNorm2d>(block, "bn1"), true, join(path, "conv1"));
    const int residual_branch = current_;
    int shortcut = input;
    if (const auto& module = block.shortcut()) {
      current_ = input;
      if (const auto* pad = dynamic_cast<const layers::PadIdentityShortcut*>(module.get())) {
        Step step;
        step.kind = StepKind::PadShortcut;
        step.name = join(path, "shortcut");
        step.stride = pad->stride();
        step.channels_before = (pad->out_channels() - pad->in_channels()) / 2;
        const ValueShape in = value(input);
        KILN_CHECK(in.channels == pad->in_channels(), "quantize: ", shown(step.name), " expects ",
                   pad->in_channels(), " channels, gets ", in.channels);
        emit(std::move(step), {pad->out_channels(), (in.height + pad->stride() - 1) / pad->stride(),
                               (in.width + pad->stride() - 1) / pad->stride()});
      } else {
        lower(*module, join(path, "shortcut"));  // the projection: a Sequential of conv and bn
      }
      shortcut = current_;
    }
    current_ = residual_branch;
    conv_step(layers::child_as<layers::Conv2d>(block, "conv2"),
              &layers::child_as<layers::BatchNorm2d>(block, "bn2"), true, join(path, "conv2"), shortcut);
  }

  void lower_depthwise_separable(const layers::DepthwiseSeparable& block, const std::string& path) {
    conv_step(layers::child_as<layers::Conv2d>(block, "depthwise"),
              &layers::child_as<layers::BatchNorm2d>(block, "bn1"), true, join(path, "depthwise"));
    conv_step(layers::child_as<layers::Conv2d>(block, "pointwise"),
              &layers::child_as<layers::BatchNorm2d>(block, "bn2"), true, join(path, "pointwise"));
  }

  // MobileNetV2's block: the expansion (when there is one) and the depthwise each with their batch norms
  // and ReLU6s (or ReLUs), then the projection with its batch norm, plus the block's input when the shape
  // is kept. MobileNetV3's hard swish and squeeze-and-excitation have no int8 steps.
  void lower_inverted_residual(const layers::InvertedResidual& block, const std::string& path) {
    const layers::InvertedResidualOptions& options = block.options();
    KILN_CHECK(options.activation != layers::BlockActivation::Hardswish && options.squeeze_channels == 0,
               "quantize: module ", shown(path), " is ", block.describe(),
               "; int8 inference supports inverted residual blocks with ReLU6 or ReLU and no "
               "squeeze-and-excitation");
    const double top = options.activation == layers::BlockActivation::Relu6 ? kRelu6Top : kNoTop;
    const int input = current_;
    if (block.expands()) {
      conv_step(layers::child_as<layers::Conv2d>(block, "expand"),
                &layers::child_as<layers::BatchNorm2d>(block, "bn0"), true, join(path, "expand"), -1, top);
    }
    conv_step(layers::child_as<layers::Conv2d>(block, "depthwise"),
              &layers::child_as<layers::BatchNorm2d>(block, "bn1"), true, join(path, "depthwise"), -1, top);
    conv_step(layers::child_as<layers::Conv2d>(block, "project"),
              &layers::child_as<layers::BatchNorm2d>(block, "bn2"), false, join(path, "project"),
              block.residual() ? input : -1);
  }

  // y = conv(x) [BN] [+ residual] [ReLU, topped at relu_upper]: the ReLU comes after the residual sum, as
  // in a residual block.
  int conv_step(const layers::Conv2d& conv, const layers::BatchNorm2d* norm, bool relu,
                const std::string& path, int residual = -1, double relu_upper = kNoTop) {
    const ValueShape in = value(current_);
    const auto& options = conv.options();
    KILN_CHECK(in.channels == conv.in_channels(), "quantize: ", shown(path), " expects ", conv.in_channels(),
               " input channels, gets ", in.channels);
    KILN_CHECK(options.groups == 1 ||
                   (options.groups == conv.in_channels() && conv.out_channels() == conv.in_channels()),
               "quantize: ", shown(path), " is ", conv.describe(),
               "; int8 inference supports groups=1 and depthwise convolution only");
    Step step;
    step.kind = StepKind::Conv;
    step.name = path;
    step.stride = options.stride, step.padding = options.padding, step.dilation = options.dilation;
    step.groups = options.groups;
    step.relu = relu;
    step.relu_upper = relu_upper;
    step.residual = residual;
    fold(conv.weight(), conv.bias(), norm, conv.out_channels(), step);
    const std::int64_t k = conv.kernel_size();
    const auto extent = [&](std::int64_t size) {
      return (size + 2 * options.padding - options.dilation * (k - 1) - 1) / options.stride + 1;
    };
    const ValueShape out{conv.out_channels(), extent(in.height), extent(in.width)};
    KILN_CHECK(out.height >= 1 && out.width >= 1, "quantize: ", shown(path), " has an empty output for a ",
               in.height, "x", in.width, " input");
    if (residual >= 0) {
      const ValueShape r = value(residual);
      KILN_CHECK(r.channels == out.channels && r.height == out.height && r.width == out.width,
                 "quantize: ", shown(path), ": the shortcut's shape differs from the block's output");
    }
    return emit(std::move(step), out);
  }

  void linear_step(const layers::Linear& linear, bool relu, const std::string& path,
                   double relu_upper = kNoTop) {
    const ValueShape in = value(current_);
    KILN_CHECK(in.numel() == linear.in_features(), "quantize: ", shown(path), " expects ",
               linear.in_features(), " features, gets ", in.channels, "x", in.height, "x", in.width);
    Step step;
    step.kind = StepKind::Linear;
    step.name = path;
    step.relu = relu;
    step.relu_upper = relu_upper;
    fold(linear.weight(), linear.bias(), nullptr, linear.out_features(), step);
    emit(std::move(step), {linear.out_features(), 1, 1});
  }

  void pool_step(StepKind kind, const Pool2dOptions& options, const std::string& path) {
    const ValueShape in = value(current_);
    Step step;
    step.kind = kind;
    step.name = path;
    step.pool = options;
    ValueShape out{in.channels, 1, 1};
    if (kind != StepKind::GlobalAvgPool) {
      const kernels::Pool2dGeometry g = pool_geometry(options, in);
      out.height = g.out_height(), out.width = g.out_width();
    }
    emit(std::move(step), out);
  }

  // A ReLU (top +inf) or ReLU6 (top 6) that is not right after a Conv2d or Linear in a Sequential: fused
  // into the step that computed the current value when that step has none yet.
  void fuse_relu(const std::string& path, double top) {
    KILN_CHECK(!program_.steps.empty() && program_.steps.back().output == current_ &&
                   (program_.steps.back().kind == StepKind::Conv ||
                    program_.steps.back().kind == StepKind::Linear) &&
                   !program_.steps.back().relu,
               "quantize: ", std::isinf(top) ? "ReLU " : "ReLU6 ", shown(path),
               " does not follow a convolution or linear layer");
    program_.steps.back().relu = true;
    program_.steps.back().relu_upper = top;
  }

  // weight [out, ...] and bias [out] (or undefined), batch-norm folded in when given.
  static void fold(const Tensor& weight, const Tensor& bias, const layers::BatchNorm2d* norm,
                   std::int64_t out, Step& step) {
    std::vector<float> w = weight.contiguous().to_vector<float>();
    std::vector<float> b =
        bias.defined() ? bias.contiguous().to_vector<float>() : std::vector<float>(out, 0.0f);
    if (norm) {
      const auto gamma = norm->weight().to_vector<float>(), beta = norm->bias().to_vector<float>();
      const auto mean = norm->running_mean().to_vector<float>(), var = norm->running_var().to_vector<float>();
      const std::size_t per_channel = w.size() / static_cast<std::size_t>(out);
      for (std::size_t co = 0; co < static_cast<std::size_t>(out); ++co) {
        const double factor = gamma[co] / std::sqrt(static_cast<double>(var[co]) + norm->options().eps);
        for (std::size_t i = 0; i < per_channel; ++i)
          w[co * per_channel + i] = static_cast<float>(w[co * per_channel + i] * factor);
        b[co] = static_cast<float>((b[co] - mean[co]) * factor + beta[co]);
      }
    }
    step.weight = Tensor::from_vector(w, weight.shape());
    step.bias = std::move(b);
  }

  int emit(Step step, ValueShape shape) {
    step.input = current_;
    step.output = static_cast<int>(program_.values.size());
    program_.values.push_back(shape);
    program_.steps.push_back(std::move(step));
    current_ = program_.steps.back().output;
    return current_;
  }

  ValueShape value(int id) const { return program_.values[static_cast<std::size_t>(id)]; }

  InferenceProgram program_;
  int current_ = 0;
};

// Option A's shortcut in float: every stride-th pixel, zero channels around the input's.
Tensor pad_shortcut(const Tensor& x, const Step& step, const ValueShape& out) {
  const Tensor dense = x.contiguous();
  const std::int64_t n_count = dense.shape()[0], channels = dense.shape()[1], h = dense.shape()[2],
                     w = dense.shape()[3];
  Tensor y = Tensor::zeros({n_count, out.channels, out.height, out.width});
  const float* in = dense.data<float>();
  float* o = y.data<float>();
  for (std::int64_t n = 0; n < n_count; ++n) {
    for (std::int64_t c = 0; c < channels; ++c) {
      for (std::int64_t oh = 0; oh < out.height; ++oh) {
        for (std::int64_t ow = 0; ow < out.width; ++ow) {
          o[((n * out.channels + c + step.channels_before) * out.height + oh) * out.width + ow] =
              in[((n * channels + c) * h + oh * step.stride) * w + ow * step.stride];
        }
      }
    }
  }
  return y;
}

}  // namespace

kernels::Pool2dGeometry pool_geometry(const Pool2dOptions& options, const ValueShape& in,
                                      std::int64_t batch) {
  kernels::Pool2dGeometry g;
  g.batch = batch, g.channels = in.channels, g.in_height = in.height, g.in_width = in.width;
  g.kernel_h = options.kernel[0], g.kernel_w = options.kernel[1];
  g.stride_h = options.stride[0] ? options.stride[0] : options.kernel[0];
  g.stride_w = options.stride[1] ? options.stride[1] : options.kernel[1];
  g.pad_h = options.padding[0], g.pad_w = options.padding[1];
  g.ceil_mode = options.ceil_mode;
  g.count_include_pad = options.count_include_pad;
  return g;
}

InferenceProgram lower_for_inference(const layers::Module& model, ValueShape input) {
  Lowering lowering(input);
  lowering.lower(model, "");
  return lowering.finish();
}

Tensor run_float(const InferenceProgram& program, const Tensor& images, const ValueObserver& observe) {
  NoGradGuard no_grad;
  const ValueShape& input = program.values.front();
  KILN_CHECK(images.dim() == 4 && images.shape()[1] == input.channels && images.shape()[2] == input.height &&
                 images.shape()[3] == input.width,
             "run_float: images ", images.shape().str(), " do not match the program's input [N, ",
             input.channels, ", ", input.height, ", ", input.width, "]");
  const std::int64_t batch = images.shape()[0];
  std::vector<Tensor> values(program.values.size());
  values[0] = images;
  if (observe) observe(0, images);
  for (const Step& step : program.steps) {
    const Tensor& x = values[static_cast<std::size_t>(step.input)];
    const ValueShape& out = program.values[static_cast<std::size_t>(step.output)];
    const Tensor bias = Tensor::from_vector(step.bias, {static_cast<std::int64_t>(step.bias.size())});
    Tensor y;
    switch (step.kind) {
      case StepKind::Conv:
        y = conv2d(x, step.weight, bias,
                   Conv2dOptions{.stride = {step.stride, step.stride},
                                 .padding = {step.padding, step.padding},
                                 .dilation = {step.dilation, step.dilation},
                                 .groups = step.groups});
        if (step.residual >= 0) y = add(y, values[static_cast<std::size_t>(step.residual)]);
        break;
      case StepKind::Linear:
        y = add(matmul(x.reshape({batch, -1}), step.weight.transpose(0, 1)), bias)
                .reshape({batch, out.channels, 1, 1});
        break;
      case StepKind::MaxPool:
        y = max_pool2d(x, step.pool);
        break;
      case StepKind::AvgPool:
        y = avg_pool2d(x, step.pool);
        break;
      case StepKind::GlobalAvgPool:
        y = global_avg_pool2d(x).reshape({batch, out.channels, 1, 1});
        break;
      case StepKind::PadShortcut:
        y = pad_shortcut(x, step, out);
        break;
    }
    if (step.relu) y = std::isinf(step.relu_upper) ? relu(y) : clamp(y, 0.0, step.relu_upper);
    values[static_cast<std::size_t>(step.output)] = y;
    if (observe) observe(step.output, y);
  }
  return values[static_cast<std::size_t>(program.output)].reshape({batch, program.classes()});
}

}  // namespace kiln::quant
