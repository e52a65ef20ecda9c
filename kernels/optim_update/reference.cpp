// Reference optimizer updates: one loop per optimizer (and one for the moving average) that reads like the
// formulas in optim_update.hpp. Each element's arithmetic is done in double and every stored value
// (parameter, buffers) is rounded to T once, so float and double runs differ only by that rounding.
#include <cmath>
#include <cstdint>

#include "kernels/optim_update/optim_update.hpp"

namespace kiln::kernels::reference {

template <typename T>
void sgd_update(std::int64_t n, T* param, const T* grad, T* momentum_buffer, const SgdHyper& h) {
  for (std::int64_t i = 0; i < n; ++i) {
    const double p = static_cast<double>(param[i]);
    double g = static_cast<double>(grad[i]) + h.weight_decay * p;
    if (h.momentum != 0.0) {
      const double buf =
          h.first_step ? g : h.momentum * static_cast<double>(momentum_buffer[i]) + (1.0 - h.dampening) * g;
      momentum_buffer[i] = static_cast<T>(buf);
      g = h.nesterov ? g + h.momentum * buf : buf;
    }
    param[i] = static_cast<T>(p - h.lr * g);
  }
}

template <typename T>
void adam_update(std::int64_t n, T* param, const T* grad, T* exp_avg, T* exp_avg_sq, const AdamHyper& h) {
  const auto step = static_cast<double>(h.step);
  const double bias_correction1 = 1.0 - std::pow(h.beta1, step);
  const double bias_correction2 = 1.0 - std::pow(h.beta2, step);
  // AdamW shrinks the parameter directly; Adam adds the decay to the gradient instead.
  const double shrink = h.decoupled_weight_decay ? 1.0 - h.lr * h.weight_decay : 1.0;
  const double gradient_decay = h.decoupled_weight_decay ? 0.0 : h.weight_decay;
  for (std::int64_t i = 0; i < n; ++i) {
    const double p = static_cast<double>(param[i]);
    const double g = static_cast<double>(grad[i]) + gradient_decay * p;
    const double m = h.beta1 * static_cast<double>(exp_avg[i]) + (1.0 - h.beta1) * g;
    const double v = h.beta2 * static_cast<double>(exp_avg_sq[i]) + (1.0 - h.beta2) * g * g;
    exp_avg[i] = static_cast<T>(m);
    exp_avg_sq[i] = static_cast<T>(v);
    const double m_hat = m / bias_correction1;
    const double v_hat = v / bias_correction2;
    param[i] = static_cast<T>(p * shrink - h.lr * m_hat / (std::sqrt(v_hat) + h.eps));
  }
}

template <typename T>
void average_update(std::int64_t n, T* average, const T* weight, double decay) {
  for (std::int64_t i = 0; i < n; ++i) {
    average[i] = static_cast<T>(decay * static_cast<double>(average[i]) +
                                (1.0 - decay) * static_cast<double>(weight[i]));
  }
}

template void sgd_update<float>(std::int64_t, float*, const float*, float*, const SgdHyper&);
template void sgd_update<double>(std::int64_t, double*, const double*, double*, const SgdHyper&);
template void adam_update<float>(std::int64_t, float*, const float*, float*, float*, const AdamHyper&);
template void adam_update<double>(std::int64_t, double*, const double*, double*, double*, const AdamHyper&);
template void average_update<float>(std::int64_t, float*, const float*, double);
template void average_update<double>(std::int64_t, double*, const double*, double);

}  // namespace kiln::kernels::reference
