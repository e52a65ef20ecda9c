#include "export/onnx_model.hpp"

#include <cmath>
#include <limits>
#include <memory>
#include <set>
#include <sstream>

#include "layers/layers.hpp"

namespace kiln::onnx {
namespace {

using layers::Module;

std::string join(const std::string& path, const std::string& name) {
  return path.empty() ? name : path + "." + name;
}

std::vector<std::int64_t> twice(std::int64_t value) { return {value, value}; }

// Builds the graph node by node. Each emit_* takes the name of its input value and returns the name of
// its output value; values are named after the module that computes them ("stage1.0.conv1"), so a node
// in a viewer leads straight back to the layer.
class GraphBuilder {
 public:
  explicit GraphBuilder(Graph& graph) : graph_(graph) {}

  std::string emit(const Module& module, const std::string& path, const std::string& input) {
    if (const auto* sequential = dynamic_cast<const layers::Sequential*>(&module)) {
      std::string value = input;
      for (std::size_t i = 0; i < sequential->size(); ++i)
        value = emit(*(*sequential)[i], join(path, sequential->name(i)), value);
      return value;
    }
    if (const auto* conv = dynamic_cast<const layers::Conv2d*>(&module)) return emit_conv(*conv, path, input);
    if (const auto* norm = dynamic_cast<const layers::BatchNorm2d*>(&module))
      return emit_batch_norm(*norm, path, input);
    if (const auto* linear = dynamic_cast<const layers::Linear*>(&module))
      return emit_linear(*linear, path, input);
    if (const auto* block = dynamic_cast<const layers::BasicBlock*>(&module))
      return emit_basic_block(*block, path, input);
    if (const auto* block = dynamic_cast<const layers::DepthwiseSeparable*>(&module))
      return emit_depthwise_separable(*block, path, input);
    if (const auto* block = dynamic_cast<const layers::SqueezeExcitation*>(&module))
      return emit_squeeze_excitation(*block, path, input);
    if (const auto* block = dynamic_cast<const layers::InvertedResidual*>(&module))
      return emit_inverted_residual(*block, path, input);
    if (const auto* pool = dynamic_cast<const layers::MaxPool2d*>(&module))
      return emit_pool("MaxPool", pool->options(), path, input);
    if (const auto* pool = dynamic_cast<const layers::AvgPool2d*>(&module)) {
      std::string output = emit_pool("AveragePool", pool->options(), path, input);
      graph_.nodes.back().attributes.push_back(
          {"count_include_pad", std::int64_t{pool->options().count_include_pad}});
      return output;
    }
    if (dynamic_cast<const layers::GlobalAvgPool2d*>(&module)) {
      const std::string pooled = node("GlobalAveragePool", path + "/pool", {input});  // [N, C, 1, 1]
      return node("Flatten", path, {pooled}, {{"axis", std::int64_t{1}}});            // [N, C]
    }
    if (const auto* flatten = dynamic_cast<const layers::Flatten*>(&module)) {
      // ONNX's Flatten always makes a matrix [d0 * ... * d(axis-1), rest]: kiln's flatten(start_axis, -1)
      // only when start_axis is 1.
      KILN_CHECK(flatten->start_axis() == 1, "onnx export: ", path, ": ", flatten->describe(),
                 " has no ONNX Flatten equivalent (only start_axis=1 does)");
      return node("Flatten", path, {input}, {{"axis", std::int64_t{1}}});
    }
    if (dynamic_cast<const layers::ReLU*>(&module)) return node("Relu", path, {input});
    if (dynamic_cast<const layers::ReLU6*>(&module)) return emit_relu6(path, input);
    if (const auto* leaky = dynamic_cast<const layers::LeakyReLU*>(&module))
      return node("LeakyRelu", path, {input}, {{"alpha", static_cast<float>(leaky->negative_slope())}});
    if (dynamic_cast<const layers::Sigmoid*>(&module)) return node("Sigmoid", path, {input});
    if (dynamic_cast<const layers::Tanh*>(&module)) return node("Tanh", path, {input});
    if (dynamic_cast<const layers::GELU*>(&module)) return emit_gelu(path, input);
    if (dynamic_cast<const layers::SiLU*>(&module)) {  // x * Sigmoid(x) (opset 17 has no Swish)
      return node("Mul", path, {input, node("Sigmoid", path + "/sigmoid", {input})});
    }
    if (dynamic_cast<const layers::Hardsigmoid*>(&module)) return emit_hard_sigmoid(path, input);
    if (dynamic_cast<const layers::Hardswish*>(&module)) return node("HardSwish", path, {input});
    if (dynamic_cast<const layers::Dropout*>(&module)) return input;  // the identity at inference
    fail("onnx export: module '", path.empty() ? "(the model)" : path, "' is ", module.describe(),
         ", which has no ONNX export");
  }

