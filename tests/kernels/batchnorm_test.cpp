// Tests of the batch-normalization kernels (kernels/batchnorm): hand-worked forward and backward values in
// train and eval mode, the running-statistics update, and a finite-difference check of both backward
// kernels against their forwards over odd shapes.
#include "kernels/batchnorm/batchnorm.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <numeric>
#include <random>
#include <vector>

#include "core/error.hpp"
#include "kernels/elementwise/elementwise.hpp"
#include "tests/support/buffer_gradcheck.hpp"

namespace kernels_batchnorm_test {

namespace {

using kiln::testing::check_gradients_match;
using kiln::testing::numeric_gradient;
using kiln::testing::weighted_sum;

using kiln::Device;

// The backward's `y` argument when no ReLU is fused (it is not read): a typed null, so T is deduced.
template <typename T>
const T* no_relu_output(const std::vector<T>&) {
  return nullptr;
}
using kiln::kernels::BatchNorm2dGeometry;
namespace ref = kiln::kernels::reference;

template <typename T>
std::vector<T> to(const std::vector<double>& values) {
  return std::vector<T>(values.begin(), values.end());
}

template <typename T>
void check_values(const std::vector<T>& actual, const std::vector<double>& expected) {
  REQUIRE(actual.size() == expected.size());
  for (std::size_t i = 0; i < actual.size(); ++i) {
    INFO("element ", i);
    CHECK(static_cast<double>(actual[i]) == doctest::Approx(expected[i]).epsilon(1e-6));
  }
}

std::int64_t tensor_size(const BatchNorm2dGeometry& g) { return g.batch * g.channels * g.height * g.width; }

std::vector<double> random_values(std::int64_t count, std::uint64_t seed, double low = -1.0,
                                  double high = 1.0) {
  std::mt19937_64 engine(seed);
  std::uniform_real_distribution<double> uniform(low, high);
  std::vector<double> values(static_cast<std::size_t>(count));
  for (double& v : values) v = uniform(engine);
  return values;
}

// Odd shapes: batch 1, 1x1 spatial (down to one value per channel), channels 3/5/7, rectangular planes.
std::vector<BatchNorm2dGeometry> odd_geometries() {
  return {
      {.batch = 1, .channels = 3, .height = 2, .width = 3},  // batch 1
      {.batch = 2, .channels = 5, .height = 1, .width = 1},  // 1x1 spatial, two values per channel
      {.batch = 1, .channels = 5, .height = 1, .width = 1},  // one value per channel: var 0, gx 0
      {.batch = 3, .channels = 7, .height = 3, .width = 2},  // rectangular plane
      {.batch = 2, .channels = 3, .height = 5, .width = 7},
  };
}

// gamma and beta for the finite-difference cases, drawn from seed (advanced past them): with the hard swish
// fused, gamma 1.5 to 3 and beta -2 to 2, so the normalized values reach all three of its pieces.
struct AffineParameters {
  std::vector<double> gamma, beta;
};
AffineParameters random_affine(std::int64_t channels, std::uint64_t& seed, bool hardswish) {
  AffineParameters drawn;
  drawn.gamma = random_values(channels, seed++, hardswish ? 1.5 : 0.5, hardswish ? 3.0 : 2.0);
  drawn.beta = random_values(channels, seed++, hardswish ? -2.0 : -1.0, hardswish ? 2.0 : 1.0);
  return drawn;
}

// The backward's gradients of x, gamma and beta against central differences of `loss`, which reads them.
void check_against_finite_differences(const std::vector<double>& gx, const std::vector<double>& ggamma,
                                      const std::vector<double>& gbeta, std::vector<double>& x,
                                      AffineParameters& affine, const std::function<double()>& loss) {
  {
    INFO("gradient of x");
    check_gradients_match(gx, numeric_gradient(x, loss));
  }
  {
    INFO("gradient of gamma");
    check_gradients_match(ggamma, numeric_gradient(affine.gamma, loss));
  }
  {
    INFO("gradient of beta");
    check_gradients_match(gbeta, numeric_gradient(affine.beta, loss));
  }
}

}  // namespace

// ---- train forward -----------------------------------------------------------------------------------

TEST_CASE_TEMPLATE("batchnorm2d_forward_train: hand-worked [2,1,1,2] with running-stat update", T, float,
                   double) {
  // x [2,1,1,2] = {0, 4 | 4, 8}: one channel, m = 4 values.
  //   mean = 16 / 4 = 4;  biased var = (16 + 0 + 0 + 16) / 4 = 8;  eps = 1 -> invstd = 1 / sqrt(9) = 1/3
  //   xhat = {-4/3, 0, 0, 4/3};  gamma = 3, beta = 1 -> y = {-3, 1, 1, 5}
  // Running statistics, momentum 0.1, starting from mean 0 and var 1; the variance is the unbiased 8 * 4/3:
  //   running_mean = 0.9 * 0 + 0.1 * 4        = 0.4
  //   running_var  = 0.9 * 1 + 0.1 * 32 / 3   = 59 / 30
  const BatchNorm2dGeometry g{.batch = 2, .channels = 1, .height = 1, .width = 2};
  const auto x = to<T>({0, 4, 4, 8});
  const std::vector<T> gamma{3}, beta{1};
  std::vector<T> running_mean{0}, running_var{1};
  std::vector<T> y(4), save_mean(1), save_invstd(1);
  ref::batchnorm2d_forward_train(g, x.data(), gamma.data(), beta.data(), T{1}, T(0.1), running_mean.data(),
                                 running_var.data(), y.data(), save_mean.data(), save_invstd.data());
  check_values(y, {-3, 1, 1, 5});
  check_values(save_mean, {4});
  check_values(save_invstd, {1.0 / 3});
  check_values(running_mean, {0.4});
  check_values(running_var, {59.0 / 30});
}

TEST_CASE_TEMPLATE("batchnorm2d_forward_train: channels are normalized separately", T, float, double) {
  // x [2,2,1,1] = {n0: 1, 10 | n1: 3, 30}. Channel 0 holds {1, 3}: mean 2, var 1. Channel 1 holds
  // {10, 30}: mean 20, var 100. eps = 0, so invstd = {1, 0.1} and xhat = -1 for n0 and +1 for n1.
  //   gamma = {1, 2}, beta = {0, -1} -> y = {n0: -1, -3 | n1: 1, 1}
  // No running statistics are tracked (null pointers).
  const BatchNorm2dGeometry g{.batch = 2, .channels = 2, .height = 1, .width = 1};
  const auto x = to<T>({1, 10, 3, 30});
  const std::vector<T> gamma{1, 2}, beta{0, -1};
  std::vector<T> y(4), save_mean(2), save_invstd(2);
  ref::batchnorm2d_forward_train(g, x.data(), gamma.data(), beta.data(), T{0}, T(0.1),
                                 static_cast<T*>(nullptr), static_cast<T*>(nullptr), y.data(),
                                 save_mean.data(), save_invstd.data());
  check_values(y, {-1, -3, 1, 1});
  check_values(save_mean, {2, 20});
  check_values(save_invstd, {1, 0.1});
}

TEST_CASE_TEMPLATE("batchnorm2d_forward_train: one value per channel uses the biased variance", T, float,
                   double) {
  // x [1,2,1,1] = {5, -2}: m = 1, so each channel's variance is 0 and has no unbiased correction.
  //   eps = 0.25 -> invstd = 2;  xhat = 0 -> y = beta = {0.5, -0.5}
  //   running_mean = 0.9 * {0, 0} + 0.1 * {5, -2} = {0.5, -0.2}
  //   running_var  = 0.9 * {2, 4} + 0.1 * 0        = {1.8, 3.6}
  const BatchNorm2dGeometry g{.batch = 1, .channels = 2, .height = 1, .width = 1};
  const auto x = to<T>({5, -2});
  const std::vector<T> gamma{1, 1}, beta = to<T>({0.5, -0.5});
  std::vector<T> running_mean{0, 0}, running_var{2, 4};
  std::vector<T> y(2), save_mean(2), save_invstd(2);
  ref::batchnorm2d_forward_train(g, x.data(), gamma.data(), beta.data(), T(0.25), T(0.1), running_mean.data(),
                                 running_var.data(), y.data(), save_mean.data(), save_invstd.data());
  check_values(y, {0.5, -0.5});
  check_values(save_invstd, {2, 2});
  check_values(running_mean, {0.5, -0.2});
  check_values(running_var, {1.8, 3.6});
}

TEST_CASE("batchnorm2d_forward_train: float statistics stay exact around a large mean") {
  // 2^20 float values alternating 10000 + 1 and 10000 - 1: mean 10000, biased var 1. A float running sum
  // reaches 1e10, where float steps are 1024 apart, and E[x^2] - E[x]^2 in float cancels to noise; double
  // accumulation and a two-pass variance get both exactly.
  const BatchNorm2dGeometry g{.batch = 16, .channels = 1, .height = 256, .width = 256};
  std::vector<float> x(static_cast<std::size_t>(tensor_size(g)));
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = i % 2 == 0 ? 10001.0f : 9999.0f;
  const std::vector<float> gamma{1}, beta{0};
  std::vector<float> y(x.size()), save_mean(1), save_invstd(1);
  ref::batchnorm2d_forward_train(g, x.data(), gamma.data(), beta.data(), 0.0f, 0.1f,
                                 static_cast<float*>(nullptr), static_cast<float*>(nullptr), y.data(),
                                 save_mean.data(), save_invstd.data());
  CHECK(save_mean[0] == 10000.0f);
  CHECK(save_invstd[0] == 1.0f);
  CHECK(y[0] == 1.0f);
  CHECK(y[1] == -1.0f);
}

// ---- train backward ----------------------------------------------------------------------------------

TEST_CASE_TEMPLATE("batchnorm2d_backward_train: hand-worked [2,1,1,2]", T, float, double) {
  // The hand-worked forward above: x = {0, 4, 4, 8}, gamma = 3, mean = 4, invstd = 1/3, m = 4,
  // xhat = {-4/3, 0, 0, 4/3}. With gy = {1, 0, 0, 0}:
  //   gbeta  = 1;  ggamma = 1 * (-4/3) = -4/3
  //   gx = 3 * (1/3) / 4 * (4 gy - 1 + xhat * 4/3) = 1/4 * {4 - 1 - 16/9, -1, -1, -1 + 16/9}
  //      = {11/36, -1/4, -1/4, 7/36}
  const BatchNorm2dGeometry g{.batch = 2, .channels = 1, .height = 1, .width = 2};
  const auto x = to<T>({0, 4, 4, 8});
  const auto gy = to<T>({1, 0, 0, 0});
  const std::vector<T> gamma{3}, beta{1}, save_mean{4}, save_invstd{T{1} / T{3}};
  std::vector<T> gx(4), ggamma(1), gbeta(1);
  ref::batchnorm2d_backward_train(g, x.data(), gy.data(), no_relu_output(x), gamma.data(), beta.data(),
                                  save_mean.data(), save_invstd.data(), gx.data(), ggamma.data(),
                                  gbeta.data());
  check_values(gx, {11.0 / 36, -0.25, -0.25, 7.0 / 36});
  check_values(ggamma, {-4.0 / 3});
  check_values(gbeta, {1});
}

TEST_CASE("batchnorm2d_backward_train: gx is orthogonal to 1 and to xhat in every channel") {
  // With eps = 0, y depends on x only through xhat, which is unchanged by shifting or scaling a channel's x;
  // so moving x along 1 or along xhat cannot change the loss: per channel, sum gx = 0 and sum gx * xhat = 0.
  // (With eps > 0 a scaling does change xhat slightly, and only the first identity is exact.)
  const BatchNorm2dGeometry g{.batch = 3, .channels = 5, .height = 2, .width = 3};
  const std::int64_t plane = g.height * g.width;
  const std::vector<double> x = random_values(tensor_size(g), 1, -2.0, 3.0);
  const std::vector<double> gy = random_values(tensor_size(g), 2);
  const std::vector<double> gamma = random_values(g.channels, 3, 0.5, 2.0);
  const std::vector<double> beta = random_values(g.channels, 4);
  std::vector<double> y(x.size()), gx(x.size()), save_mean(5), save_invstd(5), ggamma(5), gbeta(5);
  ref::batchnorm2d_forward_train(g, x.data(), gamma.data(), beta.data(), 0.0, 0.1,
                                 static_cast<double*>(nullptr), static_cast<double*>(nullptr), y.data(),
                                 save_mean.data(), save_invstd.data());
  ref::batchnorm2d_backward_train(g, x.data(), gy.data(), no_relu_output(x), gamma.data(), beta.data(),
                                  save_mean.data(), save_invstd.data(), gx.data(), ggamma.data(),
                                  gbeta.data());
  for (std::int64_t c = 0; c < g.channels; ++c) {
    double sum_gx = 0, sum_gx_xhat = 0;
    for (std::int64_t n = 0; n < g.batch; ++n) {
      for (std::int64_t i = 0; i < plane; ++i) {
        const std::int64_t at = (n * g.channels + c) * plane + i;
        sum_gx += gx[at];
        sum_gx_xhat += gx[at] * (x[at] - save_mean[c]) * save_invstd[c];
      }
    }
    INFO("channel ", c);
    CHECK(std::abs(sum_gx) < 1e-12);
    CHECK(std::abs(sum_gx_xhat) < 1e-12);
  }
}

// Plain, and with the hard swish fused (gamma 1.5 to 3: normalized values on all three of its pieces), whose
// slope the backward recomputes from x.
TEST_CASE("batchnorm2d_backward_train: matches finite differences for x, gamma and beta over odd shapes") {
  for (const bool hardswish : {false, true}) {
    std::uint64_t seed = hardswish ? 90 : 10;
    for (BatchNorm2dGeometry g : odd_geometries()) {
      g.fused_hardswish = hardswish;
      INFO("N=", g.batch, " C=", g.channels, " H=", g.height, " W=", g.width,
           (hardswish ? " hardswish" : ""));
      const double eps = 1e-5;
      std::vector<double> x = random_values(tensor_size(g), seed++, -1.0, 2.0);
      AffineParameters affine = random_affine(g.channels, seed, hardswish);
      const std::vector<double>& gamma = affine.gamma;  // the loss reads them where the check moves them
      const std::vector<double>& beta = affine.beta;
      const std::vector<double> weights = random_values(tensor_size(g), seed++);
      std::vector<double> y(x.size()), save_mean(gamma.size()), save_invstd(gamma.size());
      const auto loss = [&] {
        ref::batchnorm2d_forward_train(g, x.data(), gamma.data(), beta.data(), eps, 0.1,
                                       static_cast<double*>(nullptr), static_cast<double*>(nullptr), y.data(),
                                       save_mean.data(), save_invstd.data());
        return weighted_sum(weights, y);
      };

      loss();  // fills save_mean and save_invstd at the unperturbed point
      std::vector<double> gx(x.size()), ggamma(gamma.size()), gbeta(beta.size());
      ref::batchnorm2d_backward_train(g, x.data(), weights.data(), no_relu_output(x), gamma.data(),
                                      beta.data(), save_mean.data(), save_invstd.data(), gx.data(),
                                      ggamma.data(), gbeta.data());
      check_against_finite_differences(gx, ggamma, gbeta, x, affine, loss);
    }
  }
}

// ---- eval mode ---------------------------------------------------------------------------------------

TEST_CASE_TEMPLATE("batchnorm2d_forward_eval: hand-worked with given running statistics", T, float, double) {
  // x [1,2,1,2] = {c0: 0, 4 | c1: 1, 7}; running_mean = {2, 4}, running_var = {3, 8}, eps = 1
  //   -> invstd = {1/2, 1/3}, xhat = {c0: -1, 1 | c1: -1, 1}
  //   gamma = {0.5, 2}, beta = {-1, 3} -> y = {c0: -1.5, -0.5 | c1: 1, 5}
  // The batch's own statistics (channel 0 mean 2, var 4) would give different values.
  const BatchNorm2dGeometry g{.batch = 1, .channels = 2, .height = 1, .width = 2};
  const auto x = to<T>({0, 4, 1, 7});
  const auto gamma = to<T>({0.5, 2});
  const std::vector<T> beta{-1, 3}, running_mean{2, 4}, running_var{3, 8};
  std::vector<T> y(4);
  ref::batchnorm2d_forward_eval(g, x.data(), gamma.data(), beta.data(), running_mean.data(),
                                running_var.data(), T{1}, y.data());
  check_values(y, {-1.5, -0.5, 1, 5});
}

TEST_CASE_TEMPLATE("batchnorm2d_backward_eval: hand-worked with given running statistics", T, float, double) {
  // The eval forward above (invstd = {1/2, 1/3}, xhat = {-1, 1 | -1, 1}, gamma = {0.5, 2}) with
  // gy = {1, 2 | 3, 5}:
  //   gx     = gy * gamma * invstd = {0.25, 0.5 | 2, 10/3}
  //   ggamma = sum gy * xhat       = {-1 + 2, -3 + 5} = {1, 2}
  //   gbeta  = sum gy              = {3, 8}
  const BatchNorm2dGeometry g{.batch = 1, .channels = 2, .height = 1, .width = 2};
  const auto x = to<T>({0, 4, 1, 7});
  const auto gy = to<T>({1, 2, 3, 5});
  const auto gamma = to<T>({0.5, 2});
  const std::vector<T> beta{-1, 3}, running_mean{2, 4}, running_var{3, 8};
  std::vector<T> gx(4), ggamma(2), gbeta(2);
  ref::batchnorm2d_backward_eval(g, x.data(), gy.data(), no_relu_output(x), gamma.data(), beta.data(),
                                 running_mean.data(), running_var.data(), T{1}, gx.data(), ggamma.data(),
                                 gbeta.data());
  check_values(gx, {0.25, 0.5, 2, 10.0 / 3});
  check_values(ggamma, {1, 2});
  check_values(gbeta, {3, 8});
}

// Plain, and with the hard swish fused (as the train case above; a smaller running variance spreads the
// normalized values past its kinks).
TEST_CASE("batchnorm2d_backward_eval: matches finite differences for x, gamma and beta over odd shapes") {
  for (const bool hardswish : {false, true}) {
    std::uint64_t seed = hardswish ? 130 : 50;
    for (BatchNorm2dGeometry g : odd_geometries()) {
      g.fused_hardswish = hardswish;
      INFO("N=", g.batch, " C=", g.channels, " H=", g.height, " W=", g.width,
           (hardswish ? " hardswish" : ""));
      const double eps = 1e-5;
      std::vector<double> x = random_values(tensor_size(g), seed++, -1.0, 2.0);
      AffineParameters affine = random_affine(g.channels, seed, hardswish);
      const std::vector<double>& gamma = affine.gamma;  // the loss reads them where the check moves them
      const std::vector<double>& beta = affine.beta;
      const std::vector<double> running_mean = random_values(g.channels, seed++);
      const std::vector<double> running_var = random_values(g.channels, seed++, 0.2, hardswish ? 1.0 : 3.0);
      const std::vector<double> weights = random_values(tensor_size(g), seed++);
      std::vector<double> y(x.size());
      const auto loss = [&] {
        ref::batchnorm2d_forward_eval(g, x.data(), gamma.data(), beta.data(), running_mean.data(),
                                      running_var.data(), eps, y.data());
        return weighted_sum(weights, y);
      };

      std::vector<double> gx(x.size()), ggamma(gamma.size()), gbeta(beta.size());
      ref::batchnorm2d_backward_eval(g, x.data(), weights.data(), no_relu_output(x), gamma.data(),
                                     beta.data(), running_mean.data(), running_var.data(), eps, gx.data(),
                                     ggamma.data(), gbeta.data());
      check_against_finite_differences(gx, ggamma, gbeta, x, affine, loss);
    }
  }
}

// ---- the fused hard swish --------------------------------------------------------------------------

// The reference's fused hard swish is the elementwise reference's hard swish on batch norm's output, and its
// backward batch norm's plain backward on that hard swish's backward: bit for bit in double (the saved
// statistics are the forward's own in double, so the recomputed input is batch norm's output exactly), in
// train and eval mode, both layouts. gamma about 2 reaches all three pieces of the hard swish.
TEST_CASE("batchnorm2d reference, fused hard swish: the two separate reference ops' bits, train and eval") {
  namespace elementwise = kiln::kernels::reference;
  using kiln::kernels::UnaryOp;
  std::uint64_t seed = 70;
  std::int64_t below = 0, above = 0;  // values of batch norm's output at or past each kink
  for (BatchNorm2dGeometry plain : odd_geometries()) {
    for (const bool channels_last : {false, true}) {
      plain.channels_last = channels_last;
      BatchNorm2dGeometry fused = plain;
      fused.fused_hardswish = true;
      INFO("N=", plain.batch, " C=", plain.channels, " H=", plain.height, " W=", plain.width,
           (channels_last ? " channels-last" : ""));
      const std::int64_t n = tensor_size(plain);
      const auto x = random_values(n, seed++, -1.0, 2.0), gy = random_values(n, seed++);
      const auto gamma = random_values(plain.channels, seed++, 1.5, 3.0);
      const auto beta = random_values(plain.channels, seed++, -2.0, 2.0);
      const auto running_mean = random_values(plain.channels, seed++);
      const auto running_var = random_values(plain.channels, seed++, 0.2, 1.0);
      for (const bool training : {true, false}) {
        INFO((training ? "train" : "eval"));
        const auto channels = static_cast<std::size_t>(plain.channels);
        std::vector<double> v(x.size()), y(x.size()), mean(channels), invstd(channels);
        const auto forward = [&](const BatchNorm2dGeometry& g, std::vector<double>& out) {
          if (training) {
            ref::batchnorm2d_forward_train(g, x.data(), gamma.data(), beta.data(), 1e-5, 0.1,
                                           static_cast<double*>(nullptr), static_cast<double*>(nullptr),
                                           out.data(), mean.data(), invstd.data());
          } else {
            ref::batchnorm2d_forward_eval(g, x.data(), gamma.data(), beta.data(), running_mean.data(),
                                          running_var.data(), 1e-5, out.data());
          }
        };
        // gx, ggamma, gbeta of geometry g from gradient `from`.
        const auto backward = [&](const BatchNorm2dGeometry& g, const std::vector<double>& from) {
          std::vector<double> gx(x.size()), ggamma(channels), gbeta(channels);
          if (training) {
            ref::batchnorm2d_backward_train(g, x.data(), from.data(), no_relu_output(x), gamma.data(),
                                            beta.data(), mean.data(), invstd.data(), gx.data(), ggamma.data(),
                                            gbeta.data());
          } else {
            ref::batchnorm2d_backward_eval(g, x.data(), from.data(), no_relu_output(x), gamma.data(),
                                           beta.data(), running_mean.data(), running_var.data(), 1e-5,
                                           gx.data(), ggamma.data(), gbeta.data());
          }
          return std::vector<std::vector<double>>{gx, ggamma, gbeta};
        };
        forward(plain, v);
        std::vector<double> swished(x.size()), through(x.size());
        elementwise::unary_forward(UnaryOp::Hardswish, {}, n, v.data(), swished.data());
        elementwise::unary_backward(UnaryOp::Hardswish, {}, n, v.data(), swished.data(), gy.data(),
                                    through.data());
        forward(fused, y);
        CHECK(y == swished);
        CHECK(backward(fused, gy) == backward(plain, through));
        below += std::count_if(v.begin(), v.end(), [](double value) { return value <= -3.0; });
        above += std::count_if(v.begin(), v.end(), [](double value) { return value >= 3.0; });
      }
    }
  }
  CHECK(below > 0);
  CHECK(above > 0);
}

// The fused hard swish comes alone: with a ReLU, a residual or a kept gradient the dispatcher refuses it.
TEST_CASE("batchnorm dispatch: the fused hard swish refuses a ReLU, a residual and a kept gradient") {
  BatchNorm2dGeometry g{.batch = 2, .channels = 3, .height = 2, .width = 2, .fused_hardswish = true};
  const std::vector<float> x(24, 1.0f), gamma(3, 1.0f), beta(3, 0.0f);
  std::vector<float> y(24), mean(3), invstd(3), gx(24), ggamma(3), gbeta(3), kept(24);
  const auto forward = [&](const float* residual) {
    kiln::kernels::batchnorm2d_forward_train(Device::cpu(), g, x.data(), gamma.data(), beta.data(), 1e-5f,
                                             0.1f, nullptr, nullptr, y.data(), mean.data(), invstd.data(),
                                             residual);
  };
  CHECK_NOTHROW(forward(nullptr));
  CHECK_THROWS_WITH_AS(forward(x.data()), doctest::Contains("the fused hard swish takes neither"),
                       kiln::Error);
  CHECK_THROWS_AS(kiln::kernels::batchnorm2d_backward_train(
                      Device::cpu(), g, x.data(), x.data(), y.data(), gamma.data(), beta.data(), mean.data(),
                      invstd.data(), gx.data(), ggamma.data(), gbeta.data(), kept.data()),
                  kiln::Error);
  g.fused_relu = true;
  CHECK_THROWS_AS(forward(nullptr), kiln::Error);
}

// ---- residual ----------------------------------------------------------------------------------------

// With a residual, the float reference's y is the double reference's plain output (the same statistics, the
// same double formula) plus the residual in double, through the ReLU when fused, rounded to float once: bit
// for bit, in train and eval mode, in either layout (both references read the buffers in the same layout,
// so their elements correspond one to one).
TEST_CASE("batchnorm2d reference with a residual: the double formula plus the residual, rounded once") {
  const double eps = 1e-5f;  // the float reference's eps, exactly
  for (BatchNorm2dGeometry g : odd_geometries()) {
    for (const bool fused_relu : {false, true}) {
      for (const bool training : {true, false}) {
        for (const bool channels_last : {false, true}) {
          g.fused_relu = fused_relu;
          g.channels_last = channels_last;
          INFO("[", g.batch, ",", g.channels, ",", g.height, ",", g.width, "]", fused_relu ? " relu" : "",
               training ? " train" : " eval", channels_last ? " channels-last" : "");
          const std::size_t size = static_cast<std::size_t>(tensor_size(g)),
                            channels = static_cast<std::size_t>(g.channels);
          const std::vector<float> x = to<float>(random_values(tensor_size(g), 41));
          const std::vector<float> residual = to<float>(random_values(tensor_size(g), 42));
          const std::vector<float> gamma = to<float>(random_values(g.channels, 43, 0.5, 2.0));
          const std::vector<float> beta = to<float>(random_values(g.channels, 44));
          const std::vector<float> running_var = to<float>(random_values(g.channels, 45, 0.5, 2.0));
          const std::vector<float> running_mean = to<float>(random_values(g.channels, 46));
          BatchNorm2dGeometry plain = g;
          plain.fused_relu = false;
          std::vector<double> y_double(size), mean_double(channels), invstd_double(channels);
          std::vector<float> y(size), mean(channels), invstd(channels);
          const std::vector<double> xd(x.begin(), x.end()), gd(gamma.begin(), gamma.end()),
              bd(beta.begin(), beta.end()), rmd(running_mean.begin(), running_mean.end()),
              rvd(running_var.begin(), running_var.end());
          if (training) {
            ref::batchnorm2d_forward_train(plain, xd.data(), gd.data(), bd.data(), eps, 0.1, nullptr, nullptr,
                                           y_double.data(), mean_double.data(), invstd_double.data());
            ref::batchnorm2d_forward_train(g, x.data(), gamma.data(), beta.data(), 1e-5f, 0.1f, nullptr,
                                           nullptr, y.data(), mean.data(), invstd.data(), residual.data());
          } else {
            ref::batchnorm2d_forward_eval(plain, xd.data(), gd.data(), bd.data(), rmd.data(), rvd.data(), eps,
                                          y_double.data());
            ref::batchnorm2d_forward_eval(g, x.data(), gamma.data(), beta.data(), running_mean.data(),
                                          running_var.data(), 1e-5f, y.data(), residual.data());
          }
          std::vector<float> expected(size);
          for (std::size_t i = 0; i < size; ++i) {
            const double sum = y_double[i] + residual[i];
            const float rounded = static_cast<float>(sum);
            expected[i] = fused_relu && rounded < 0 ? 0.0f : rounded;
          }
          CHECK(y == expected);
        }
      }
    }
  }
}

// ---- dispatch ----------------------------------------------------------------------------------------

TEST_CASE("batchnorm dispatch: the CPU runs the reference kernels") {
  const BatchNorm2dGeometry g{.batch = 2, .channels = 3, .height = 3, .width = 2};
  const std::size_t size = static_cast<std::size_t>(tensor_size(g)), channels = 3;
  const std::vector<double> x = random_values(tensor_size(g), 1);
  const std::vector<double> gy = random_values(tensor_size(g), 2);
  const std::vector<double> gamma = random_values(g.channels, 3, 0.5, 2.0),
                            beta = random_values(g.channels, 4);
  const std::vector<double> var = random_values(g.channels, 5, 0.5, 2.0);

  std::vector<double> running_mean(channels, 0.0), running_var(channels, 1.0);
  std::vector<double> running_mean_ref = running_mean, running_var_ref = running_var;
  std::vector<double> y(size), y_ref(size), save_mean(channels), save_mean_ref(channels);
  std::vector<double> save_invstd(channels), save_invstd_ref(channels);
  kiln::kernels::batchnorm2d_forward_train(Device::cpu(), g, x.data(), gamma.data(), beta.data(), 1e-5, 0.1,
                                           running_mean.data(), running_var.data(), y.data(),
                                           save_mean.data(), save_invstd.data());
  ref::batchnorm2d_forward_train(g, x.data(), gamma.data(), beta.data(), 1e-5, 0.1, running_mean_ref.data(),
                                 running_var_ref.data(), y_ref.data(), save_mean_ref.data(),
                                 save_invstd_ref.data());
  CHECK(y == y_ref);
  CHECK(save_mean == save_mean_ref);
  CHECK(save_invstd == save_invstd_ref);
  CHECK(running_mean == running_mean_ref);
  CHECK(running_var == running_var_ref);

  std::vector<double> gx(size), gx_ref(size), ggamma(channels), ggamma_ref(channels), gbeta(channels),
      gbeta_ref(channels);
  kiln::kernels::batchnorm2d_backward_train(Device::cpu(), g, x.data(), gy.data(), no_relu_output(x),
                                            gamma.data(), beta.data(), save_mean.data(), save_invstd.data(),
                                            gx.data(), ggamma.data(), gbeta.data());
  ref::batchnorm2d_backward_train(g, x.data(), gy.data(), no_relu_output(x), gamma.data(), beta.data(),
                                  save_mean.data(), save_invstd.data(), gx_ref.data(), ggamma_ref.data(),
                                  gbeta_ref.data());
  CHECK(gx == gx_ref);
  CHECK(ggamma == ggamma_ref);
  CHECK(gbeta == gbeta_ref);

  kiln::kernels::batchnorm2d_forward_eval(Device::cpu(), g, x.data(), gamma.data(), beta.data(), beta.data(),
                                          var.data(), 1e-5, y.data());
  ref::batchnorm2d_forward_eval(g, x.data(), gamma.data(), beta.data(), beta.data(), var.data(), 1e-5,
                                y_ref.data());
  CHECK(y == y_ref);
  kiln::kernels::batchnorm2d_backward_eval(Device::cpu(), g, x.data(), gy.data(), no_relu_output(x),
                                           gamma.data(), beta.data(), beta.data(), var.data(), 1e-5,
                                           gx.data(), ggamma.data(), gbeta.data());
  ref::batchnorm2d_backward_eval(g, x.data(), gy.data(), no_relu_output(x), gamma.data(), beta.data(),
                                 beta.data(), var.data(), 1e-5, gx_ref.data(), ggamma_ref.data(),
                                 gbeta_ref.data());
  CHECK(gx == gx_ref);
  CHECK(ggamma == ggamma_ref);
  CHECK(gbeta == gbeta_ref);
}

}  // namespace kernels_batchnorm_test
