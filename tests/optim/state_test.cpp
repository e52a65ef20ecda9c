// Tests for optimizer checkpoints (Optimizer::state_json, state_tensors, load_state): a run that is
// saved, restored into a fresh optimizer and continued ends bitwise equal to the run that never
// stopped, for SGD, Adam and AdamW; and load_state rejects a state it cannot take, naming the field or
// tensor, without changing the optimizer.
#include <doctest/doctest.h>

#include <functional>
#include <memory>
#include <vector>

#include "core/autograd.hpp"
#include "core/ops.hpp"
#include "optim/adam.hpp"
#include "optim/sgd.hpp"

namespace optim_state_test {

using namespace kiln;
using namespace kiln::optim;
using nlohmann::json;

namespace {

// Three parameters with dotted names, as a module names them, each pulled towards its own target.
// "head.scale" takes part only in the second half of a run, so at the save it has no state yet.
struct Model {
  std::vector<NamedTensor> parameters;
  std::vector<Tensor> targets;
};

Tensor leaf(std::vector<float> values, const Shape& shape) {
  return Tensor::from_vector(values, shape).set_requires_grad();
}

Model make_model() {
  return {
      {{"layer.weight", leaf({0.5f, -0.25f, 1.0f, 0.0f, 2.0f, -1.5f}, {2, 3})},
       {"layer.bias", leaf({0.1f, 0.2f, 0.3f}, {3})},
       {"head.scale", leaf({1.0f, -1.0f}, {2})}},
      {Tensor::from_vector<float>({1.0f, -2.0f, 3.0f, 0.5f, -1.0f, 2.0f}, {2, 3}),
       Tensor::from_vector<float>({-0.5f, 0.25f, 4.0f}, {3}), Tensor::from_vector<float>({3.0f, 2.0f}, {2})}};
}

// What a checkpoint loader does to the model: new leaves holding the saved values.
Model copy_of(const Model& model) {
  Model copy{{}, model.targets};
  for (const auto& [name, parameter] : model.parameters) {
    copy.parameters.emplace_back(name, leaf(parameter.to_vector<float>(), parameter.shape()));
  }
  return copy;
}

// Steps on sum_i sum((p_i - t_i)^4): a quartic, so the gradients change shape as the parameters move.
void take_steps(Optimizer& optimizer, const Model& model, int steps, bool with_head) {
  for (int step = 0; step < steps; ++step) {
    optimizer.zero_grad();
    Tensor loss = Tensor::scalar(0.0);
    const std::size_t used = with_head ? model.parameters.size() : model.parameters.size() - 1;
    for (std::size_t i = 0; i < used; ++i) {
      const Tensor squared = pow(model.parameters[i].second - model.targets[i], 2.0);
      loss = loss + sum(squared * squared);
    }
    loss.backward();
    optimizer.step();
  }
}

// A checkpoint's round trip: the json through text, the tensors copied.
struct SavedState {
  json header;
  std::vector<NamedTensor> tensors;
};

SavedState save(const Optimizer& optimizer) {
  SavedState saved{json::parse(optimizer.state_json().dump()), {}};
  NoGradGuard no_grad;
  for (const auto& [name, tensor] : optimizer.state_tensors())
    saved.tensors.emplace_back(name, tensor.clone());
  return saved;
}

std::vector<std::string> names_of(const std::vector<NamedTensor>& tensors) {
  std::vector<std::string> names;
  for (const auto& entry : tensors) names.push_back(entry.first);
  return names;
}

std::vector<std::vector<float>> values_of(const std::vector<NamedTensor>& tensors) {
  std::vector<std::vector<float>> values;
  for (const auto& entry : tensors) values.push_back(entry.second.to_vector<float>());
  return values;
}

bool bitwise_equal(const std::vector<NamedTensor>& a, const std::vector<NamedTensor>& b) {
  return names_of(a) == names_of(b) && values_of(a) == values_of(b);
}

using MakeOptimizer = std::function<std::unique_ptr<Optimizer>(std::vector<NamedTensor>)>;

// Optimizer A runs 5 steps and is saved; B, built with `make_fresh` (other hyperparameters), loads the
// save; then both take 5 more steps and must agree to the bit. C, built like B but not loaded, must not.
void check_resume_is_exact(const MakeOptimizer& make_original, const MakeOptimizer& make_fresh,
                           const std::vector<std::string>& saved_names) {
  const Model model_a = make_model();
  const std::unique_ptr<Optimizer> a = make_original(model_a.parameters);
  take_steps(*a, model_a, 5, false);
  const SavedState saved = save(*a);
  CHECK(names_of(saved.tensors) == saved_names);

  const std::vector<std::vector<float>> saved_values = values_of(saved.tensors);
  const Model model_b = copy_of(model_a), model_c = copy_of(model_a);
  const std::unique_ptr<Optimizer> b = make_fresh(model_b.parameters), c = make_fresh(model_c.parameters);
  b->load_state(saved.header, saved.tensors);
  CHECK(b->steps_taken() == 5);
  CHECK(b->learning_rate() == a->learning_rate());
  CHECK(b->state_json() == a->state_json());

  take_steps(*a, model_a, 5, true);
  take_steps(*b, model_b, 5, true);
  take_steps(*c, model_c, 5, true);
  CHECK(bitwise_equal(model_a.parameters, model_b.parameters));
  CHECK(bitwise_equal(a->state_tensors(), b->state_tensors()));
  CHECK(b->state_json() == a->state_json());
  CHECK(b->steps_taken() == 10);
  CHECK_FALSE(bitwise_equal(model_a.parameters, model_c.parameters));
  CHECK(values_of(saved.tensors) == saved_values);  // B copied the state; its steps left the save alone
}

}  // namespace

TEST_CASE("optim state: sgd resumes exactly") {
  check_resume_is_exact(
      [](std::vector<NamedTensor> p) {
        return std::make_unique<Sgd>(
            std::move(p), SgdOptions{.lr = 0.002, .momentum = 0.9, .weight_decay = 1e-3, .nesterov = true});
      },
      [](std::vector<NamedTensor> p) { return std::make_unique<Sgd>(std::move(p)); },
      {"momentum_buffer.layer.weight", "momentum_buffer.layer.bias"});
}

TEST_CASE("optim state: adam resumes exactly") {
  check_resume_is_exact(
      [](std::vector<NamedTensor> p) {
        return std::make_unique<Adam>(std::move(p),
                                      AdamOptions{.lr = 0.05, .beta1 = 0.8, .weight_decay = 1e-2});
      },
      [](std::vector<NamedTensor> p) { return std::make_unique<Adam>(std::move(p)); },
      {"exp_avg.layer.weight", "exp_avg_sq.layer.weight", "exp_avg.layer.bias", "exp_avg_sq.layer.bias"});
}

TEST_CASE("optim state: adamw resumes exactly") {
  check_resume_is_exact(
      [](std::vector<NamedTensor> p) {
        return std::make_unique<AdamW>(std::move(p), AdamOptions{.lr = 0.05, .weight_decay = 0.1});
      },
      [](std::vector<NamedTensor> p) { return std::make_unique<AdamW>(std::move(p)); },
      {"exp_avg.layer.weight", "exp_avg_sq.layer.weight", "exp_avg.layer.bias", "exp_avg_sq.layer.bias"});
}

TEST_CASE("optim state: state_json holds the kind, every hyperparameter and the step counts") {
  const Model model = make_model();
  Sgd sgd(model.parameters, {.lr = 0.5, .momentum = 0.9, .dampening = 0.1});
  take_steps(sgd, model, 2, false);
  CHECK(
      sgd.state_json() ==
      json{{"kind", "sgd"},
           {"hyperparameters",
            {{"lr", 0.5}, {"momentum", 0.9}, {"dampening", 0.1}, {"weight_decay", 0.0}, {"nesterov", false}}},
           {"steps_taken", 2}});

  const Model other = copy_of(model);
  AdamW adamw(other.parameters);
  take_steps(adamw, other, 3, false);
  const json state = adamw.state_json();
  CHECK(state.at("kind") == "adamw");
  CHECK(state.at("hyperparameters") ==
        json{{"lr", 1e-3}, {"beta1", 0.9}, {"beta2", 0.999}, {"eps", 1e-8}, {"weight_decay", 0.01}});
  CHECK(state.at("parameter_steps") == json{{"layer.weight", 3}, {"layer.bias", 3}});
}

TEST_CASE("optim state: sgd load_state rejects a state it cannot take, naming the field") {
  const Model model = make_model();
  Sgd original(model.parameters, {.lr = 0.05, .momentum = 0.9});
  take_steps(original, model, 2, false);
  const SavedState saved = save(original);

  const Model fresh_model = copy_of(model);
  Sgd fresh(fresh_model.parameters, {.lr = 0.2});
  const auto rejects = [&](const json& header, const std::vector<NamedTensor>& tensors, const char* message) {
    CHECK_THROWS_WITH_AS(fresh.load_state(header, tensors), doctest::Contains(message), Error);
  };

  json wrong_kind = saved.header;
  wrong_kind["kind"] = "adam";
  rejects(wrong_kind, saved.tensors, "sgd load_state: field 'kind' is 'adam' but this optimizer is 'sgd'");
  rejects(json::array(), saved.tensors, "sgd load_state: expected a json object");

  json missing = saved.header;
  missing["hyperparameters"].erase("momentum");
  rejects(missing, saved.tensors, "sgd load_state hyperparameters: field 'momentum' is missing");
  json misspelt = saved.header;
  misspelt["hyperparameters"]["momentun"] = 0.9;
  rejects(misspelt, saved.tensors, "sgd load_state hyperparameters: unknown field 'momentun'");
  json wrong_type = saved.header;
  wrong_type["hyperparameters"]["nesterov"] = 1;
  rejects(wrong_type, saved.tensors, "field 'nesterov' should be true or false, got 1");
  json negative_steps = saved.header;
  negative_steps["steps_taken"] = -3;
  rejects(negative_steps, saved.tensors, "field 'steps_taken' is -3");

  std::vector<NamedTensor> wrong_shape = saved.tensors;
  wrong_shape[1].second = Tensor::zeros({4});
  rejects(saved.header, wrong_shape,
          "tensor 'momentum_buffer.layer.bias' has shape [4] but parameter 'layer.bias' has shape [3]");
  rejects(saved.header, {{"momentum_buffer.nowhere", Tensor::zeros({3})}},
          "tensor 'momentum_buffer.nowhere' is for parameter 'nowhere', which this optimizer does not have");
  rejects(saved.header, {{"exp_avg.layer.bias", Tensor::zeros({3})}},
          "tensor 'exp_avg.layer.bias': sgd keeps no buffer 'exp_avg' (it keeps: momentum_buffer)");
  rejects(saved.header, {{"momentum", Tensor::zeros({3})}},
          "tensor 'momentum' is not named <buffer>.<parameter>");
  rejects(saved.header, {saved.tensors[0], saved.tensors[0]}, "appears twice");
  json no_momentum = saved.header;
  no_momentum["hyperparameters"]["momentum"] = 0.0;
  rejects(no_momentum, saved.tensors, "momentum is 0 but the state has 2 momentum buffers");

  // None of the failed loads changed anything.
  CHECK(fresh.learning_rate() == 0.2);
  CHECK(fresh.steps_taken() == 0);
  CHECK(fresh.options().momentum == 0.0);
  CHECK(fresh.state_tensors().empty());
  fresh.load_state(saved.header, saved.tensors);
  CHECK(fresh.options().momentum == 0.9);
}

TEST_CASE("optim state: adam load_state rejects a state it cannot take, naming the field") {
  const Model model = make_model();
  Adam original(model.parameters);
  take_steps(original, model, 2, false);
  const SavedState saved = save(original);
  const Model fresh_model = copy_of(model);
  Adam fresh(fresh_model.parameters);
  AdamW fresh_w(copy_of(model).parameters);

  CHECK_THROWS_WITH_AS(
      fresh_w.load_state(saved.header, saved.tensors),
      doctest::Contains("adamw load_state: field 'kind' is 'adam' but this optimizer is 'adamw'"), Error);
  std::vector<NamedTensor> no_second_moment = saved.tensors;
  no_second_moment.erase(no_second_moment.begin() + 1);  // exp_avg_sq.layer.weight
  CHECK_THROWS_WITH_AS(
      fresh.load_state(saved.header, no_second_moment),
      doctest::Contains("parameter 'layer.weight' needs exp_avg, exp_avg_sq and a parameter_steps "
                        "entry together (has exp_avg, no exp_avg_sq, a parameter_steps entry)"),
      Error);
  json no_steps = saved.header;
  no_steps.erase("parameter_steps");
  CHECK_THROWS_WITH_AS(fresh.load_state(no_steps, saved.tensors),
                       doctest::Contains("adam load_state: field 'parameter_steps' is missing"), Error);
  json stray_steps = saved.header;
  stray_steps["parameter_steps"]["layer.gone"] = 2;
  CHECK_THROWS_WITH_AS(fresh.load_state(stray_steps, saved.tensors),
                       doctest::Contains("adam load_state parameter_steps: unknown field 'layer.gone'"),
                       Error);
  json zero_steps = saved.header;
  zero_steps["parameter_steps"]["layer.bias"] = 0;
  CHECK_THROWS_WITH_AS(fresh.load_state(zero_steps, saved.tensors),
                       doctest::Contains("parameter_steps of 'layer.bias' is 0"), Error);
  json bad_beta = saved.header;
  bad_beta["hyperparameters"]["beta2"] = 1.5;
  CHECK_THROWS_WITH_AS(fresh.load_state(bad_beta, saved.tensors),
                       doctest::Contains("beta2 1.5 should be in [0, 1)"), Error);
  CHECK(fresh.state_tensors().empty());
  CHECK(fresh.steps_taken() == 0);
}

}  // namespace optim_state_test
