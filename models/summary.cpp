#include "models/summary.hpp"

#include <nlohmann/json.hpp>

#include "core/ops.hpp"
#include "core/profiler.hpp"
#include "layers/sequential.hpp"

namespace kiln::models {
namespace {

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
  // The row's FLOPs are what its convolutions and matrix products counted as they ran (core/profiler.hpp),
  // each at the shape it computed: a block's inner layers need no rule of their own here.
  profiler::Session session(x.device());
  x = module.forward(x);
  const std::int64_t flops = session.finish().flops();
  LayerSummary row{path, module.describe(), image_shape(x), module.parameter_count(), flops};
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
