#include "optim/clip.hpp"

#include <cmath>

#include "core/autograd.hpp"
#include "core/error.hpp"
#include "core/ops.hpp"

namespace kiln::optim {

double clip_grad_norm(const std::vector<Tensor>& parameters, double max_norm) {
  KILN_CHECK(std::isfinite(max_norm) && max_norm > 0.0, "clip_grad_norm: max_norm ", max_norm,
             " should be a finite number > 0");
  NoGradGuard no_grad;
  double sum_of_squares = 0.0;
  for (const Tensor& parameter : parameters) {
    const Tensor grad = parameter.grad();
    if (grad.defined()) sum_of_squares += sum(grad * grad).item();  // the sum accumulates in double
  }
  const double norm = std::sqrt(sum_of_squares);
  if (!std::isfinite(norm)) return norm;
  const double scale = max_norm / (norm + 1e-6);
  if (scale >= 1.0) return norm;
  for (const Tensor& parameter : parameters) {
    Tensor grad = parameter.grad();  // shares the parameter's gradient storage, so copy_ writes into it
    if (grad.defined()) grad.copy_(grad * scale);
  }
  return norm;
}

}  // namespace kiln::optim
