// Tests for the optimizers (optim/sgd.hpp, optim/adam.hpp) through the Optimizer interface: each one
// drives a quadratic to its minimum, step() updates only parameters that have a gradient, outside the
// tape, and the constructors reject parameter lists and options they cannot work with.
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "core/autograd.hpp"
#include "core/ops.hpp"
#include "optim/adam.hpp"
#include "optim/schedule.hpp"
#include "optim/sgd.hpp"

namespace optim_optimizer_test {

using namespace kiln;
using namespace kiln::optim;

namespace {

// A parameter starting at 0 and the point it should reach.
struct Quadratic {
  Tensor parameter = Tensor::zeros({2, 3}).set_requires_grad();
  Tensor target = Tensor::from_vector<float>({1.0f, -2.0f, 3.0f, 0.5f, -1.0f, 2.0f}, {2, 3});
  std::vector<NamedTensor> named() const { return {{"p", parameter}}; }
};

// sum((p - target)^2), minimized at p = target.
Tensor loss_of(const Quadratic& problem) {
  const Tensor difference = problem.parameter - problem.target;
  return sum(difference * difference);
}

// `steps` training steps, the learning rate taken from `schedule` when there is one.
void minimize(Optimizer& optimizer, const Quadratic& problem, int steps, const Schedule* schedule = nullptr) {
  for (int step = 0; step < steps; ++step) {
    if (schedule) optimizer.set_learning_rate(schedule->learning_rate(optimizer.steps_taken()));
    optimizer.zero_grad();
    loss_of(problem).backward();
    optimizer.step();
  }
}

double largest_error(const Quadratic& problem) {
  const std::vector<double> p = problem.parameter.to_vector<double>(), t = problem.target.to_vector<double>();
  double largest = 0.0;
  for (std::size_t i = 0; i < p.size(); ++i) largest = std::max(largest, std::fabs(p[i] - t[i]));
  return largest;
}

Tensor parameter_of(std::vector<float> values) {
  const auto count = static_cast<std::int64_t>(values.size());
  return Tensor::from_vector(values, {count}).set_requires_grad();
}

}  // namespace

TEST_CASE("optim: sgd with momentum minimizes a quadratic") {
  Quadratic problem;
  Sgd sgd(problem.named(), {.lr = 0.05, .momentum = 0.9});
  minimize(sgd, problem, 300);
  CHECK(largest_error(problem) < 1e-3);
  CHECK(sgd.steps_taken() == 300);
}

TEST_CASE("optim: sgd with nesterov momentum and weight decay settles where decay balances the pull") {
  // The minimum of sum((p - t)^2) + (weight_decay / 2) sum(p^2) is p = 2 t / (2 + weight_decay).
  Quadratic problem;
  Sgd sgd(problem.named(), {.lr = 0.05, .momentum = 0.9, .weight_decay = 0.5, .nesterov = true});
  minimize(sgd, problem, 300);
  const std::vector<double> p = problem.parameter.to_vector<double>(), t = problem.target.to_vector<double>();
  for (std::size_t i = 0; i < p.size(); ++i) CHECK(p[i] == doctest::Approx(2.0 * t[i] / 2.5).epsilon(1e-4));
}

TEST_CASE("optim: adam minimizes a quadratic") {
  Quadratic problem;
  Adam adam(problem.named(), {.lr = 0.1});
  const CosineSchedule schedule(0.1, 500);  // Adam's steps keep a size near lr; decaying lr lets it settle
  minimize(adam, problem, 500, &schedule);
  CHECK(largest_error(problem) < 1e-3);
}

TEST_CASE("optim: adamw minimizes a quadratic, and decays weights that get no gradient") {
  Quadratic problem;
  AdamW adamw(problem.named(), {.lr = 0.1, .weight_decay = 1e-4});
  const CosineSchedule schedule(0.1, 500);
  minimize(adamw, problem, 500, &schedule);
  CHECK(largest_error(problem) < 1e-3);

  // A zero gradient leaves Adam's step at 0, so only the decay acts: p *= 1 - lr * weight_decay.
  Tensor still = parameter_of({2.0f});
  AdamW decaying({{"still", still}}, {.lr = 0.1, .weight_decay = 0.5});
  for (int step = 0; step < 4; ++step) {
    still.set_grad(Tensor::zeros({1}));
    decaying.step();
  }
  CHECK(still.item() == doctest::Approx(2.0 * std::pow(0.95, 4)).epsilon(1e-6));
  CHECK(AdamW({{"still", still}}).options().weight_decay == 0.01);
  CHECK(Adam({{"still", still}}).options().weight_decay == 0.0);
}

TEST_CASE("optim: step updates only parameters with a gradient, in place and off the tape") {
  Tensor used = parameter_of({1.0f, 2.0f}), unused = parameter_of({5.0f});
  const Tensor alias = used;  // a second handle to the same tensor, as a module holds it
  Sgd sgd({{"used", used}, {"unused", unused}}, {.lr = 0.5, .momentum = 0.9});
  sum(used * used).backward();  // gradient 2 * used = [2, 4]
  sgd.step();
  CHECK(alias.to_vector<double>() == std::vector<double>{0.0, 0.0});
  CHECK(unused.to_vector<double>() == std::vector<double>{5.0});
  CHECK(used.is_leaf());
  CHECK(used.requires_grad());
  const std::vector<NamedTensor> state = sgd.state_tensors();
  REQUIRE(state.size() == 1);
  CHECK(state[0].first == "momentum_buffer.used");

  CHECK(used.grad().defined());
  sgd.zero_grad();
  CHECK_FALSE(used.grad().defined());
  sgd.step();  // no gradients at all: nothing moves, but the step counts
  CHECK(alias.to_vector<double>() == std::vector<double>{0.0, 0.0});
  CHECK(sgd.steps_taken() == 2);
}

TEST_CASE("optim: set_learning_rate sets the size of the next step") {
  Tensor p = Tensor::from_vector<double>({1.0}, {1}).set_requires_grad();
  Sgd sgd({{"p", p}}, {.lr = 0.1});
  sgd.set_learning_rate(0.25);
  CHECK(sgd.learning_rate() == 0.25);
  CHECK(sgd.options().lr == 0.25);
  p.set_grad(Tensor::from_vector<double>({2.0}, {1}));
  sgd.step();
  CHECK(p.item() == 0.5);  // 1 - 0.25 * 2
  CHECK_THROWS_WITH_AS(sgd.set_learning_rate(-1.0), doctest::Contains("sgd: learning rate -1"), Error);
  CHECK_THROWS_WITH_AS(sgd.set_learning_rate(NAN), doctest::Contains("should be a finite number"), Error);
}

TEST_CASE("optim: the constructor rejects parameters it cannot update") {
  const Tensor good = parameter_of({1.0f});
  CHECK_THROWS_WITH_AS(Sgd(std::vector<NamedTensor>{}), doctest::Contains("sgd: no parameters to optimize"),
                       Error);
  CHECK_THROWS_WITH_AS(Sgd({{"a", good}, {"a", parameter_of({1.0f})}}),
                       doctest::Contains("parameter name 'a' appears twice"), Error);
  CHECK_THROWS_WITH_AS(Sgd({{"a", good}, {"b", good}}),
                       doctest::Contains("'b' is the same tensor as an earlier parameter"), Error);
  CHECK_THROWS_WITH_AS(Adam({{"frozen", Tensor::zeros({2})}}),
                       doctest::Contains("adam: parameter 'frozen' must be a leaf tensor that requires grad"),
                       Error);
  const Tensor derived = good * 2.0f;
  CHECK_THROWS_WITH_AS(Sgd({{"derived", derived}}), doctest::Contains("must be a leaf"), Error);
  Tensor transposed = Tensor::zeros({3, 2}).transpose(0, 1);
  transposed.set_requires_grad();
  CHECK_THROWS_WITH_AS(AdamW({{"t", transposed}}),
                       doctest::Contains("adamw: parameter 't' float32[2, 3] is not dense"), Error);
  CHECK_THROWS_WITH_AS(Sgd({{"", good}}), doctest::Contains("empty name"), Error);
}

TEST_CASE("optim: the constructors reject options outside their range") {
  const std::vector<NamedTensor> parameters = {{"p", parameter_of({1.0f})}};
  CHECK_THROWS_WITH_AS(Sgd(parameters, {.momentum = 0.0, .nesterov = true}),
                       doctest::Contains("nesterov needs momentum > 0 and dampening 0"), Error);
  CHECK_THROWS_WITH_AS(Sgd(parameters, {.momentum = 0.9, .dampening = 0.1, .nesterov = true}),
                       doctest::Contains("dampening 0.1"), Error);
  CHECK_THROWS_WITH_AS(Sgd(parameters, {.lr = -0.1}), doctest::Contains("sgd: learning rate -0.1"), Error);
  CHECK_THROWS_WITH_AS(Sgd(parameters, {.weight_decay = -1}), doctest::Contains("weight_decay -1"), Error);
  CHECK_THROWS_WITH_AS(Adam(parameters, {.beta1 = 1.0}),
                       doctest::Contains("adam: beta1 1 should be in [0, 1)"), Error);
  CHECK_THROWS_WITH_AS(AdamW(parameters, {.beta2 = -0.5}), doctest::Contains("adamw: beta2 -0.5"), Error);
  CHECK_THROWS_WITH_AS(Adam(parameters, {.eps = -1e-8}), doctest::Contains("eps"), Error);
}

TEST_CASE("optim: step rejects a gradient that does not match its parameter") {
  Tensor p = parameter_of({1.0f, 2.0f});
  Sgd sgd({{"p", p}});
  p.set_grad(Tensor::zeros({2}, DType::Float64));
  CHECK_THROWS_WITH_AS(sgd.step(), doctest::Contains("sgd step: the gradient of parameter 'p' is float64[2]"),
                       Error);
}

}  // namespace optim_optimizer_test
