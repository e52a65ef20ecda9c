// gradcheck: compares the tape's gradients of any op with central finite differences in float64.
//
//   auto result = gradcheck([](const Inputs& in) { return conv2d(in[0], in[1]); }, {x, w});
//   CHECK_MESSAGE(result.ok, result.message);
//
// The function's output may have any shape: it is projected onto a fixed random tensor R, and the scalar
// L = sum(f(inputs) * R) is differentiated, so every output element contributes and a rule that mixes
// up output positions cannot cancel out. For every element of every input, the analytic dL/dx (one
// backward pass) is compared with (L(x + eps) - L(x - eps)) / (2 eps).
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "core/ops.hpp"

namespace kiln::testing {

using Inputs = std::vector<Tensor>;
using OpUnderTest = std::function<Tensor(const Inputs&)>;

struct GradcheckOptions {
  double eps = 1e-6;
  double atol = 1e-6;
  double rtol = 1e-5;
  std::uint64_t seed = 1234;  // for the projection R
};

struct GradcheckResult {
  bool ok = true;
  std::string message;  // the worst mismatch: input, element, analytic and numeric values
};

// `inputs` are converted to dense float64 leaves that require grad.
GradcheckResult gradcheck(const OpUnderTest& op, const Inputs& inputs, const GradcheckOptions& options = {});

// Random float64 test input of `shape`, uniform in (low, high), from a fixed seed.
Tensor random_input(const Shape& shape, std::uint64_t seed, double low = -1.0, double high = 1.0);

}  // namespace kiln::testing