 private:
  // Adds a node whose single output value (and node name) is `output`; returns `output`.
  std::string node(std::string op_type, const std::string& output, std::vector<std::string> inputs,
                   std::vector<Attribute> attributes = {}) {
    graph_.nodes.push_back(
        Node{std::move(op_type), output, std::move(inputs), {output}, std::move(attributes)});
    return output;
  }

  // A model tensor as an initializer under its checkpoint name: "model." + path + "." + field.
  std::string weight(const std::string& path, const std::string& field, const Tensor& tensor) {
    std::string name = std::string(train::kModelTensorPrefix) + join(path, field);
    graph_.initializers.push_back(Initializer{name, tensor.shape().dims(), tensor.to_vector<float>()});
    return name;
  }

  std::string int64_constant(const std::string& path, const std::string& field,
                             std::vector<std::int64_t> values) {
    std::string name = std::string(train::kModelTensorPrefix) + join(path, field);
    const auto length = static_cast<std::int64_t>(values.size());
    graph_.initializers.push_back(Initializer{name, {length}, std::move(values)});
    return name;
  }

  // A float scalar shared by every layer that needs it ("kiln.constant.0.5").
  std::string float_scalar(const std::string& label, float value) {
    std::string name = "kiln.constant." + label;
    if (scalars_.insert(name).second)
      graph_.initializers.push_back(Initializer{name, {}, std::vector<float>{value}});
    return name;
  }

  std::string emit_conv(const layers::Conv2d& conv, const std::string& path, const std::string& input) {
    std::vector<std::string> inputs{input, weight(path, "weight", conv.weight())};
    if (conv.bias().defined()) inputs.push_back(weight(path, "bias", conv.bias()));
    const layers::Conv2dLayerOptions& options = conv.options();
    return node("Conv", path, std::move(inputs),
                {{"kernel_shape", twice(conv.kernel_size())},
                 {"strides", twice(options.stride)},
                 {"pads", std::vector<std::int64_t>(4, options.padding)},  // top, left, bottom, right
                 {"dilations", twice(options.dilation)},
                 {"group", options.groups}});
  }

  // y = weight * (x - running_mean) / sqrt(running_var + eps) + bias: ONNX's inference form, inputs in
  // the order X, scale, B, input_mean, input_var.
  std::string emit_batch_norm(const layers::BatchNorm2d& norm, const std::string& path,
                              const std::string& input) {
    return node(
        "BatchNormalization", path,
        {input, weight(path, "weight", norm.weight()), weight(path, "bias", norm.bias()),
         weight(path, "running_mean", norm.running_mean()), weight(path, "running_var", norm.running_var())},
        {{"epsilon", static_cast<float>(norm.options().eps)}});
  }

  // [N, in] -> [N, out]: Gemm computes A * B^T + C with transB = 1, B being kiln's [out, in] weight.
  std::string emit_linear(const layers::Linear& linear, const std::string& path, const std::string& input) {
    std::vector<std::string> inputs{input, weight(path, "weight", linear.weight())};
    if (linear.bias().defined()) inputs.push_back(weight(path, "bias", linear.bias()));
    return node("Gemm", path, std::move(inputs), {{"transB", std::int64_t{1}}});
  }

