// Tests for the optimizer update kernels (kernels/optim_update/optim_update.hpp): single-element updates
// worked by hand from PyTorch's formulas (SGD plain, with weight decay, momentum, dampening and
// Nesterov; Adam over two steps; Adam's L2 decay and AdamW's decoupled decay; the moving average), float
// against double on longer buffers, and the dispatch checks.
#include "kernels/optim_update/optim_update.hpp"

#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "core/error.hpp"

namespace kernels_optim_update_test {

namespace {

using kiln::Device;
using kiln::kernels::AdamHyper;
using kiln::kernels::SgdHyper;
namespace kernels = kiln::kernels;

constexpr Device kCpu = Device::cpu();

// How close a T result must be to a hand-worked double value: each stored value is rounded to T once
// per step, so float keeps ~7 digits and double ~16.
template <typename T>
double tolerance() {
  return sizeof(T) == sizeof(float) ? 1e-6 : 1e-14;
}

// p and the momentum buffer after each of two SGD steps on one element.
struct TwoSteps {
  double p1, buf1, p2, buf2;
};

// Two SGD steps under `h` on one element starting at p = 1, with gradients 0.5 then 0.25.
template <typename T>
TwoSteps sgd_two_steps(SgdHyper h) {
  T p = T(1), buf = T(0);
  const T grads[2] = {T(0.5), T(0.25)};
  TwoSteps out{};
  h.first_step = true;
  kernels::sgd_update(kCpu, 1, &p, &grads[0], h.momentum != 0.0 ? &buf : nullptr, h);
  out.p1 = p;
  out.buf1 = buf;
  h.first_step = false;
  kernels::sgd_update(kCpu, 1, &p, &grads[1], h.momentum != 0.0 ? &buf : nullptr, h);
  out.p2 = p;
  out.buf2 = buf;
  return out;
}

// Deterministic, irregular values in roughly [-1.5, 1.5].
std::vector<double> wiggly(std::size_t count, double phase) {
  std::vector<double> values(count);
  for (std::size_t i = 0; i < count; ++i) {
    values[i] = std::sin(1.3 * static_cast<double>(i) + phase) + 0.5 * std::cos(0.7 * static_cast<double>(i));
  }
  return values;
}

template <typename T>
std::vector<T> as(const std::vector<double>& values) {
  return std::vector<T>(values.begin(), values.end());
}

}  // namespace

// g = 0.5, p = 1 - 0.1 * 0.5 = 0.95; then g = 0.25, p = 0.95 - 0.025 = 0.925.
TEST_CASE_TEMPLATE("optim_update: sgd without momentum is p -= lr * grad", T, float, double) {
  const auto out = sgd_two_steps<T>({.lr = 0.1});
  CHECK(out.p1 == doctest::Approx(0.95).epsilon(tolerance<T>()));
  CHECK(out.p2 == doctest::Approx(0.925).epsilon(tolerance<T>()));
}

// g = 0.5 + 0.2 * 1 = 0.7, p = 1 - 0.07 = 0.93; then g = 0.25 + 0.2 * 0.93 = 0.436, p = 0.93 - 0.0436.
TEST_CASE_TEMPLATE("optim_update: sgd weight decay adds weight_decay * p to the gradient", T, float, double) {
  const auto out = sgd_two_steps<T>({.lr = 0.1, .weight_decay = 0.2});
  CHECK(out.p1 == doctest::Approx(0.93).epsilon(tolerance<T>()));
  CHECK(out.p2 == doctest::Approx(0.8864).epsilon(tolerance<T>()));
}

// Step 1 copies g into the buffer: buf = 0.5, p = 1 - 0.05 = 0.95.
// Step 2: buf = 0.9 * 0.5 + 0.25 = 0.7, p = 0.95 - 0.07 = 0.88.
TEST_CASE_TEMPLATE("optim_update: sgd momentum", T, float, double) {
  const auto out = sgd_two_steps<T>({.lr = 0.1, .momentum = 0.9});
  CHECK(out.buf1 == doctest::Approx(0.5).epsilon(tolerance<T>()));
  CHECK(out.p1 == doctest::Approx(0.95).epsilon(tolerance<T>()));
  CHECK(out.buf2 == doctest::Approx(0.7).epsilon(tolerance<T>()));
  CHECK(out.p2 == doctest::Approx(0.88).epsilon(tolerance<T>()));
}

// Dampening scales the new gradient but not the first one: buf = 0.5 (undamped), p = 0.95;
// then buf = 0.9 * 0.5 + (1 - 0.5) * 0.25 = 0.575, p = 0.95 - 0.0575 = 0.8925.
TEST_CASE_TEMPLATE("optim_update: sgd dampening spares the first step", T, float, double) {
  const auto out = sgd_two_steps<T>({.lr = 0.1, .momentum = 0.9, .dampening = 0.5});
  CHECK(out.buf1 == doctest::Approx(0.5).epsilon(tolerance<T>()));
  CHECK(out.p1 == doctest::Approx(0.95).epsilon(tolerance<T>()));
  CHECK(out.buf2 == doctest::Approx(0.575).epsilon(tolerance<T>()));
  CHECK(out.p2 == doctest::Approx(0.8925).epsilon(tolerance<T>()));
}

// Nesterov steps along g + momentum * buf: buf = 0.5, p = 1 - 0.1 * (0.5 + 0.45) = 0.905;
// then buf = 0.7, p = 0.905 - 0.1 * (0.25 + 0.63) = 0.817.
TEST_CASE_TEMPLATE("optim_update: sgd nesterov", T, float, double) {
  const auto out = sgd_two_steps<T>({.lr = 0.1, .momentum = 0.9, .nesterov = true});
  CHECK(out.buf1 == doctest::Approx(0.5).epsilon(tolerance<T>()));
  CHECK(out.p1 == doctest::Approx(0.905).epsilon(tolerance<T>()));
  CHECK(out.buf2 == doctest::Approx(0.7).epsilon(tolerance<T>()));
  CHECK(out.p2 == doctest::Approx(0.817).epsilon(tolerance<T>()));
}

// lr 0.1, betas (0.9, 0.999), eps 1e-8, p = 1, gradients 0.5 then -0.25.
// Step 1: m = 0.1 * 0.5 = 0.05, v = 0.001 * 0.25 = 0.00025; m_hat = 0.05 / 0.1 = 0.5,
//         v_hat = 0.00025 / 0.001 = 0.25; p = 1 - 0.1 * 0.5 / (0.5 + 1e-8).
// Step 2: m = 0.9 * 0.05 - 0.1 * 0.25 = 0.02, v = 0.999 * 0.00025 + 0.001 * 0.0625 = 0.00031225;
//         m_hat = 0.02 / (1 - 0.81), v_hat = 0.00031225 / (1 - 0.998001); p -= 0.1 * m_hat / (sqrt(v_hat) +
//         eps).
TEST_CASE_TEMPLATE("optim_update: adam two steps by hand", T, float, double) {
  T p = T(1), m = T(0), v = T(0);
  AdamHyper h{.lr = 0.1, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .step = 1};
  const T g1 = T(0.5), g2 = T(-0.25);
  kernels::adam_update(kCpu, 1, &p, &g1, &m, &v, h);
  const double p1 = 1.0 - 0.1 * 0.5 / (0.5 + 1e-8);
  CHECK(m == doctest::Approx(0.05).epsilon(tolerance<T>()));
  CHECK(v == doctest::Approx(0.00025).epsilon(tolerance<T>()));
  CHECK(p == doctest::Approx(p1).epsilon(tolerance<T>()));

  h.step = 2;
  kernels::adam_update(kCpu, 1, &p, &g2, &m, &v, h);
  const double m_hat = 0.02 / 0.19, v_hat = 0.00031225 / 0.001999;
  CHECK(m == doctest::Approx(0.02).epsilon(tolerance<T>()));
  CHECK(v == doctest::Approx(0.00031225).epsilon(tolerance<T>()));
  CHECK(p == doctest::Approx(p1 - 0.1 * m_hat / (std::sqrt(v_hat) + 1e-8)).epsilon(tolerance<T>()));
}

// Adam folds the decay into the gradient: g = 0.5 + 0.1 * 1 = 0.6, so m = 0.06 and v = 0.00036.
TEST_CASE_TEMPLATE("optim_update: adam weight decay goes into the moments", T, float, double) {
  T p = T(1), m = T(0), v = T(0);
  const T g = T(0.5);
  kernels::adam_update(kCpu, 1, &p, &g, &m, &v, {.lr = 0.1, .weight_decay = 0.1, .step = 1});
  CHECK(m == doctest::Approx(0.06).epsilon(tolerance<T>()));
  CHECK(v == doctest::Approx(0.00036).epsilon(tolerance<T>()));
  CHECK(p == doctest::Approx(1.0 - 0.1 * 0.6 / (0.6 + 1e-8)).epsilon(tolerance<T>()));
}

// AdamW shrinks p first, p = 1 * (1 - 0.1 * 0.1) = 0.99, and leaves the moments to the raw gradient:
// m = 0.05, v = 0.00025, p = 0.99 - 0.1 * 0.5 / (0.5 + 1e-8).
TEST_CASE_TEMPLATE("optim_update: adamw decouples weight decay", T, float, double) {
  T p = T(1), m = T(0), v = T(0);
  const T g = T(0.5);
  kernels::adam_update(kCpu, 1, &p, &g, &m, &v,
                       {.lr = 0.1, .weight_decay = 0.1, .decoupled_weight_decay = true, .step = 1});
  CHECK(m == doctest::Approx(0.05).epsilon(tolerance<T>()));
  CHECK(v == doctest::Approx(0.00025).epsilon(tolerance<T>()));
  CHECK(p == doctest::Approx(0.99 - 0.1 * 0.5 / (0.5 + 1e-8)).epsilon(tolerance<T>()));

  // With a zero gradient Adam's step is 0, so only the decay acts: p *= 0.99 per step.
  const T zero = T(0);
  T q = T(2), qm = T(0), qv = T(0);
  for (std::int64_t step = 1; step <= 3; ++step) {
    kernels::adam_update(kCpu, 1, &q, &zero, &qm, &qv,
                         {.lr = 0.1, .weight_decay = 0.1, .decoupled_weight_decay = true, .step = step});
  }
  CHECK(q == doctest::Approx(2.0 * 0.99 * 0.99 * 0.99).epsilon(tolerance<T>()));
}

// average = d * average + (1 - d) * weight: 2 -> 0.9 * 2 + 0.1 * 1 = 1.9 -> 0.5 * 1.9 + 0.5 * 1 = 1.45; decay
// 1 keeps the average, 0 copies the weight; a list of tensors takes the same arithmetic per tensor.
TEST_CASE_TEMPLATE("optim_update: the moving average by hand", T, float, double) {
  T average = T(2);
  const T weight = T(1);
  kernels::average_update(kCpu, 1, &average, &weight, 0.9);
  CHECK(average == doctest::Approx(1.9).epsilon(tolerance<T>()));
  kernels::average_update(kCpu, 1, &average, &weight, 0.5);
  CHECK(average == doctest::Approx(1.45).epsilon(tolerance<T>()));
  kernels::average_update(kCpu, 1, &average, &weight, 1.0);
  CHECK(average == doctest::Approx(1.45).epsilon(tolerance<T>()));
  kernels::average_update(kCpu, 1, &average, &weight, 0.0);
  CHECK(average == weight);

  std::vector<T> first = {T(4), T(-4)}, second = {T(10)};
  const std::vector<T> first_weight = {T(0), T(0)}, second_weight = {T(20)};
  const std::vector<kernels::AverageSlice<T>> slices = {{first.data(), first_weight.data(), 2},
                                                        {second.data(), second_weight.data(), 1},
                                                        {nullptr, nullptr, 0}};
  kernels::average_update_many<T>(kCpu, 0.75, slices);
  CHECK(first[0] == doctest::Approx(3.0).epsilon(tolerance<T>()));
  CHECK(first[1] == doctest::Approx(-3.0).epsilon(tolerance<T>()));
  CHECK(second[0] == doctest::Approx(12.5).epsilon(tolerance<T>()));
}

// The same three steps in float and in double agree to float precision, element by element.
TEST_CASE("optim_update: float and double agree over many elements") {
  constexpr std::size_t n = 257;
  const std::vector<double> start = wiggly(n, 0.0);
  const std::vector<std::vector<double>> grads = {wiggly(n, 1.0), wiggly(n, 2.0), wiggly(n, 3.0)};

  std::vector<float> p32 = as<float>(start), buf32(n), m32(n), v32(n), q32 = as<float>(start);
  std::vector<double> p64 = start, buf64(n), m64(n), v64(n), q64 = start;
  for (std::size_t s = 0; s < grads.size(); ++s) {
    const SgdHyper sgd{
        .lr = 0.05, .momentum = 0.9, .weight_decay = 1e-2, .nesterov = true, .first_step = s == 0};
    const std::vector<float> g32 = as<float>(grads[s]);
    kernels::sgd_update(kCpu, n, p32.data(), g32.data(), buf32.data(), sgd);
    kernels::sgd_update(kCpu, n, p64.data(), grads[s].data(), buf64.data(), sgd);
    const AdamHyper adam{.lr = 0.01,
                         .weight_decay = 0.05,
                         .decoupled_weight_decay = true,
                         .step = static_cast<std::int64_t>(s) + 1};
    kernels::adam_update(kCpu, n, q32.data(), g32.data(), m32.data(), v32.data(), adam);
    kernels::adam_update(kCpu, n, q64.data(), grads[s].data(), m64.data(), v64.data(), adam);
  }
  for (std::size_t i = 0; i < n; ++i) {
    INFO("element ", i);
    CHECK(p32[i] == doctest::Approx(p64[i]).epsilon(1e-5));
    CHECK(buf32[i] == doctest::Approx(buf64[i]).epsilon(1e-5));
    CHECK(q32[i] == doctest::Approx(q64[i]).epsilon(1e-5));
    CHECK(m32[i] == doctest::Approx(m64[i]).epsilon(1e-5));
    CHECK(v32[i] == doctest::Approx(v64[i]).epsilon(1e-5));
  }
}

TEST_CASE("optim_update: dispatch rejects a missing buffer, step 0 and a decay outside [0, 1]") {
  float p = 1.0f, g = 1.0f, m = 0.0f, v = 0.0f;
  CHECK_THROWS_WITH_AS(kernels::sgd_update<float>(kCpu, 1, &p, &g, nullptr, {.lr = 0.1, .momentum = 0.9}),
                       doctest::Contains("needs a momentum buffer"), kiln::Error);
  CHECK_NOTHROW(kernels::sgd_update<float>(kCpu, 1, &p, &g, nullptr, {.lr = 0.1}));
  CHECK_THROWS_WITH_AS(kernels::adam_update(kCpu, 1, &p, &g, &m, &v, {.lr = 0.1, .step = 0}),
                       doctest::Contains("counts from 1"), kiln::Error);
  CHECK_THROWS_WITH_AS(kernels::average_update(kCpu, 1, &p, &g, 1.5), doctest::Contains("outside [0, 1]"),
                       kiln::Error);
  CHECK_THROWS_WITH_AS(kernels::average_update_many<float>(kCpu, -0.1, {}),
                       doctest::Contains("outside [0, 1]"), kiln::Error);
}

}  // namespace kernels_optim_update_test
