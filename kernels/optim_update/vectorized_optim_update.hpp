// Vectorized SGD and Adam/AdamW updates and the weights' moving average over dense float buffers, written
// once over a vector trait V (simd::FloatVector512 or FloatVector256) and instantiated by avx512.cpp and
// avx2.cpp.
//
//   param, grad, momentum_buffer, exp_avg, exp_avg_sq  [n], updated in place
//   average, weight                                    [n], the average updated in place
//
// An update reads 2 to 4 buffers and writes 1 to 3, with a dozen flops per element: it is memory-bound, so
// the arithmetic can afford double. Each float is widened to double, the reference's formula is applied in
// the reference's order, and the result is rounded to float once. The only difference from the reference
// is that the compiler fuses a * b + c into one FMA here (these files are built with -mfma, and GCC
// contracts by default), which is a rounding in double, far below float's: the stored floats match the
// reference's to within one float rounding, and almost always bitwise.
//
// Elements are independent: threads split fixed blocks, and any thread count gives the same result.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "kernels/optim_update/optim_update.hpp"

namespace kiln::kernels::vectorized {
namespace {

inline constexpr std::int64_t kUpdateBlock = 8192;       // elements per parallel task
inline constexpr std::int64_t kUpdateThreshold = 32768;  // below this, one thread is faster

// Calls step(i, count) over [0, n) in register-sized pieces (count == V::double_width except at the tail),
// threaded over fixed blocks.
template <class V, class Step>
void for_each_double_register(std::int64_t n, Step step) {
  const std::int64_t blocks = (n + kUpdateBlock - 1) / kUpdateBlock;
#pragma omp parallel for schedule(static) if (n >= kUpdateThreshold)
  for (std::int64_t block = 0; block < blocks; ++block) {
    const std::int64_t end = std::min(n, (block + 1) * kUpdateBlock);
    for (std::int64_t i = block * kUpdateBlock; i < end; i += V::double_width) {
      step(i, std::min(V::double_width, end - i));
    }
  }
}

}  // namespace

template <class V>
void sgd_update(std::int64_t n, float* param, const float* grad, float* momentum_buffer, const SgdHyper& h) {
  using D = typename V::DoubleReg;
  const D lr = V::broadcast_double(h.lr), momentum = V::broadcast_double(h.momentum);
  const D undamped = V::broadcast_double(1.0 - h.dampening),
          weight_decay = V::broadcast_double(h.weight_decay);
  const bool use_momentum = h.momentum != 0.0;
  for_each_double_register<V>(n, [&](std::int64_t i, std::int64_t count) {
    const bool full = count == V::double_width;
    auto load = [&](const float* from) {
      return full ? V::load_as_double(from + i) : V::load_partial_as_double(from + i, count);
    };
    auto store = [&](float* to, D value) {
      if (full)
        V::store_as_float(to + i, value);
      else
        V::store_partial_as_float(to + i, value, count);
    };
    const D p = load(param);
    D g = V::add(load(grad), V::mul(weight_decay, p));
    if (use_momentum) {
      const D buf = h.first_step ? g : V::add(V::mul(momentum, load(momentum_buffer)), V::mul(undamped, g));
      store(momentum_buffer, buf);
      g = h.nesterov ? V::add(g, V::mul(momentum, buf)) : buf;
    }
    store(param, V::sub(p, V::mul(lr, g)));
  });
}

template <class V>
void adam_update(std::int64_t n, float* param, const float* grad, float* exp_avg, float* exp_avg_sq,
                 const AdamHyper& h) {
  using D = typename V::DoubleReg;
  // The scalars exactly as the reference computes them.
  const auto step = static_cast<double>(h.step);
  const D bias_correction1 = V::broadcast_double(1.0 - std::pow(h.beta1, step));
  const D bias_correction2 = V::broadcast_double(1.0 - std::pow(h.beta2, step));
  const D shrink = V::broadcast_double(h.decoupled_weight_decay ? 1.0 - h.lr * h.weight_decay : 1.0);
  const D gradient_decay = V::broadcast_double(h.decoupled_weight_decay ? 0.0 : h.weight_decay);
  const D beta1 = V::broadcast_double(h.beta1), one_minus_beta1 = V::broadcast_double(1.0 - h.beta1);
  const D beta2 = V::broadcast_double(h.beta2), one_minus_beta2 = V::broadcast_double(1.0 - h.beta2);
  const D lr = V::broadcast_double(h.lr), eps = V::broadcast_double(h.eps);
  for_each_double_register<V>(n, [&](std::int64_t i, std::int64_t count) {
    const bool full = count == V::double_width;
    auto load = [&](const float* from) {
      return full ? V::load_as_double(from + i) : V::load_partial_as_double(from + i, count);
    };
    auto store = [&](float* to, D value) {
      if (full)
        V::store_as_float(to + i, value);
      else
        V::store_partial_as_float(to + i, value, count);
    };
    const D p = load(param);
    const D g = V::add(load(grad), V::mul(gradient_decay, p));
    const D m = V::add(V::mul(beta1, load(exp_avg)), V::mul(one_minus_beta1, g));
    const D v = V::add(V::mul(beta2, load(exp_avg_sq)), V::mul(V::mul(one_minus_beta2, g), g));
    store(exp_avg, m);
    store(exp_avg_sq, v);
    const D m_hat = V::div(m, bias_correction1), v_hat = V::div(v, bias_correction2);
    store(param, V::sub(V::mul(p, shrink), V::div(V::mul(lr, m_hat), V::add(V::sqrt(v_hat), eps))));
  });
}

template <class V>
void average_update(std::int64_t n, float* average, const float* weight, double decay) {
  using D = typename V::DoubleReg;
  const D keep = V::broadcast_double(decay), take = V::broadcast_double(1.0 - decay);
  for_each_double_register<V>(n, [&](std::int64_t i, std::int64_t count) {
    const bool full = count == V::double_width;
    auto load = [&](const float* from) {
      return full ? V::load_as_double(from + i) : V::load_partial_as_double(from + i, count);
    };
    const D mean = V::add(V::mul(keep, load(average)), V::mul(take, load(weight)));
    if (full)
      V::store_as_float(average + i, mean);
    else
      V::store_partial_as_float(average + i, mean, count);
  });
}

}  // namespace kiln::kernels::vectorized