  std::string emit_pool(const char* op_type, const Pool2dOptions& options, const std::string& path,
                        const std::string& input) {
    return node(op_type, path, {input},
                {{"kernel_shape", std::vector<std::int64_t>{options.kernel[0], options.kernel[1]}},
                 {"strides", std::vector<std::int64_t>{options.stride[0], options.stride[1]}},
                 {"pads", std::vector<std::int64_t>{options.padding[0], options.padding[1],
                                                    options.padding[0], options.padding[1]}},
                 {"ceil_mode", std::int64_t{options.ceil_mode}}});
  }

  // gelu(x) = x * (1 + erf(x / sqrt 2)) / 2, as kiln computes it.
  std::string emit_gelu(const std::string& path, const std::string& input) {
    const std::string scaled = node("Div", path + "/scaled", {input, float_scalar("sqrt2", std::sqrt(2.0f))});
    const std::string erf = node("Erf", path + "/erf", {scaled});
    const std::string one_plus = node("Add", path + "/one_plus", {erf, float_scalar("1", 1.0f)});
    const std::string product = node("Mul", path + "/product", {input, one_plus});
    return node("Mul", path, {product, float_scalar("0.5", 0.5f)});
  }

  // ReLU6 as Clip, whose bounds (from opset 11) are inputs rather than attributes.
  std::string emit_relu6(const std::string& path, const std::string& input) {
    return node("Clip", path, {input, float_scalar("0", 0.0f), float_scalar("6", 6.0f)});
  }

  std::string emit_basic_block(const layers::BasicBlock& block, const std::string& path,
                               const std::string& input) {
    const auto& conv1 = layers::child_as<layers::Conv2d>(block, "conv1");
    std::string residual = emit_conv(conv1, join(path, "conv1"), input);
    residual =
        emit_batch_norm(layers::child_as<layers::BatchNorm2d>(block, "bn1"), join(path, "bn1"), residual);
    residual = node("Relu", join(path, "relu1"), {residual});
    residual = emit_conv(layers::child_as<layers::Conv2d>(block, "conv2"), join(path, "conv2"), residual);
    residual =
        emit_batch_norm(layers::child_as<layers::BatchNorm2d>(block, "bn2"), join(path, "bn2"), residual);
    std::string identity = input;
    if (const auto& shortcut = block.shortcut()) {
      const std::string shortcut_path = join(path, "shortcut");
      if (dynamic_cast<const layers::PadIdentityShortcut*>(shortcut.get())) {
        const auto& pad = dynamic_cast<const layers::PadIdentityShortcut&>(*shortcut);
        identity = emit_pad_identity(pad.in_channels(), pad.out_channels(), pad.stride(), shortcut_path, input);
      } else {
        identity = emit(*shortcut, shortcut_path, input);  // the projection: a Sequential of conv and bn
      }
    }
    const std::string sum = node("Add", join(path, "add"), {residual, identity});
    return node("Relu", path, {sum});
  }

  // Option A: x [N, in, H, W] -> Slice (every stride-th row and column) [N, in, ceil(H/s), ceil(W/s)]
  // -> Pad with (out - in) / 2 zero channels before and the rest after [N, out, ceil(H/s), ceil(W/s)].
  std::string emit_pad_identity(std::int64_t in_channels, std::int64_t out_channels, std::int64_t stride,
                                const std::string& path, const std::string& input) {
    std::string value = input;
    if (stride != 1) {
      const std::int64_t to_the_end = std::numeric_limits<std::int64_t>::max();
      value = node("Slice", path + "/subsample",
                   {value, int64_constant(path, "slice_starts", {0, 0}),
                    int64_constant(path, "slice_ends", {to_the_end, to_the_end}),
                    int64_constant(path, "slice_axes", {2, 3}),
                    int64_constant(path, "slice_steps", {stride, stride})});
    }
    const std::int64_t before = (out_channels - in_channels) / 2, after = out_channels - in_channels - before;
    if (before == 0 && after == 0) return value;
    // pads: the begin of axes N, C, H, W, then their end.
    return node("Pad", path, {value, int64_constant(path, "pads", {0, before, 0, 0, 0, after, 0, 0})});
  }

