// Tests for the reference loss kernels: cross-entropy with label smoothing and class weights
// (kernels/loss/cross_entropy.hpp) and binary cross-entropy on logits (kernels/loss/bce_with_logits.hpp).
// Hand-worked values, stability for huge logits, and finite-difference checks of both backwards.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "core/error.hpp"
#include "kernels/loss/bce_with_logits.hpp"
#include "kernels/loss/cross_entropy.hpp"

namespace kernels_loss_test {

using namespace kiln::kernels;

namespace {

const double kLn2 = std::log(2.0), kLn3 = std::log(3.0), kLn4 = std::log(4.0);
const double kLn4Over3 = std::log(4.0 / 3.0);

template <typename T>
double value_tolerance() {
  return sizeof(T) == sizeof(float) ? 1e-6 : 1e-14;
}

// Deterministic, irregular test values in roughly [-2.3, 2.3].
std::vector<double> wiggly_values(std::size_t count, double phase) {
  std::vector<double> values(count);
  for (std::size_t i = 0; i < count; ++i) {
    values[i] = 2.0 * std::sin(1.7 * static_cast<double>(i) + phase) +
                0.3 * std::cos(0.37 * static_cast<double>(i * i));
  }
  return values;
}

// Central differences: for each j, (L(x + eps e_j) - L(x - eps e_j)) / (2 eps) must match analytic[j].
template <typename Scalar>
void check_gradient(std::vector<double> x, const std::vector<double>& analytic, Scalar scalar) {
  constexpr double eps = 1e-6;
  REQUIRE(x.size() == analytic.size());
  for (std::size_t j = 0; j < x.size(); ++j) {
    const double saved = x[j];
    x[j] = saved + eps;
    const double above = scalar(x);
    x[j] = saved - eps;
    const double below = scalar(x);
    x[j] = saved;
    INFO("element " << j);
    CHECK((above - below) / (2.0 * eps) == doctest::Approx(analytic[j]).epsilon(1e-6));
  }
}

double dot(const std::vector<double>& a, const std::vector<double>& b) {
  double sum = 0.0;
  for (std::size_t i = 0; i < a.size(); ++i) sum += a[i] * b[i];
  return sum;
}

}  // namespace

// ---------------------------------------------------------------------------------------------------------
// cross_entropy
// ---------------------------------------------------------------------------------------------------------

// logits [0, ln 3] -> softmax [1/4, 3/4] -> log_probs [-ln 4, -ln(4/3)].
//   sample 0, label 1:  loss = ln(4/3)
//   sample 1, label 0:  loss = ln 4
TEST_CASE_TEMPLATE("cross_entropy_forward: hand-worked 2 classes", T, float, double) {
  const T logits[4] = {T(0), T(kLn3), T(0), T(kLn3)};
  const std::int64_t labels[2] = {1, 0};
  T loss[2], log_probs[4];
  cross_entropy_forward(kiln::Device::cpu(), CrossEntropyGeometry{2, 2}, logits, labels,
                        static_cast<const T*>(nullptr), T(0), loss, log_probs);
  const double tol = value_tolerance<T>();
  CHECK(loss[0] == doctest::Approx(kLn4Over3).epsilon(tol));
  CHECK(loss[1] == doctest::Approx(kLn4).epsilon(tol));
  CHECK(log_probs[0] == doctest::Approx(-kLn4).epsilon(tol));
  CHECK(log_probs[1] == doctest::Approx(-kLn4Over3).epsilon(tol));
}

// Same logits, smoothing s = 0.1, C = 2, so s / C = 0.05:
//   label 1: 0.9 * ln(4/3) + 0.05 * (ln 4 + ln(4/3)) = 0.95 ln(4/3) + 0.05 ln 4 ~= 0.3426127
//   label 0: 0.9 * ln 4    + 0.05 * (ln 4 + ln(4/3)) = 0.95 ln 4    + 0.05 ln(4/3) ~= 1.3313637
TEST_CASE_TEMPLATE("cross_entropy_forward: hand-worked with smoothing 0.1", T, float, double) {
  const T logits[4] = {T(0), T(kLn3), T(0), T(kLn3)};
  const std::int64_t labels[2] = {1, 0};
  T loss[2], log_probs[4];
  cross_entropy_forward(kiln::Device::cpu(), CrossEntropyGeometry{2, 2}, logits, labels,
                        static_cast<const T*>(nullptr), T(0.1), loss, log_probs);
  const double tol = value_tolerance<T>();
  CHECK(loss[0] == doctest::Approx(0.95 * kLn4Over3 + 0.05 * kLn4).epsilon(tol));
  CHECK(loss[0] == doctest::Approx(0.3426127).epsilon(1e-6));
  CHECK(loss[1] == doctest::Approx(0.95 * kLn4 + 0.05 * kLn4Over3).epsilon(tol));
}

// Same logits, class weights w = [2, 0.5]:
//   no smoothing,  label 1: w[1] * ln(4/3) = 0.5 ln(4/3)
//   no smoothing,  label 0: w[0] * ln 4    = 2 ln 4
//   smoothing 0.1, label 1: 0.9 * 0.5 ln(4/3) + 0.05 * (2 ln 4 + 0.5 ln(4/3)) = 0.475 ln(4/3) + 0.1 ln 4
//   smoothing 0.1, label 0: 0.9 * 2 ln 4      + 0.05 * (2 ln 4 + 0.5 ln(4/3)) = 1.9 ln 4 + 0.025 ln(4/3)
TEST_CASE_TEMPLATE("cross_entropy_forward: hand-worked with class weights", T, float, double) {
  const T logits[4] = {T(0), T(kLn3), T(0), T(kLn3)};
  const std::int64_t labels[2] = {1, 0};
  const T class_weight[2] = {T(2), T(0.5)};
  T loss[2], log_probs[4];
  const double tol = value_tolerance<T>();
  SUBCASE("without smoothing") {
    cross_entropy_forward(kiln::Device::cpu(), CrossEntropyGeometry{2, 2}, logits, labels, class_weight, T(0),
                          loss, log_probs);
    CHECK(loss[0] == doctest::Approx(0.5 * kLn4Over3).epsilon(tol));
    CHECK(loss[1] == doctest::Approx(2.0 * kLn4).epsilon(tol));
  }
  SUBCASE("with smoothing 0.1") {
    cross_entropy_forward(kiln::Device::cpu(), CrossEntropyGeometry{2, 2}, logits, labels, class_weight,
                          T(0.1), loss, log_probs);
    CHECK(loss[0] == doctest::Approx(0.475 * kLn4Over3 + 0.1 * kLn4).epsilon(tol));
    CHECK(loss[1] == doctest::Approx(1.9 * kLn4 + 0.025 * kLn4Over3).epsilon(tol));
  }
}

// logits [1000, -1000]: log_probs = [0, -2000] exactly (e^-2000 underflows), so label 1 costs 2000 and
// label 0 costs 0 -- finite, where log(softmax) computed naively would be log(0) = -inf.
TEST_CASE_TEMPLATE("cross_entropy_forward: finite for logits of +-1000", T, float, double) {
  const T logits[4] = {T(1000), T(-1000), T(1000), T(-1000)};
  const std::int64_t labels[2] = {1, 0};
  T loss[2], log_probs[4];
  cross_entropy_forward(kiln::Device::cpu(), CrossEntropyGeometry{2, 2}, logits, labels,
                        static_cast<const T*>(nullptr), T(0), loss, log_probs);
  CHECK(loss[0] == T(2000));
  CHECK(loss[1] == T(0));
}

// logits [0, ln 3], label 1, gloss 1 -> softmax [1/4, 3/4]:
//   plain:                         q = [0, 1],                    glogits = softmax - q = [1/4, -1/4]
//   w = [2, 0.5], smoothing 0.1:   q = [0.05 * 2, 0.9 * 0.5 + 0.05 * 0.5] = [0.1, 0.475], sum q = 0.575
//                                  glogits = softmax * 0.575 - q = [0.04375, -0.04375]
// gloss = 3 scales everything by 3.
TEST_CASE_TEMPLATE("cross_entropy_backward: hand-worked 2 classes", T, float, double) {
  const T log_probs[2] = {T(-kLn4), T(-kLn4Over3)};
  const std::int64_t labels[1] = {1};
  T glogits[2];
  const double tol = value_tolerance<T>();
  SUBCASE("plain") {
    const T gloss[1] = {T(1)};
    cross_entropy_backward(kiln::Device::cpu(), CrossEntropyGeometry{1, 2}, log_probs, labels,
                           static_cast<const T*>(nullptr), T(0), gloss, glogits);
    CHECK(glogits[0] == doctest::Approx(0.25).epsilon(tol));
    CHECK(glogits[1] == doctest::Approx(-0.25).epsilon(tol));
  }
  SUBCASE("class weights and smoothing 0.1, gloss 3") {
    const T class_weight[2] = {T(2), T(0.5)};
    const T gloss[1] = {T(3)};
    cross_entropy_backward(kiln::Device::cpu(), CrossEntropyGeometry{1, 2}, log_probs, labels, class_weight,
                           T(0.1), gloss, glogits);
    CHECK(glogits[0] == doctest::Approx(3 * 0.04375).epsilon(tol));
    CHECK(glogits[1] == doctest::Approx(3 * -0.04375).epsilon(tol));
  }
}

// L(logits) = sum_n gloss_n * loss_n; its gradient is cross_entropy_backward(log_probs, ..., gloss).
TEST_CASE("cross_entropy_backward: matches finite differences of cross_entropy_forward") {
  struct Case {
    std::int64_t batch, classes;
    bool weighted;
    double smoothing;
  };
  const Case cases[] = {{1, 3, false, 0.0}, {1, 3, true, 0.1}, {4, 7, false, 0.1}, {5, 7, true, 0.0},
                        {5, 7, true, 0.25}, {3, 5, true, 0.1}, {2, 1, true, 0.1}};
  for (const Case& c : cases) {
    CAPTURE(c.batch);
    CAPTURE(c.classes);
    CAPTURE(c.weighted);
    CAPTURE(c.smoothing);
    const CrossEntropyGeometry g{c.batch, c.classes};
    const auto n = static_cast<std::size_t>(c.batch), nc = static_cast<std::size_t>(c.batch * c.classes);
    const std::vector<double> logits = wiggly_values(nc, 0.2);
    std::vector<std::int64_t> labels(n);
    for (std::size_t i = 0; i < n; ++i)
      labels[i] = static_cast<std::int64_t>((3 * i + 1) % static_cast<std::size_t>(c.classes));
    std::vector<double> class_weight(static_cast<std::size_t>(c.classes));
    for (std::size_t k = 0; k < class_weight.size(); ++k)
      class_weight[k] = 0.5 + 0.3 * static_cast<double>(k);
    const double* weights = c.weighted ? class_weight.data() : nullptr;
    const std::vector<double> gloss = wiggly_values(n, 1.3);

    std::vector<double> loss(n), log_probs(nc), glogits(nc);
    cross_entropy_forward(kiln::Device::cpu(), g, logits.data(), labels.data(), weights, c.smoothing,
                          loss.data(), log_probs.data());
    cross_entropy_backward(kiln::Device::cpu(), g, log_probs.data(), labels.data(), weights, c.smoothing,
                           gloss.data(), glogits.data());
    check_gradient(logits, glogits, [&](const std::vector<double>& probe) {
      std::vector<double> probe_loss(n), probe_log_probs(nc);
      cross_entropy_forward(kiln::Device::cpu(), g, probe.data(), labels.data(), weights, c.smoothing,
                            probe_loss.data(), probe_log_probs.data());
      return dot(gloss, probe_loss);
    });
  }
}

// ---------------------------------------------------------------------------------------------------------
// bce_with_logits
// ---------------------------------------------------------------------------------------------------------

// x = 0 -> p = 1/2, and -(t log 1/2 + (1 - t) log 1/2) = ln 2 whatever the target.
// x = ln 3 -> p = 3/4:
//   t = 1:          -log(3/4) = ln(4/3)
//   t = 0:          -log(1/4) = ln 4
//   t = 1, pw = 2:  2 ln(4/3)
//   t = 1/2, pw = 2: -(2 * 1/2 * log(3/4) + 1/2 * log(1/4)) = ln(4/3) + ln 2 = ln(8/3)
TEST_CASE_TEMPLATE("bce_with_logits_forward: hand-worked values", T, float, double) {
  const double tol = value_tolerance<T>();
  SUBCASE("x = 0 gives ln 2 for any target") {
    const T x[3] = {T(0), T(0), T(0)};
    const T t[3] = {T(0), T(1), T(0.3)};
    T loss[3];
    bce_with_logits_forward(kiln::Device::cpu(), 3, x, t, static_cast<const T*>(nullptr), loss);
    for (int i = 0; i < 3; ++i) CHECK(loss[i] == doctest::Approx(kLn2).epsilon(tol));
  }
  SUBCASE("x = ln 3 with and without pos_weight") {
    const T x[4] = {T(kLn3), T(kLn3), T(kLn3), T(kLn3)};
    const T t[4] = {T(1), T(0), T(1), T(0.5)};
    const T pos_weight[4] = {T(1), T(1), T(2), T(2)};
    T loss[4];
    bce_with_logits_forward(kiln::Device::cpu(), 4, x, t, pos_weight, loss);
    CHECK(loss[0] == doctest::Approx(kLn4Over3).epsilon(tol));
    CHECK(loss[1] == doctest::Approx(kLn4).epsilon(tol));
    CHECK(loss[2] == doctest::Approx(2.0 * kLn4Over3).epsilon(tol));
    CHECK(loss[3] == doctest::Approx(std::log(8.0 / 3.0)).epsilon(tol));
  }
  SUBCASE("pos_weight 0 ignores positives") {  // pw = 0, t = 1 -> no loss at all
    const T x[1] = {T(-kLn3)};
    const T t[1] = {T(1)};
    const T pos_weight[1] = {T(0)};
    T loss[1];
    bce_with_logits_forward(kiln::Device::cpu(), 1, x, t, pos_weight, loss);
    CHECK(loss[0] == T(0));
  }
}

// |x| = 100: exp(100) overflows float, and sigmoid(100) rounds to 1 so log(1 - p) = -inf naively.
//   x = 100,  t = 1: softplus(-100) = log(1 + e^-100) ~= e^-100 ~= 3.7e-44, essentially 0
//   x = 100,  t = 0: 100 + e^-100 ~= 100
//   x = -100, t = 1: 100;  with pw = 3: 300
//   x = -100, t = 0: ~= 0
// |x| = 1000 overflows exp() even in double: x = 1000, t = 0 and x = -1000, t = 1 both cost 1000.
TEST_CASE_TEMPLATE("bce_with_logits_forward: finite for |x| = 100 and 1000", T, float, double) {
  const T x[7] = {T(100), T(100), T(-100), T(-100), T(-100), T(1000), T(-1000)};
  const T t[7] = {T(1), T(0), T(1), T(0), T(1), T(0), T(1)};
  const T pos_weight[7] = {T(1), T(1), T(1), T(1), T(3), T(1), T(1)};
  T loss[7];
  bce_with_logits_forward(kiln::Device::cpu(), 7, x, t, pos_weight, loss);
  for (int i = 0; i < 7; ++i) CHECK(std::isfinite(loss[i]));
  CHECK(loss[0] == doctest::Approx(0.0).epsilon(1e-30));
  CHECK(loss[1] == doctest::Approx(100.0).epsilon(1e-12));
  CHECK(loss[2] == doctest::Approx(100.0).epsilon(1e-12));
  CHECK(loss[3] == doctest::Approx(0.0).epsilon(1e-30));
  CHECK(loss[4] == doctest::Approx(300.0).epsilon(1e-12));
  CHECK(loss[5] == doctest::Approx(1000.0).epsilon(1e-12));
  CHECK(loss[6] == doctest::Approx(1000.0).epsilon(1e-12));
}

// x = ln 3 -> p = 3/4; gx = gloss * ((1 + (pw - 1) t) p - pw t):
//   t = 1, pw = 2:  2 * 3/4 - 2 = -1/2
//   t = 0, pw = 2:  3/4
//   t = 1, pw = 1:  3/4 - 1 = -1/4, times gloss 4 = -1
// and at |x| = 100 or 1000 the gradient saturates to p - t without NaN: x = 100 or 1000, t = 0 -> 1;
// x = -100 or -1000, t = 1 -> -1.
TEST_CASE_TEMPLATE("bce_with_logits_backward: hand-worked values", T, float, double) {
  const T x[7] = {T(kLn3), T(kLn3), T(kLn3), T(100), T(-100), T(1000), T(-1000)};
  const T t[7] = {T(1), T(0), T(1), T(0), T(1), T(0), T(1)};
  const T pos_weight[7] = {T(2), T(2), T(1), T(1), T(1), T(1), T(1)};
  const T gloss[7] = {T(1), T(1), T(4), T(1), T(1), T(1), T(1)};
  T gx[7];
  bce_with_logits_backward(kiln::Device::cpu(), 7, x, t, pos_weight, gloss, gx);
  const double tol = value_tolerance<T>();
  CHECK(gx[0] == doctest::Approx(-0.5).epsilon(tol));
  CHECK(gx[1] == doctest::Approx(0.75).epsilon(tol));
  CHECK(gx[2] == doctest::Approx(-1.0).epsilon(tol));
  CHECK(gx[3] == doctest::Approx(1.0).epsilon(tol));
  CHECK(gx[4] == doctest::Approx(-1.0).epsilon(tol));
  CHECK(gx[5] == doctest::Approx(1.0).epsilon(tol));
  CHECK(gx[6] == doctest::Approx(-1.0).epsilon(tol));
}

// L(x) = sum_i gloss_i * loss_i; its gradient is bce_with_logits_backward(x, t, pw, gloss).
TEST_CASE("bce_with_logits_backward: matches finite differences of bce_with_logits_forward") {
  for (const bool weighted : {false, true}) {
    CAPTURE(weighted);
    constexpr std::size_t n = 11;
    std::vector<double> x = wiggly_values(n, 0.5);
    x[3] = 6.0;  // well into the saturated tails too
    x[7] = -6.0;
    std::vector<double> t(n), pos_weight(n);
    for (std::size_t i = 0; i < n; ++i) {
      t[i] = static_cast<double>(i % 5) / 4.0;  // 0, 1/4, 1/2, 3/4, 1
      pos_weight[i] = 0.5 + 0.4 * static_cast<double>(i % 4);
    }
    const double* pw = weighted ? pos_weight.data() : nullptr;
    const std::vector<double> gloss = wiggly_values(n, 2.7);
    std::vector<double> gx(n);
    bce_with_logits_backward(kiln::Device::cpu(), static_cast<std::int64_t>(n), x.data(), t.data(), pw,
                             gloss.data(), gx.data());
    check_gradient(x, gx, [&](const std::vector<double>& probe) {
      std::vector<double> loss(n);
      bce_with_logits_forward(kiln::Device::cpu(), static_cast<std::int64_t>(n), probe.data(), t.data(), pw,
                              loss.data());
      return dot(gloss, loss);
    });
  }
}

}  // namespace kernels_loss_test
