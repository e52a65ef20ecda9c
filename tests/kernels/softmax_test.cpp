// Tests for the reference softmax and log-softmax kernels (kernels/softmax/softmax.hpp): hand-worked
// values, stability for huge logits, the strided [outer, dim, inner] view, and a finite-difference check
// of each backward against its forward.
#include "kernels/softmax/softmax.hpp"

#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "core/error.hpp"

namespace kernels_softmax_test {

using namespace kiln::kernels;

namespace {

const double kLn2 = std::log(2.0), kLn3 = std::log(3.0), kLn4 = std::log(4.0);

// A tolerance for hand-worked values: float keeps ~7 digits, double ~16.
template <typename T>
double value_tolerance() {
  return sizeof(T) == sizeof(float) ? 1e-6 : 1e-14;
}

std::int64_t element_count(const SoftmaxGeometry& g) { return g.outer * g.dim * g.inner; }

// Deterministic, irregular test values in roughly [-2, 2].
std::vector<double> wiggly_values(std::int64_t count, double phase) {
  std::vector<double> values(static_cast<std::size_t>(count));
  for (std::size_t i = 0; i < values.size(); ++i) {
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

// Geometries the gradient checks run over: a [N, C] view with odd C, the middle axis of an NCHW-like
// view (inner > 1), a single row, and a degenerate dim of 1.
const SoftmaxGeometry kGradientGeometries[] = {{1, 7, 1}, {2, 3, 5}, {3, 5, 2}, {1, 1, 1}, {2, 1, 3}};

}  // namespace

// exp([0, ln 2, ln 3]) = [1, 2, 3], whose sum is 6: softmax = [1/6, 1/3, 1/2].
TEST_CASE_TEMPLATE("softmax_forward: hand-worked [0, ln 2, ln 3]", T, float, double) {
  const T x[3] = {T(0), T(kLn2), T(kLn3)};
  T y[3];
  softmax_forward(kiln::Device::cpu(), SoftmaxGeometry{1, 3, 1}, x, y);
  const double tol = value_tolerance<T>();
  CHECK(y[0] == doctest::Approx(1.0 / 6.0).epsilon(tol));
  CHECK(y[1] == doctest::Approx(1.0 / 3.0).epsilon(tol));
  CHECK(y[2] == doctest::Approx(1.0 / 2.0).epsilon(tol));
}

// log softmax([0, ln 2, ln 3]) = log([1/6, 1/3, 1/2]) = [-ln 6, -ln 3, -ln 2].
TEST_CASE_TEMPLATE("log_softmax_forward: hand-worked [0, ln 2, ln 3]", T, float, double) {
  const T x[3] = {T(0), T(kLn2), T(kLn3)};
  T y[3];
  log_softmax_forward(kiln::Device::cpu(), SoftmaxGeometry{1, 3, 1}, x, y);
  const double tol = value_tolerance<T>();
  CHECK(y[0] == doctest::Approx(-std::log(6.0)).epsilon(tol));
  CHECK(y[1] == doctest::Approx(-kLn3).epsilon(tol));
  CHECK(y[2] == doctest::Approx(-kLn2).epsilon(tol));
}

// Without the max subtracted, exp(1000) overflows. Softmax is shift-invariant, so:
//   [1000, 1000]          -> [1/2, 1/2]
//   [1000, -1000]         -> [1, e^-2000] = [1, 0] (e^-2000 underflows),  log: [0, -2000]
//   [-1000, -1000, -1000] -> [1/3, 1/3, 1/3]                              (no 0/0 from underflow either)
TEST_CASE_TEMPLATE("softmax_forward: stable for logits of +-1000", T, float, double) {
  const double tol = value_tolerance<T>();
  SUBCASE("equal huge logits") {
    const T x[2] = {T(1000), T(1000)};
    T y[2], log_y[2];
    softmax_forward(kiln::Device::cpu(), SoftmaxGeometry{1, 2, 1}, x, y);
    log_softmax_forward(kiln::Device::cpu(), SoftmaxGeometry{1, 2, 1}, x, log_y);
    CHECK(y[0] == doctest::Approx(0.5).epsilon(tol));
    CHECK(y[1] == doctest::Approx(0.5).epsilon(tol));
    CHECK(log_y[0] == doctest::Approx(-kLn2).epsilon(tol));
    CHECK(log_y[1] == doctest::Approx(-kLn2).epsilon(tol));
  }
  SUBCASE("opposite huge logits") {
    const T x[2] = {T(1000), T(-1000)};
    T y[2], log_y[2];
    softmax_forward(kiln::Device::cpu(), SoftmaxGeometry{1, 2, 1}, x, y);
    log_softmax_forward(kiln::Device::cpu(), SoftmaxGeometry{1, 2, 1}, x, log_y);
    CHECK(y[0] == T(1));
    CHECK(y[1] == T(0));
    CHECK(log_y[0] == T(0));
    CHECK(log_y[1] == T(-2000));
  }
  SUBCASE("very negative logits") {
    const T x[3] = {T(-1000), T(-1000), T(-1000)};
    T y[3], log_y[3];
    softmax_forward(kiln::Device::cpu(), SoftmaxGeometry{1, 3, 1}, x, y);
    log_softmax_forward(kiln::Device::cpu(), SoftmaxGeometry{1, 3, 1}, x, log_y);
    for (int k = 0; k < 3; ++k) {
      CHECK(y[k] == doctest::Approx(1.0 / 3.0).epsilon(tol));
      CHECK(log_y[k] == doctest::Approx(-kLn3).epsilon(tol));
    }
  }
}

// The [outer = 2, dim = 3, inner = 2] view: element (o, k, i) sits at (o * 3 + k) * 2 + i, and each of
// the four (o, i) columns is normalized over k on its own.
//   (o=0, i=0): [0, ln 2, ln 3]          -> exp [1, 2, 3], sum 6   -> [1/6, 1/3, 1/2]
//   (o=0, i=1): [ln 3, ln 3, ln 3]       -> all equal              -> [1/3, 1/3, 1/3]
//   (o=1, i=0): [5, 5 + ln 2, 5 + ln 3]  -> shift of the first     -> [1/6, 1/3, 1/2]
//   (o=1, i=1): [ln 4, 0, ln 3]          -> exp [4, 1, 3], sum 8   -> [1/2, 1/8, 3/8]
TEST_CASE_TEMPLATE("softmax_forward: middle axis of an [outer, dim, inner] view", T, float, double) {
  // Stored in (o, k, i) order: for each o, for each k, the two i values.
  const T x[12] = {T(0), T(kLn3), T(kLn2),     T(kLn3), T(kLn3),     T(kLn3),
                   T(5), T(kLn4), T(5 + kLn2), T(0),    T(5 + kLn3), T(kLn3)};
  const double expected[12] = {1.0 / 6, 1.0 / 3, 1.0 / 3, 1.0 / 3, 1.0 / 2, 1.0 / 3,
                               1.0 / 6, 1.0 / 2, 1.0 / 3, 1.0 / 8, 1.0 / 2, 3.0 / 8};
  T y[12], log_y[12];
  softmax_forward(kiln::Device::cpu(), SoftmaxGeometry{2, 3, 2}, x, y);
  log_softmax_forward(kiln::Device::cpu(), SoftmaxGeometry{2, 3, 2}, x, log_y);
  const double tol = value_tolerance<T>();
  for (int e = 0; e < 12; ++e) {
    INFO("element " << e);
    CHECK(y[e] == doctest::Approx(expected[e]).epsilon(tol));
    CHECK(log_y[e] == doctest::Approx(std::log(expected[e])).epsilon(tol));
  }
}

// y = [1/6, 1/3, 1/2], gy = [1, 0, 0]: sum_j gy_j y_j = 1/6, so
//   gx = y * (gy - 1/6) = [1/6 * 5/6, 1/3 * -1/6, 1/2 * -1/6] = [5/36, -1/18, -1/12].
TEST_CASE_TEMPLATE("softmax_backward: hand-worked", T, float, double) {
  const T y[3] = {T(1.0 / 6), T(1.0 / 3), T(1.0 / 2)};
  const T gy[3] = {T(1), T(0), T(0)};
  T gx[3];
  softmax_backward(kiln::Device::cpu(), SoftmaxGeometry{1, 3, 1}, y, gy, gx);
  const double tol = value_tolerance<T>();
  CHECK(gx[0] == doctest::Approx(5.0 / 36).epsilon(tol));
  CHECK(gx[1] == doctest::Approx(-1.0 / 18).epsilon(tol));
  CHECK(gx[2] == doctest::Approx(-1.0 / 12).epsilon(tol));
}

// y = log [1/6, 1/3, 1/2], gy = [1, 0, 0]: sum_j gy_j = 1, so gx = gy - softmax = [5/6, -1/3, -1/2].
TEST_CASE_TEMPLATE("log_softmax_backward: hand-worked", T, float, double) {
  const T y[3] = {T(-std::log(6.0)), T(-kLn3), T(-kLn2)};
  const T gy[3] = {T(1), T(0), T(0)};
  T gx[3];
  log_softmax_backward(kiln::Device::cpu(), SoftmaxGeometry{1, 3, 1}, y, gy, gx);
  const double tol = value_tolerance<T>();
  CHECK(gx[0] == doctest::Approx(5.0 / 6).epsilon(tol));
  CHECK(gx[1] == doctest::Approx(-1.0 / 3).epsilon(tol));
  CHECK(gx[2] == doctest::Approx(-1.0 / 2).epsilon(tol));
}

TEST_CASE("softmax_forward: every row sums to 1 and log_softmax is its log") {
  const SoftmaxGeometry g{3, 5, 4};
  const std::vector<double> x = wiggly_values(element_count(g), 0.4);
  std::vector<double> y(x.size()), log_y(x.size());
  softmax_forward(kiln::Device::cpu(), g, x.data(), y.data());
  log_softmax_forward(kiln::Device::cpu(), g, x.data(), log_y.data());
  for (std::int64_t o = 0; o < g.outer; ++o) {
    for (std::int64_t i = 0; i < g.inner; ++i) {
      double row_sum = 0.0;
      for (std::int64_t k = 0; k < g.dim; ++k)
        row_sum += y[static_cast<std::size_t>((o * g.dim + k) * g.inner + i)];
      CHECK(row_sum == doctest::Approx(1.0).epsilon(1e-14));
    }
  }
  for (std::size_t e = 0; e < x.size(); ++e)
    CHECK(std::exp(log_y[e]) == doctest::Approx(y[e]).epsilon(1e-14));
}

// L(x) = sum_e gy_e * softmax(x)_e; its gradient is softmax_backward(softmax(x), gy).
TEST_CASE("softmax_backward: matches finite differences of softmax_forward") {
  for (const SoftmaxGeometry& g : kGradientGeometries) {
    CAPTURE(g.outer);
    CAPTURE(g.dim);
    CAPTURE(g.inner);
    const std::vector<double> x = wiggly_values(element_count(g), 0.1);
    const std::vector<double> gy = wiggly_values(element_count(g), 2.3);
    std::vector<double> y(x.size()), gx(x.size());
    softmax_forward(kiln::Device::cpu(), g, x.data(), y.data());
    softmax_backward(kiln::Device::cpu(), g, y.data(), gy.data(), gx.data());
    check_gradient(x, gx, [&](const std::vector<double>& probe) {
      std::vector<double> out(probe.size());
      softmax_forward(kiln::Device::cpu(), g, probe.data(), out.data());
      return dot(gy, out);
    });
  }
}

// L(x) = sum_e gy_e * log_softmax(x)_e; its gradient is log_softmax_backward(log_softmax(x), gy).
TEST_CASE("log_softmax_backward: matches finite differences of log_softmax_forward") {
  for (const SoftmaxGeometry& g : kGradientGeometries) {
    CAPTURE(g.outer);
    CAPTURE(g.dim);
    CAPTURE(g.inner);
    const std::vector<double> x = wiggly_values(element_count(g), 0.9);
    const std::vector<double> gy = wiggly_values(element_count(g), 1.1);
    std::vector<double> y(x.size()), gx(x.size());
    log_softmax_forward(kiln::Device::cpu(), g, x.data(), y.data());
    log_softmax_backward(kiln::Device::cpu(), g, y.data(), gy.data(), gx.data());
    check_gradient(x, gx, [&](const std::vector<double>& probe) {
      std::vector<double> out(probe.size());
      log_softmax_forward(kiln::Device::cpu(), g, probe.data(), out.data());
      return dot(gy, out);
    });
  }
}

}  // namespace kernels_softmax_test
