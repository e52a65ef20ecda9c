#include "models/model_file.hpp"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <fstream>
#include <initializer_list>
#include <map>
#include <memory>
#include <sstream>
#include <string_view>
#include <system_error>
#include <utility>

#include "core/error.hpp"
#include "core/ops.hpp"
#include "layers/layers.hpp"

namespace kiln::models {
namespace {

// What a kind takes: its positional arguments (a range) and the options it knows.
struct KindRule {
  const char* kind;
  std::size_t min_arguments, max_arguments;
  std::vector<std::string> options;
  const char* usage;   // the arguments and options with their defaults
  const char* builds;  // one phrase for model_layer_kinds()
};

// A table: one kind a line (or two).
// clang-format off
const std::vector<KindRule>& kind_rules() {
  static const std::vector<KindRule> rules{
      {"conv", 2, 2, {"stride", "padding", "dilation", "groups", "bias"},
       "conv OUT KERNEL [stride=1] [padding=0|same] [dilation=1] [groups=1] [bias=true]",
       "a KERNEL x KERNEL convolution to OUT channels (padding=same: (KERNEL - 1) / 2 * dilation)"},
      {"batchnorm", 0, 0, {}, "batchnorm", "batch normalization of each channel"},
      {"relu", 0, 0, {}, "relu", "max(x, 0)"},
      {"relu6", 0, 0, {}, "relu6", "min(max(x, 0), 6)"},
      {"leaky_relu", 0, 1, {}, "leaky_relu [SLOPE=0.01]", "x, or SLOPE * x below 0"},
      {"sigmoid", 0, 0, {}, "sigmoid", "1 / (1 + exp(-x))"},
      {"tanh", 0, 0, {}, "tanh", "tanh(x)"},
      {"gelu", 0, 0, {}, "gelu", "x * Phi(x)"},
      {"silu", 0, 0, {}, "silu", "x * sigmoid(x) (Swish)"},
      {"hardsigmoid", 0, 0, {}, "hardsigmoid", "relu6(x + 3) / 6"},
      {"hardswish", 0, 0, {}, "hardswish", "x * relu6(x + 3) / 6"},
      {"maxpool", 1, 1, {"stride", "padding"}, "maxpool KERNEL [stride=KERNEL] [padding=0]",
       "the largest value of each KERNEL x KERNEL window"},
      {"avgpool", 1, 1, {"stride", "padding"}, "avgpool KERNEL [stride=KERNEL] [padding=0]",
       "the mean of each KERNEL x KERNEL window"},
      {"global_avg_pool", 0, 0, {}, "global_avg_pool", "[N, C, H, W] -> [N, C]: each channel's mean"},
      {"flatten", 0, 0, {}, "flatten", "[N, C, H, W] -> [N, C * H * W]"},
      {"dropout", 1, 1, {}, "dropout P", "zeroes each value with probability P while training"},
      {"linear", 0, 1, {"bias"}, "linear [OUT=classes] [bias=true]",
       "a fully connected layer to OUT features (no OUT: one per class)"},
      {"residual", 1, 1, {"stride", "shortcut"}, "residual OUT [stride=1] [shortcut=pad|projection]",
       "a ResNet basic block: two 3x3 convolutions with batch norms and a shortcut (pad: option A)"},
      {"separable", 1, 1, {"stride"}, "separable OUT [stride=1]",
       "a MobileNet block: a 3x3 depthwise and a 1x1 convolution, each with a batch norm and ReLU"},
      {"inverted", 1, 1, {"stride", "expand", "hidden", "kernel", "activation", "se"},
       "inverted OUT [stride=1] [expand=6] [hidden=N] [kernel=3] [activation=relu6|relu|hardswish] [se=0]",
       "a MobileNetV2 block: 1x1 to expand x the channels (or to hidden), KERNEL x KERNEL depthwise, 1x1 to "
       "OUT (batch norms, the activation after the first two; se=R: a hard-sigmoid squeeze-and-excitation "
       "of hidden / R channels after the depthwise, MobileNetV3's; the input added when stride 1 and OUT = "
       "its channels)"},
      {"se", 0, 1, {"gate"}, "se [REDUCTION=4] [gate=sigmoid|hardsigmoid]",
       "squeeze-and-excitation: each channel scaled by a gate from every channel's mean (1x1 convolutions "
       "C -> C / REDUCTION -> C)"},
  };
  return rules;
}
// clang-format on

const KindRule& rule_of(const std::string& kind) {
  for (const KindRule& rule : kind_rules()) {
    if (rule.kind == kind) return rule;
  }
  std::string known;
  for (const KindRule& rule : kind_rules()) known += (known.empty() ? "" : ", ") + std::string(rule.kind);
  fail("unknown layer '", kind, "' (known: ", known, ")");
}

std::int64_t positive_integer(const std::string& token, const char* what) {
  std::int64_t value = 0;
  const auto [end, error] = std::from_chars(token.data(), token.data() + token.size(), value);
  KILN_CHECK(error == std::errc() && end == token.data() + token.size() && value >= 1, what,
             " must be a whole number >= 1, got '", token, "'");
  return value;
}

std::int64_t whole_number(const std::string& token, const char* what) {
  std::int64_t value = -1;
  const auto [end, error] = std::from_chars(token.data(), token.data() + token.size(), value);
  KILN_CHECK(error == std::errc() && end == token.data() + token.size() && value >= 0, what,
             " must be a whole number >= 0, got '", token, "'");
  return value;
}

double real_number(const std::string& token, const char* what) {
  double value = 0.0;
  const auto [end, error] = std::from_chars(token.data(), token.data() + token.size(), value);
  KILN_CHECK(error == std::errc() && end == token.data() + token.size() && std::isfinite(value), what,
             " must be a finite number, got '", token, "'");
  return value;
}

bool boolean(const std::string& token, const char* what) {
  KILN_CHECK(token == "true" || token == "false", what, " must be true or false, got '", token, "'");
  return token == "true";
}

// The value among `values` whose name, name_of(value), is `token`, or an error listing the names: "gate must
// be sigmoid or hardsigmoid, got 'tanh'". The layers' own name functions serve where they exist, so that an
// option is spelled as the layer's describe() spells it.
template <typename Value, typename NameOf>
Value one_of(const std::string& token, const char* what, std::initializer_list<Value> values,
             NameOf name_of) {
  for (const Value value : values)
    if (token == name_of(value)) return value;
  std::string names;
  std::size_t index = 0;
  for (const Value value : values) {
    if (index > 0) names += index + 1 == values.size() ? " or " : ", ";
    names += name_of(value);
    ++index;
  }
  fail(what, " must be ", names, ", got '", token, "'");
}

// The model file's names for the residual block's shortcuts (its describe() says "pad-identity").
std::string_view shortcut_option_name(layers::Shortcut shortcut) {
  return shortcut == layers::Shortcut::PadIdentity ? "pad" : "projection";
}

constexpr std::int64_t kMaxRepeat = 1000;  // more layers from one line than any network here wants

// One layer line, split: "conv 32 3 stride=2" -> kind conv, arguments {32, 3}, options {stride: 2}.
struct LayerLine {
  std::string text;
  std::string kind;
  std::vector<std::string> arguments;
  std::map<std::string, std::string> options;

