// Tests of the weights' moving average (train/weight_average.hpp): it starts at the model's weights, moves by
// the ramped decay, averages buffers too, and survives a checkpoint round trip.
#include "train/weight_average.hpp"

#include <doctest/doctest.h>

#include <nlohmann/json.hpp>
#include <vector>

#include "core/error.hpp"
#include "core/generator.hpp"
#include "core/ops.hpp"
#include "train/model_io.hpp"

namespace train_weight_average_test {

using kiln::Device;
using kiln::Generator;
using kiln::NamedTensor;
using kiln::Tensor;
using kiln::train::model_state;
using kiln::train::WeightAverage;

namespace {

const kiln::models::ArchitectureSpec kResnet{"resnet20", 3, 8, 8, 4};

// Every tensor of `model`'s state, flattened to doubles, in model_state's order.
std::vector<std::vector<double>> values_of(const kiln::layers::Module& model) {
  std::vector<std::vector<double>> values;
  for (const auto& [name, tensor] : model_state(model))
    values.push_back(tensor.to(kiln::DType::Float64).to_vector<double>());
  return values;
}

// Adds `amount` to every floating-point weight and buffer of `model`.
void shift(kiln::layers::Module& model, double amount) {
  const kiln::NoGradGuard no_grad;
  for (auto& [name, tensor] : model_state(model)) {
    if (kiln::is_floating(tensor.dtype())) tensor.copy_(tensor + amount);
  }
}

}  // namespace

TEST_CASE("weight average: starts at the model, moves by d = min(DECAY, (1 + n) / (10 + n)), buffers too") {
  Generator generator(3);
  const kiln::layers::ModulePtr model = kiln::models::build_model(kResnet, generator);
  WeightAverage average(kResnet, *model, 0.9, Device::cpu());
  CHECK(values_of(average.model()) == values_of(*model));
  CHECK(average.decay_now() == doctest::Approx(0.1));  // (1 + 0) / (10 + 0)

  // Three updates, the model moved by +1 before each: d = 0.1, 2/11, 3/12, each capped at 0.9.
  const std::vector<std::vector<double>> start = values_of(*model);
  std::vector<std::vector<double>> expected = start;
  for (int n = 0; n < 3; ++n) {
    const double d = std::min(0.9, (1.0 + n) / (10.0 + n));
    CHECK(average.decay_now() == doctest::Approx(d));
    shift(*model, 1.0);
    average.update(*model);
    for (std::size_t t = 0; t < expected.size(); ++t) {
      for (std::size_t i = 0; i < expected[t].size(); ++i)
        expected[t][i] = d * expected[t][i] + (1.0 - d) * (start[t][i] + (n + 1.0));
    }
  }
  CHECK(average.updates() == 3);
  const std::vector<std::vector<double>> got = values_of(average.model());
  REQUIRE(got.size() == expected.size());
  bool has_buffers = false;
  for (std::size_t t = 0; t < got.size(); ++t) {
    CAPTURE(model_state(*model)[t].first);
    for (std::size_t i = 0; i < got[t].size(); ++i) CHECK(got[t][i] == doctest::Approx(expected[t][i]).epsilon(1e-5));
    has_buffers = has_buffers || model_state(*model)[t].first.find("running_mean") != std::string::npos;
  }
  CHECK(has_buffers);  // the batch norms' running statistics are among what was averaged
  // Late in a run the cap holds: d = DECAY once (1 + n) / (10 + n) passes it.
  for (int n = 3; n < 200; ++n) average.update(*model);
  CHECK(average.decay_now() == doctest::Approx(0.9));
}

TEST_CASE("weight average: its state goes into a checkpoint's header and tensors and comes back") {
  Generator generator(4);
  const kiln::layers::ModulePtr model = kiln::models::build_model(kResnet, generator);
  WeightAverage average(kResnet, *model, 0.99, Device::cpu());
  shift(*model, 0.5);
  average.update(*model);
  average.update(*model);
  const nlohmann::json state = average.state_json();
  CHECK(state.at("updates") == 2);
  CHECK(state.at("decay") == 0.99);
  const std::vector<NamedTensor> tensors = average.state_tensors();
  for (const auto& [name, tensor] : tensors) CHECK(name.starts_with("ema.model."));

  Generator other(9);
  const kiln::layers::ModulePtr fresh = kiln::models::build_model(kResnet, other);
  WeightAverage restored(kResnet, *fresh, 0.99, Device::cpu());
  restored.load(state, tensors, "test.kiln");
  CHECK(restored.updates() == 2);
  CHECK(values_of(restored.model()) == values_of(average.model()));
  // served_weights hands these out, under the model's own names, when the header says so.
  nlohmann::json header{{"ema", state}};
  std::vector<NamedTensor> checkpoint_tensors = model_state(*fresh);
  for (const NamedTensor& entry : tensors) checkpoint_tensors.push_back(entry);
  const std::vector<NamedTensor> served =
      kiln::train::served_weights(kiln::train::Checkpoint{header, checkpoint_tensors});
  REQUIRE(served.size() == tensors.size());
  CHECK(served.front().first.starts_with("model."));
  CHECK(served.front().second.to_vector<float>() == tensors.front().second.to_vector<float>());
  CHECK(kiln::train::served_weights(kiln::train::Checkpoint{nlohmann::json::object(), checkpoint_tensors})
            .front()
            .second.to_vector<float>() == model_state(*fresh).front().second.to_vector<float>());
}

TEST_CASE("weight average: a decay outside (0, 1) is refused") {
  Generator generator(5);
  const kiln::layers::ModulePtr model = kiln::models::build_model(kResnet, generator);
  CHECK_THROWS_WITH_AS(WeightAverage(kResnet, *model, 1.0, Device::cpu()),
                       doctest::Contains("--ema takes a decay in (0, 1)"), kiln::Error);
}

}  // namespace train_weight_average_test
