#include "tests/support/gradcheck.hpp"

#include <cmath>
#include <sstream>

#include "core/generator.hpp"

namespace kiln::testing {
namespace {

double projected_loss(const OpUnderTest& op, const Inputs& inputs, const Tensor& projection) {
  NoGradGuard no_grad;
  return sum(op(inputs) * projection).item();
}

}  // namespace

Tensor random_input(const Shape& shape, std::uint64_t seed, double low, double high) {
  Generator generator(seed);
  return Tensor::rand(shape, DType::Float64, &generator, low, high);
}

GradcheckResult gradcheck(const OpUnderTest& op, const Inputs& raw_inputs, const GradcheckOptions& options) {
  Inputs inputs;
  for (const Tensor& input : raw_inputs) {
    Tensor leaf = Tensor::empty(input.shape(), DType::Float64);
    leaf.copy_(input);
    leaf.set_requires_grad(true);
    inputs.push_back(leaf);
  }

  // Analytic gradients: one backward pass of L = sum(f * R).
  const Tensor output = op(inputs);
  const Tensor projection = random_input(output.shape(), options.seed);
  sum(output * projection).backward();

  GradcheckResult result;
  double worst_excess = 0.0;
  for (std::size_t which = 0; which < inputs.size(); ++which) {
    Tensor& input = inputs[which];
    const Tensor analytic_grad = input.grad();
    if (!analytic_grad.defined()) {
      result.ok = false;
      result.message = "input " + std::to_string(which) + " received no gradient";
      return result;
    }
    const std::vector<double> analytic = analytic_grad.to_vector<double>();
    double* values = input.data<double>();
    for (std::int64_t i = 0; i < input.numel(); ++i) {
      const double saved = values[i];
      values[i] = saved + options.eps;
      const double plus = projected_loss(op, inputs, projection);
      values[i] = saved - options.eps;
      const double minus = projected_loss(op, inputs, projection);
      values[i] = saved;
      const double numeric = (plus - minus) / (2.0 * options.eps);
      const double a = analytic[static_cast<std::size_t>(i)];
      const double allowed = options.atol + options.rtol * std::fabs(numeric);
      const double excess = std::fabs(a - numeric) - allowed;
      if (!(excess <= 0.0) && (excess > worst_excess || std::isnan(excess) || result.ok)) {
        worst_excess = std::isnan(excess) ? INFINITY : excess;
        std::ostringstream message;
        message << "input " << which << " " << input.describe() << " element " << i << ": analytic " << a
                << ", numeric " << numeric;
        result.ok = false;
        result.message = message.str();
      }
    }
  }
  return result;
}

}  // namespace kiln::testing