  std::string emit_depthwise_separable(const layers::DepthwiseSeparable& block, const std::string& path,
                                       const std::string& input) {
    std::string value =
        emit_conv(layers::child_as<layers::Conv2d>(block, "depthwise"), join(path, "depthwise"), input);
    value = emit_batch_norm(layers::child_as<layers::BatchNorm2d>(block, "bn1"), join(path, "bn1"), value);
    value = node("Relu", join(path, "relu1"), {value});
    value = emit_conv(layers::child_as<layers::Conv2d>(block, "pointwise"), join(path, "pointwise"), value);
    value = emit_batch_norm(layers::child_as<layers::BatchNorm2d>(block, "bn2"), join(path, "bn2"), value);
    return node("Relu", path, {value});
  }

  // relu6(x + 3) / 6 as ONNX's HardSigmoid, max(0, min(1, alpha x + beta)), whose default alpha is 0.2.
  std::string emit_hard_sigmoid(const std::string& path, const std::string& input) {
    return node("HardSigmoid", path, {input}, {{"alpha", 1.0f / 6.0f}, {"beta", 0.5f}});
  }

  // The block's activation (layers::BlockActivation) after its expansion and depthwise batch norms.
  std::string emit_block_activation(layers::BlockActivation activation, const std::string& path,
                                    const std::string& input) {
    switch (activation) {
      case layers::BlockActivation::Relu6:
        return emit_relu6(path, input);
      case layers::BlockActivation::Relu:
        return node("Relu", path, {input});
      case layers::BlockActivation::Hardswish:
        break;
    }
    return node("HardSwish", path, {input});
  }

  std::string emit_inverted_residual(const layers::InvertedResidual& block, const std::string& path,
                                     const std::string& input) {
    const layers::BlockActivation activation = block.options().activation;
    std::string value = input;
    if (block.expands()) {
      value = emit_conv(layers::child_as<layers::Conv2d>(block, "expand"), join(path, "expand"), value);
      value = emit_batch_norm(layers::child_as<layers::BatchNorm2d>(block, "bn0"), join(path, "bn0"), value);
      value = emit_block_activation(activation, join(path, "relu0"), value);
    }
    value = emit_conv(layers::child_as<layers::Conv2d>(block, "depthwise"), join(path, "depthwise"), value);
    value = emit_batch_norm(layers::child_as<layers::BatchNorm2d>(block, "bn1"), join(path, "bn1"), value);
    value = emit_block_activation(activation, join(path, "relu1"), value);
    if (block.options().squeeze_channels > 0) {
      value = emit_squeeze_excitation(layers::child_as<layers::SqueezeExcitation>(block, "squeeze"),
                                      join(path, "squeeze"), value);
    }
    value = emit_conv(layers::child_as<layers::Conv2d>(block, "project"), join(path, "project"), value);
    if (!block.residual())
      return emit_batch_norm(layers::child_as<layers::BatchNorm2d>(block, "bn2"), path, value);
    value = emit_batch_norm(layers::child_as<layers::BatchNorm2d>(block, "bn2"), join(path, "bn2"), value);
    return node("Add", path, {value, input});
  }

  // GlobalAveragePool keeps [N, C, 1, 1], which the 1x1 Convs take and Mul broadcasts over [N, C, H, W].
  std::string emit_squeeze_excitation(const layers::SqueezeExcitation& block, const std::string& path,
                                      const std::string& input) {
    std::string value = node("GlobalAveragePool", join(path, "pool"), {input});
    value = emit_conv(layers::child_as<layers::Conv2d>(block, "reduce"), join(path, "reduce"), value);
    value = node("Relu", join(path, "relu"), {value});
    value = emit_conv(layers::child_as<layers::Conv2d>(block, "expand"), join(path, "expand"), value);
    value = block.gate() == layers::SqueezeGate::Sigmoid ? node("Sigmoid", join(path, "gate"), {value})
                                                         : emit_hard_sigmoid(join(path, "gate"), value);
    return node("Mul", path, {input, value});
  }