  std::string option(const std::string& key, const std::string& fallback) const {
    const auto found = options.find(key);
    return found == options.end() ? fallback : found->second;
  }
  // The layers the line builds (repeat=N, else 1).
  std::int64_t repeat() const { return positive_integer(option("repeat", "1"), "repeat"); }
};

// Splits and checks `text` against its kind's rule; throws without a location (callers add it).
LayerLine parse_line(const std::string& text) {
  LayerLine line{text, {}, {}, {}};
  std::istringstream tokens(text);
  tokens >> line.kind;
  const KindRule& rule = rule_of(line.kind);
  for (std::string token; tokens >> token;) {
    const std::size_t equals = token.find('=');
    if (equals == std::string::npos) {
      KILN_CHECK(line.options.empty(), "'", token, "' follows an option; arguments come first (the form is ",
                 rule.usage, ")");
      line.arguments.push_back(token);
      continue;
    }
    const std::string key = token.substr(0, equals), value = token.substr(equals + 1);
    KILN_CHECK(
        key == "repeat" || std::find(rule.options.begin(), rule.options.end(), key) != rule.options.end(),
        line.kind, " has no option '", key, "' (the form is ", rule.usage, ", and repeat=N on any line)");
    KILN_CHECK(!value.empty(), "option ", key, " has no value (the form is ", rule.usage, ")");
    KILN_CHECK(line.options.emplace(key, value).second, "option ", key, " is given twice");
  }
  KILN_CHECK(line.arguments.size() >= rule.min_arguments && line.arguments.size() <= rule.max_arguments,
             line.kind, " takes ", rule.min_arguments == rule.max_arguments ? "" : "up to ",
             rule.max_arguments, " argument", rule.max_arguments == 1 ? "" : "s", ", not ",
             line.arguments.size(), " (the form is ", rule.usage, ")");
  KILN_CHECK(line.repeat() <= kMaxRepeat, "repeat is at most ", kMaxRepeat);
  return line;
}

// "[N, 64, 8, 8]": a shape with the batch left open.
std::string shape_text(const Tensor& x) {
  std::string text = "[N";
  for (std::int64_t axis = 1; axis < x.dim(); ++axis) text += ", " + std::to_string(x.size(axis));
  return text + "]";
}

Pool2dOptions pool_options(const LayerLine& line) {
  const std::int64_t kernel = positive_integer(line.arguments[0], "KERNEL");
  const std::int64_t stride = positive_integer(line.option("stride", line.arguments[0]), "stride");
  const std::int64_t padding = whole_number(line.option("padding", "0"), "padding");
  return {.kernel = {kernel, kernel}, .stride = {stride, stride}, .padding = {padding, padding}};
}

// The layer `line` describes, taking `input` (one image's worth, [1, C, H, W] or [1, F]).
layers::ModulePtr make_layer(const LayerLine& line, const Tensor& input, std::int64_t classes,
                             Generator& generator) {
  using namespace layers;
  const bool spatial = input.dim() == 4;
  const std::string& kind = line.kind;
  if (kind == "conv" || kind == "batchnorm" || kind == "maxpool" || kind == "avgpool" ||
      kind == "global_avg_pool" || kind == "flatten" || kind == "residual" || kind == "separable" ||
      kind == "inverted" || kind == "se") {
    KILN_CHECK(spatial, "takes [N, C, H, W], but its input is ", shape_text(input));
  }
  if (kind == "linear") {
    KILN_CHECK(input.dim() == 2, "takes [N, features], but its input is ", shape_text(input),
               " (put flatten or global_avg_pool before it)");
  }
  const std::int64_t channels = input.size(1);
  if (kind == "conv") {
    const std::int64_t out = positive_integer(line.arguments[0], "OUT");
    const std::int64_t kernel = positive_integer(line.arguments[1], "KERNEL");
    const std::int64_t dilation = positive_integer(line.option("dilation", "1"), "dilation");
    const std::int64_t groups = positive_integer(line.option("groups", "1"), "groups");
    const std::string padding_text = line.option("padding", "0");
    std::int64_t padding = 0;
    if (padding_text == "same") {
      KILN_CHECK((kernel - 1) * dilation % 2 == 0, "padding=same needs an odd kernel (got ", kernel, ")");
      padding = (kernel - 1) / 2 * dilation;
    } else {
      padding = whole_number(padding_text, "padding");
    }
    KILN_CHECK(channels % groups == 0 && out % groups == 0, "groups=", groups, " must divide the ", channels,
               " input channels and the ", out, " output channels");
    return std::make_shared<Conv2d>(
        channels, out, kernel, generator,
        Conv2dLayerOptions{.stride = positive_integer(line.option("stride", "1"), "stride"),
                           .padding = padding,
                           .dilation = dilation,
                           .groups = groups,
                           .bias = boolean(line.option("bias", "true"), "bias")});
  }
  if (kind == "batchnorm") return std::make_shared<BatchNorm2d>(channels);
  if (kind == "relu") return std::make_shared<ReLU>();
  if (kind == "relu6") return std::make_shared<ReLU6>();
  if (kind == "leaky_relu") {
    return std::make_shared<LeakyReLU>(line.arguments.empty() ? 0.01
                                                              : real_number(line.arguments[0], "SLOPE"));
  }
  if (kind == "sigmoid") return std::make_shared<Sigmoid>();
  if (kind == "tanh") return std::make_shared<Tanh>();
  if (kind == "gelu") return std::make_shared<GELU>();
  if (kind == "silu") return std::make_shared<SiLU>();
  if (kind == "hardsigmoid") return std::make_shared<Hardsigmoid>();
  if (kind == "hardswish") return std::make_shared<Hardswish>();
  if (kind == "maxpool") return std::make_shared<MaxPool2d>(pool_options(line));
  if (kind == "avgpool") return std::make_shared<AvgPool2d>(pool_options(line));
  if (kind == "global_avg_pool") return std::make_shared<GlobalAvgPool2d>();
  if (kind == "flatten") return std::make_shared<Flatten>();
  if (kind == "dropout") {
    const double p = real_number(line.arguments[0], "P");
    KILN_CHECK(p >= 0.0 && p < 1.0, "P must be in [0, 1), got ", line.arguments[0]);
    return std::make_shared<Dropout>(p);
  }
  if (kind == "se") {
    const std::int64_t reduction =
        line.arguments.empty() ? 4 : positive_integer(line.arguments[0], "REDUCTION");
    const SqueezeGate gate = one_of(line.option("gate", "sigmoid"), "gate",
                                    {SqueezeGate::Sigmoid, SqueezeGate::Hardsigmoid}, squeeze_gate_name);
    return std::make_shared<SqueezeExcitation>(channels, std::max<std::int64_t>(1, channels / reduction),
                                               gate, generator);
  }
  if (kind == "linear") {
    const std::int64_t out = line.arguments.empty() ? classes : positive_integer(line.arguments[0], "OUT");
    return std::make_shared<Linear>(channels, out, generator, boolean(line.option("bias", "true"), "bias"));
  }
  const std::int64_t out = positive_integer(line.arguments[0], "OUT");
  const std::int64_t stride = positive_integer(line.option("stride", "1"), "stride");
  if (kind == "residual") {
    const Shortcut shortcut = one_of(line.option("shortcut", "pad"), "shortcut",
                                     {Shortcut::PadIdentity, Shortcut::Projection}, shortcut_option_name);
    KILN_CHECK(shortcut == Shortcut::Projection || out >= channels, "shortcut=pad can only add channels (",
               channels, " -> ", out, "); use shortcut=projection");
    return std::make_shared<BasicBlock>(channels, out, stride, generator, shortcut);
  }
  if (kind == "inverted") {
    InvertedResidualOptions options{.stride = stride,
                                    .expansion = positive_integer(line.option("expand", "6"), "expand"),
                                    .hidden_channels = whole_number(line.option("hidden", "0"), "hidden"),
                                    .kernel = positive_integer(line.option("kernel", "3"), "kernel")};
    options.activation = one_of(line.option("activation", "relu6"), "activation",
                                {BlockActivation::Relu6, BlockActivation::Relu, BlockActivation::Hardswish},
                                block_activation_name);
    const std::int64_t hidden =
        options.hidden_channels > 0 ? options.hidden_channels : channels * options.expansion;
    if (const std::int64_t reduction = whole_number(line.option("se", "0"), "se"); reduction > 0)
      options.squeeze_channels = std::max<std::int64_t>(1, hidden / reduction);
    return std::make_shared<InvertedResidual>(channels, out, options, generator);
  }
  return std::make_shared<DepthwiseSeparable>(channels, out, stride, generator);  // separable
}

// The layer lines of the file at `path` with their line numbers, each line's syntax checked.
std::vector<std::pair<std::int64_t, std::string>> numbered_layer_lines(const std::filesystem::path& path) {
  std::ifstream file(path);
  KILN_CHECK(file, "model file ", path.string(), ": cannot be read");
  std::vector<std::pair<std::int64_t, std::string>> layers;
  std::string raw;
  for (std::int64_t number = 1; std::getline(file, raw); ++number) {
    std::istringstream tokens(raw.substr(0, raw.find('#')));
    std::string text;
    for (std::string token; tokens >> token;) text += (text.empty() ? "" : " ") + token;
    if (text.empty()) continue;
    try {
      parse_line(text);
    } catch (const Error& error) {
      fail("model file ", path.string(), ", line ", number, " '", text, "': ", error.what());
    }
    layers.emplace_back(number, text);
  }
  KILN_CHECK(!file.bad(), "model file ", path.string(), ": reading failed");
  KILN_CHECK(!layers.empty(), "model file ", path.string(),
             ": no layers (one a line, e.g. 'conv 32 3 padding=same'; `#` starts a comment)");
  return layers;
}

// Builds spec.layers. Errors start with `origin` and the layer's place: its line in the file when
// `line_numbers` has them, else its position in the list.
layers::ModulePtr build_layers(const ArchitectureSpec& spec, Generator& generator, const std::string& origin,
                               const std::vector<std::int64_t>& line_numbers) {
  KILN_CHECK(!spec.layers.empty(), origin, ": no layers");
  auto net = std::make_shared<layers::Sequential>();
  std::map<std::string, int> counts;
  const NoGradGuard no_grad;
  // One zero image through each layer as it is added: its output's shape is the next layer's input.
  Tensor x = Tensor::zeros({1, spec.in_channels, spec.height, spec.width}, DType::Float32);
  for (std::size_t index = 0; index < spec.layers.size(); ++index) {
    const std::string& text = spec.layers[index];
    try {
      const LayerLine line = parse_line(text);
      const std::int64_t repeat = line.repeat();
      for (std::int64_t copy = 0; copy < repeat; ++copy) {
        layers::ModulePtr layer = make_layer(line, x, spec.classes, generator);
        layer->eval();  // batch norm from its running statistics, no dropout: the dry run draws nothing
        x = layer->forward(x);
        // "conv3", or "relu6_2" where the kind ends in a digit
        const std::string separator = std::isdigit(static_cast<unsigned char>(line.kind.back())) ? "_" : "";
        net->add(line.kind + separator + std::to_string(++counts[line.kind]), std::move(layer));
      }
    } catch (const Error& error) {
      if (line_numbers.empty()) fail(origin, ", layer ", index + 1, " '", text, "': ", error.what());
      fail(origin, ", line ", line_numbers[index], " '", text, "': ", error.what());
    }
  }
  KILN_CHECK(x.dim() == 2 && x.size(1) == spec.classes, origin, ": ends in ", shape_text(x), ", not [N, ",
             spec.classes, "] (one output per class): end with 'linear', or with a convolution to ",
             spec.classes, " channels and 'global_avg_pool'");
  net->train();
  return net;
}

}  // namespace

std::vector<std::string> read_model_file(const std::filesystem::path& path) {
  std::vector<std::string> layers;
  for (auto& [number, text] : numbered_layer_lines(path)) layers.push_back(std::move(text));
  return layers;
}

NamedModel build_named_model(const std::string& model, std::int64_t in_channels, std::int64_t height,
                             std::int64_t width, std::int64_t classes, Generator& generator) {
  ArchitectureSpec spec{model, in_channels, height, width, classes};
  const std::vector<std::string> zoo = model_names();
  if (std::find(zoo.begin(), zoo.end(), model) != zoo.end()) {
    layers::ModulePtr built = build_model(spec, generator);
    return {std::move(spec), std::move(built)};
  }
  std::error_code error;
  if (!std::filesystem::is_regular_file(model, error)) {
    std::string known;
    for (const std::string& name : zoo) known += (known.empty() ? "" : ", ") + name;
    fail("unknown model '", model, "': neither a network of the zoo (", known,
         ") nor a model file (a text file of layers, one a line)");
  }
  spec.name = std::filesystem::path(model).stem().string();
  std::vector<std::int64_t> line_numbers;
  for (auto& [number, text] : numbered_layer_lines(model)) {
    line_numbers.push_back(number);
    spec.layers.push_back(std::move(text));
  }
  // Built here rather than by build_model, so that an error names the file's line.
  check_model_input(spec);
  layers::ModulePtr built = build_layers(spec, generator, "model file " + model, line_numbers);
  return {std::move(spec), std::move(built)};
}

layers::ModulePtr build_described_model(const ArchitectureSpec& spec, Generator& generator) {
  return build_layers(spec, generator, "model " + spec.name, {});
}

std::int64_t layers_of_line(const std::string& line) { return parse_line(line).repeat(); }

std::vector<std::string> model_layer_kinds() {
  std::vector<std::string> lines;
  for (const KindRule& rule : kind_rules()) lines.push_back(std::string(rule.usage) + ": " + rule.builds);
  return lines;
}

}  // namespace kiln::models
