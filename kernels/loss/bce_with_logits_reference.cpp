// Reference binary cross-entropy on logits, elementwise (see bce_with_logits.hpp). Written so that no
// exp() ever sees a positive argument: the loss stays finite and accurate for logits like +-100, where
// the naive -log(sigmoid(x)) would take log(0) or exp(100).
#include <algorithm>
#include <cmath>
#include <cstdint>

#include "kernels/loss/bce_with_logits.hpp"

namespace kiln::kernels::reference {
namespace {

// pos_weight[i], where a null pos_weight means 1 everywhere.
template <typename T>
double pos_weight_of(const T* pos_weight, std::int64_t i) {
  return pos_weight ? static_cast<double>(pos_weight[i]) : 1.0;
}

// softplus(-x) = log(1 + exp(-x)) = -log sigmoid(x), rewritten as log(1 + exp(-|x|)) + max(-x, 0) so the
// exponent is never positive.
double softplus_of_negative(double x) { return std::log1p(std::exp(-std::fabs(x))) + std::max(-x, 0.0); }

// sigmoid(x) = 1 / (1 + exp(-x)), choosing the form whose exp() cannot overflow.
double stable_sigmoid(double x) {
  if (x >= 0.0) return 1.0 / (1.0 + std::exp(-x));
  const double e = std::exp(x);
  return e / (1.0 + e);
}

}  // namespace

// logits, targets, pos_weight, loss [n]
//   loss_i = -(pw * t * log p + (1 - t) * log(1 - p))       with p = sigmoid(x)
//          = (1 - t) * x + (1 + (pw - 1) * t) * softplus(-x)
// using log p = -softplus(-x) and log(1 - p) = -x - softplus(-x).
template <typename T>
void bce_with_logits_forward(std::int64_t n, const T* logits, const T* targets, const T* pos_weight,
                             T* loss) {
  for (std::int64_t i = 0; i < n; ++i) {
    const double x = static_cast<double>(logits[i]);
    const double t = static_cast<double>(targets[i]);
    const double pw = pos_weight_of(pos_weight, i);
    loss[i] = static_cast<T>((1.0 - t) * x + (1.0 + (pw - 1.0) * t) * softplus_of_negative(x));
  }
}

// gloss, glogits [n]
//   d loss_i / d x_i = (1 + (pw - 1) * t) * p - pw * t        (= p - t when pw = 1)
template <typename T>
void bce_with_logits_backward(std::int64_t n, const T* logits, const T* targets, const T* pos_weight,
                              const T* gloss, T* glogits) {
  for (std::int64_t i = 0; i < n; ++i) {
    const double p = stable_sigmoid(static_cast<double>(logits[i]));
    const double t = static_cast<double>(targets[i]);
    const double pw = pos_weight_of(pos_weight, i);
    glogits[i] = static_cast<T>(static_cast<double>(gloss[i]) * ((1.0 + (pw - 1.0) * t) * p - pw * t));
  }
}

template void bce_with_logits_forward<float>(std::int64_t, const float*, const float*, const float*, float*);
template void bce_with_logits_forward<double>(std::int64_t, const double*, const double*, const double*,
                                              double*);
template void bce_with_logits_backward<float>(std::int64_t, const float*, const float*, const float*,
                                              const float*, float*);
template void bce_with_logits_backward<double>(std::int64_t, const double*, const double*, const double*,
                                               const double*, double*);

}  // namespace kiln::kernels::reference