  Graph& graph_;
  std::set<std::string> scalars_;
};

std::string list(const std::vector<float>& values) {
  std::ostringstream out;
  out << "[";
  for (std::size_t i = 0; i < values.size(); ++i) out << (i ? ", " : "") << values[i];
  out << "]";
  return out.str();
}

}  // namespace

std::string describe_preprocessing(const data::Preprocessing& preprocessing) {
  std::ostringstream out;
  out << "Input 'input': float32 [batch, " << preprocessing.channels << ", " << preprocessing.height << ", "
      << preprocessing.width << "], channels first (NCHW). To make it from an image: ";
  if (preprocessing.resize == data::ResizePolicy::Stretch) {
    out << "resize it to " << preprocessing.height << "x" << preprocessing.width
        << " (height x width, aspect ratio not kept, bilinear, antialiased when shrinking); ";
  } else {
    out << "scale it so it covers " << preprocessing.height << "x" << preprocessing.width
        << " (height x width) keeping its aspect ratio, then crop the centre (bilinear, antialiased when "
           "shrinking); ";
  }
  if (preprocessing.channels == 3) {
    out << "make it RGB (a grayscale image goes into all three channels); ";
  } else {
    out << "make it grayscale (luminance 0.299 R + 0.587 G + 0.114 B); ";
  }
  out << "scale pixels to [0, 1] (divide by 255); then per channel subtract mean " << list(preprocessing.mean)
      << " and divide by std " << list(preprocessing.std)
      << ". The metadata entry 'preprocessing' holds these settings as JSON and 'classes' the class names in "
         "output order.";
  return out.str();
}

Model to_onnx(const train::LoadedModel& loaded, const ExportOptions& options) {
  KILN_CHECK(loaded.model != nullptr, "onnx export: the checkpoint holds no model");
  const models::ArchitectureSpec& spec = loaded.architecture;
  Model model;
  model.producer_name = "kiln";
  Graph& graph = model.graph;
  graph.name = spec.name;
  graph.inputs.push_back({"input", {{"batch"}, {spec.in_channels}, {spec.height}, {spec.width}}});

  GraphBuilder builder(graph);
  const std::string last = builder.emit(*loaded.model, "", "input");
  // The last value becomes "logits": renamed where it is produced, or copied when the model is the
  // identity (nothing produced it).
  if (last == "input") {
    graph.nodes.push_back(Node{"Identity", "logits", {"input"}, {"logits"}, {}});
  } else {
    for (Node& node : graph.nodes) {
      for (std::string& output : node.outputs) {
        if (output == last) output = "logits";
      }
      for (std::string& input : node.inputs) {
        if (input == last) input = "logits";
      }
    }
  }
  const std::vector<Dimension> scores{{"batch"}, {spec.classes}};
  graph.outputs.push_back({"logits", scores});
  // One class per image: a softmax over the classes. Several labels per image: an independent sigmoid
  // per label, as the model was trained (BCE on the logits).
  const bool multi_label = loaded.multi_label();
  if (options.probabilities) {
    graph.nodes.push_back(multi_label ? Node{"Sigmoid", "probabilities", {"logits"}, {"probabilities"}, {}}
                                      : Node{"Softmax", "probabilities", {"logits"}, {"probabilities"},
                                             {{"axis", std::int64_t{1}}}});
    graph.outputs.push_back({"probabilities", scores});
  }

  std::ostringstream doc;
  doc << "kiln " << spec.name
      << (multi_label ? " multi-label image classifier over " : " image classifier over ") << spec.classes
      << (multi_label ? " labels. " : " classes. ") << describe_preprocessing(loaded.preprocessing)
      << " Output 'logits': float32 [batch, " << spec.classes << "]";
  if (options.probabilities) {
    doc << (multi_label ? "; 'probabilities': their sigmoids (a label applies when its probability is at "
                          "least its threshold in the metadata entry 'thresholds')"
                        : "; 'probabilities': their softmax");
  }
  doc << ".";
  model.doc_string = doc.str();
  graph.doc_string = "exported by kiln export --onnx";

  model.metadata.emplace_back("architecture", spec.to_json().dump());
  model.metadata.emplace_back("classes", nlohmann::json(loaded.classes).dump());
  model.metadata.emplace_back("preprocessing", loaded.preprocessing.to_json().dump());
  if (multi_label) {
    model.metadata.emplace_back("task", loaded.task);
    model.metadata.emplace_back("thresholds", nlohmann::json(loaded.thresholds.thresholds).dump());
  }
  return model;
}

}  // namespace kiln::onnx
