#include "models/summary.hpp"

#include <nlohmann/json.hpp>

#include "core/ops.hpp"
#include "layers/blocks.hpp"
#include "layers/conv2d.hpp"
#include "layers/linear.hpp"
#include "layers/sequential.hpp"

namespace kiln::models {
namespace {

// The forward FLOPs of the convolutions and linear layers in `module` (itself included), for one image
// whose row takes `input` and gives `output`. Every convolution of a row writes the row's output size: true
// of single layers and of the residual and separable blocks, whose strided convolution comes first and whose
// shortcut matches it, but not of the inverted residual block's expansion, which writes the input's size
// (the depthwise convolution after it strides), nor of the squeeze-and-excitation's, which write one pixel.
std::int64_t row_flops(const layers::Module& module, const Shape& input, const Shape& output) {
  if (const auto* squeeze = dynamic_cast<const layers::SqueezeExcitation*>(&module)) {
    const Shape pixel{squeeze->channels(), 1, 1};
    std::int64_t flops = 0;
    for (const auto& [name, child] : module.named_children()) flops += row_flops(*child, pixel, pixel);
    return flops;
  }
  if (dynamic_cast<const layers::InvertedResidual*>(&module)) {
    std::int64_t flops = 0;
    for (const auto& [name, child] : module.named_children())
      flops += row_flops(*child, input, name == "expand" ? input : output);
    return flops;
  }
  std::int64_t flops = 0;
  if (const auto* conv = dynamic_cast<const layers::Conv2d*>(&module)) {
    const std::int64_t taps =
        conv->in_channels() / conv->options().groups * conv->kernel_size() * conv->kernel_size();
    const std::int64_t positions = output.rank() == 3 ? output[1] * output[2] : 1;
    flops += 2 * conv->out_channels() * taps * positions;
  } else if (const auto* linear = dynamic_cast<const layers::Linear*>(&module)) {
    flops += 2 * linear->in_features() * linear->out_features();
  }
  for (const auto& [name, child] : module.named_children()) flops += row_flops(*child, input, output);
  return flops;
}

// One image's shape: x's without the batch axis.
Shape image_shape(const Tensor& x) {
  return Shape(std::vector<std::int64_t>(x.shape().begin() + 1, x.shape().end()));
}

// Runs x through `module`'s rows (a Sequential's children in turn, recursively; anything else is one row),
// appending their summaries; returns the output.
Tensor summarize_rows(layers::Module& module, const std::string& path, Tensor x, ModelSummary& summary) {
  if (auto* sequential = dynamic_cast<layers::Sequential*>(&module)) {
    for (std::size_t i = 0; i < sequential->size(); ++i) {
      const std::string& name = sequential->name(i);
      x = summarize_rows(*(*sequential)[i], path.empty() ? name : path + "." + name, x, summary);
    }
    return x;
  }
  const Shape input = image_shape(x);
  x = module.forward(x);
  LayerSummary row{path, module.describe(), image_shape(x), module.parameter_count(), 0};
  row.flops = row_flops(module, input, row.output);
  summary.flops += row.flops;
  summary.output_values += row.output.numel();
  summary.layers.push_back(std::move(row));
  return x;
}

}  // namespace

ModelSummary summarize(layers::Module& model, std::int64_t channels, std::int64_t height,
                       std::int64_t width) {
  ModelSummary summary;
  summary.input = Shape{channels, height, width};
  summary.parameters = model.parameter_count();
  const bool training = model.is_training();
  model.eval();
  {
    const NoGradGuard no_grad;
    summarize_rows(model, "", Tensor::zeros({1, channels, height, width}, DType::Float32, model.device()),
                   summary);
  }
  model.train(training);
  return summary;
}

nlohmann::json ModelSummary::to_json() const {
  nlohmann::json rows = nlohmann::json::array();
  for (const LayerSummary& layer : layers) {
    rows.push_back({{"name", layer.name},
                    {"module", layer.module},
                    {"output", layer.output.dims()},
                    {"parameters", layer.parameters},
                    {"flops", layer.flops}});
  }
  return {{"input", input.dims()},
          {"parameters", parameters},
          {"flops", flops},
          {"output_values", output_values},
          {"layers", rows}};
}

}  // namespace kiln::models
