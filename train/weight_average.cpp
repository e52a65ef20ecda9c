#include "train/weight_average.hpp"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "core/error.hpp"
#include "core/generator.hpp"
#include "core/ops.hpp"
#include "kernels/optim_update/optim_update.hpp"
#include "train/model_io.hpp"

namespace kiln::train {

WeightAverage::WeightAverage(const models::ArchitectureSpec& architecture, const layers::Module& model,
                             double decay, Device device)
    : decay_(decay) {
  KILN_CHECK(decay > 0 && decay < 1, "train: --ema takes a decay in (0, 1) (0: off), got ", decay);
  Generator unused(0);  // the model's weights replace whatever this draws
  average_ = models::build_model(architecture, unused);
  average_->to(device);
  const NoGradGuard no_grad;
  std::vector<NamedTensor> to = model_state(*average_);
  const std::vector<NamedTensor> from = model_state(model);
  KILN_CHECK(to.size() == from.size(), "WeightAverage: the model has ", from.size(), " tensors, its average ",
             to.size());
  for (std::size_t i = 0; i < to.size(); ++i) to[i].second.copy_(from[i].second);
}

double WeightAverage::decay_now() const {
  const auto n = static_cast<double>(updates_);
  return std::min(decay_, (1.0 + n) / (10.0 + n));
}

void WeightAverage::update(const layers::Module& model) {
  const NoGradGuard no_grad;
  const double d = decay_now();
  std::vector<NamedTensor> to = model_state(*average_);  // handles sharing the average's storage
  const std::vector<NamedTensor> from = model_state(model);
  // The float32 and float64 tensors (all of a model's weights and statistics, in every precision) in one
  // multi-tensor update per dtype: on a GPU one launch for the whole model rather than a few per tensor.
  std::vector<kernels::AverageSlice<float>> floats;
  std::vector<kernels::AverageSlice<double>> doubles;
  for (std::size_t i = 0; i < to.size(); ++i) {
    Tensor& average = to[i].second;
    const Tensor& weight = from[i].second;
    const bool dense = average.is_contiguous() && weight.is_contiguous();
    if (dense && weight.dtype() == DType::Float32) {
      floats.push_back({average.data<float>(), weight.data<float>(), weight.numel()});
    } else if (dense && weight.dtype() == DType::Float64) {
      doubles.push_back({average.data<double>(), weight.data<double>(), weight.numel()});
    } else if (is_floating(weight.dtype())) {
      average.copy_(average * d + weight * (1.0 - d));
    } else {
      average.copy_(weight);  // counters and other integer buffers are not averaged: they follow the model
    }
  }
  const Device device = average_->device();
  kernels::average_update_many<float>(device, d, floats);
  kernels::average_update_many<double>(device, d, doubles);
  ++updates_;
}

nlohmann::json WeightAverage::state_json() const { return {{"decay", decay_}, {"updates", updates_}}; }

std::vector<NamedTensor> WeightAverage::state_tensors() const {
  std::vector<NamedTensor> tensors;
  for (auto& [name, tensor] : model_state(*average_)) tensors.emplace_back(kAverageTensorPrefix + name, tensor);
  return tensors;
}

void WeightAverage::load(const nlohmann::json& state, const std::vector<NamedTensor>& tensors,
                         const std::filesystem::path& path) {
  updates_ = state.at("updates").get<std::int64_t>();
  std::vector<NamedTensor> stored;
  const std::string prefix = kAverageTensorPrefix;
  for (const auto& [name, tensor] : tensors) {
    if (name.starts_with(prefix)) stored.emplace_back(name.substr(prefix.size()), tensor);
  }
  load_into(model_state(*average_), Checkpoint{nlohmann::json::object(), std::move(stored)}, path);
}

}  // namespace kiln::train
