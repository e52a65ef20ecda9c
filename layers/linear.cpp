#include "layers/linear.hpp"

#include <cmath>
#include <sstream>

#include "layers/compute_dtype.hpp"
#include "layers/init.hpp"

namespace kiln::layers {

Linear::Linear(std::int64_t in_features, std::int64_t out_features, Generator& generator, bool bias)
    : in_features_(in_features), out_features_(out_features) {
  KILN_CHECK(in_features > 0 && out_features > 0, "Linear: in_features ", in_features, " and out_features ",
             out_features, " must be positive");
  const double bound = 1.0 / std::sqrt(static_cast<double>(in_features));
  weight_ = register_parameter("weight", uniform({out_features, in_features}, bound, generator));
  if (bias) bias_ = register_parameter("bias", uniform({out_features}, bound, generator));
}

Tensor Linear::forward(const Tensor& input) {
  KILN_CHECK(input.dim() == 2 && input.size(1) == in_features_, describe(), ": input ", input.describe(),
             " must be [N, ", in_features_, "]");
  // [N, in] @ [in, out] -> [N, out]; the transpose is a view, not a copy of the weight.
  const Tensor output = matmul(input, as_compute_dtype(weight_, input).transpose(0, 1));
  return bias_.defined() ? output + as_compute_dtype(bias_, input) : output;
}

std::string Linear::describe() const {
  std::ostringstream out;
  out << "Linear(in_features=" << in_features_ << ", out_features=" << out_features_
      << ", bias=" << (bias_.defined() ? "true" : "false") << ")";
  return out.str();
}

}  // namespace kiln::layers
