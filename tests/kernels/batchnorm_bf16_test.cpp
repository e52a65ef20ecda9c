// Tests of bfloat16 batch normalization (kernels/batchnorm) with mixed dtypes: x, y, gy, gx in bfloat16,
// gamma, beta, the running and saved statistics and ggamma, gbeta in float (opmath_t<bfloat16>). The
// bfloat16 reference is checked against the double and float references run on the same values widened,
// train and eval, forward and backward, plain and with the fused ReLU, over odd shapes (one value per
// channel, batch 1, 1x1 planes, channels 3/5/7/17, a channel mean far from zero) and with NaN and infinity
// in x; then the Tensor-level ops (raw::) on a bfloat16 x with float32 parameters against the all-float32
// ops, and the refusals: bfloat16 parameters, and a backward after a residual that drops its gradient.
//
// Exactness. Every input is a value of its own dtype that the wider references read exactly (eps and
// momentum too: they are float values, widened). All three references compute every statistic and every
// element's formula in double from those same values and round once, so the double reference's outputs,
// rounded once to bfloat16 (activations) or float (per-channel results), equal the bfloat16 reference's bit
// for bit, and are compared so. The float reference rounds y and gx to float before bfloat16: within 1 ulp;
// its per-channel results are rounded to float once from the same doubles: bit for bit.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "core/bfloat16.hpp"
#include "core/error.hpp"
#include "core/raw.hpp"
#include "core/tensor.hpp"
#include "kernels/batchnorm/batchnorm.hpp"
#include "tests/support/bfloat16_testing.hpp"
#include "tests/support/fast_kernel_testing.hpp"
#include "tests/support/matches_reference.hpp"

namespace kernels_batchnorm_bf16_test {

namespace {

using namespace kiln;
using kernels::BatchNorm2dGeometry;
using testing::check_bfloat16_against_wider;
using testing::converted;
using testing::first_difference;
using testing::matches_reference;
using testing::random_floats;
using testing::random_values;
using testing::Tolerance;
namespace ref = kernels::reference;

std::int64_t numel(const BatchNorm2dGeometry& g) { return g.batch * g.channels * g.height * g.width; }

std::string describe(const BatchNorm2dGeometry& g) {
  std::ostringstream out;
  out << "[" << g.batch << ", " << g.channels << ", " << g.height << ", " << g.width << "]"
      << (g.fused_relu ? " fused relu" : "") << (g.fused_relu && !std::isinf(g.relu_upper) ? " capped" : "");
  return out.str();
}

// Odd shapes, each plain, with the ReLU fused, and with it capped at 0.5 (exact in bfloat16; a good share
// of y clamped to it).
std::vector<BatchNorm2dGeometry> odd_geometries() {
  std::vector<BatchNorm2dGeometry> shapes = {
      {.batch = 1, .channels = 3, .height = 1, .width = 1},    // one value per channel: var 0, gx 0
      {.batch = 1, .channels = 3, .height = 2, .width = 3},    // batch 1
      {.batch = 2, .channels = 5, .height = 1, .width = 1},    // 1x1 planes
      {.batch = 3, .channels = 7, .height = 3, .width = 2},    // rectangular planes
      {.batch = 3, .channels = 17, .height = 5, .width = 7},   // 35-value planes
      {.batch = 4, .channels = 3, .height = 33, .width = 35},  // 4620 values per channel
  };
  for (std::size_t i = 0, plain = shapes.size(); i < plain; ++i) {
    BatchNorm2dGeometry fused = shapes[i];
    fused.fused_relu = true;
    shapes.push_back(fused);
    fused.relu_upper = 0.5f;
    shapes.push_back(fused);
  }
  return shapes;
}

template <typename T>
std::vector<T> sized(std::int64_t count, T value = T{}) {
  return std::vector<T>(static_cast<std::size_t>(count), value);
}

// A per-channel result: the double result rounded once to float, and the float result, bit for bit.
void check_channel(const std::vector<float>& actual, const std::vector<double>& from_double,
                   const std::vector<float>& from_float, const char* what) {
  const std::string exact = first_difference(actual, converted<float>(from_double));
  CHECK_MESSAGE(exact.empty(), what, " vs the double reference: ", exact);
  const std::string same = first_difference(actual, from_float);
  CHECK_MESSAGE(same.empty(), what, " vs the float reference: ", same);
}

// The inputs of one case: activations in bfloat16, per-channel values in float.
struct Inputs {
  std::vector<bfloat16> x, gy;
  std::vector<float> gamma, beta, running_mean, running_var;
};

Inputs make_inputs(const BatchNorm2dGeometry& g, std::uint64_t seed, float offset) {
  const std::int64_t n = numel(g), c = g.channels;
  Inputs in{random_values<bfloat16>(n, seed, offset - 1.0f, offset + 1.0f),
            random_values<bfloat16>(n, seed + 1),
            random_floats(c, seed + 2, 0.5f, 1.5f),
            random_floats(c, seed + 3),
            random_floats(c, seed + 4, -0.5f, 0.5f),
            random_floats(c, seed + 5, 0.5f, 2.0f)};
  return in;
}

constexpr float kEps = 1e-5f, kMomentum = 0.1f;

// Train forward then backward with each reference. Each backward reads the bfloat16 forward's saved
// statistics (float, widened for the double reference) and, fused, its y, so the three backward runs see
// the same values.
void check_train(const BatchNorm2dGeometry& g, const Inputs& in) {
  const std::int64_t n = numel(g), c = g.channels;
  auto y = sized<bfloat16>(n);
  auto mean = sized<float>(c), invstd = sized<float>(c);
  std::vector<float> running_mean = in.running_mean, running_var = in.running_var;
  ref::batchnorm2d_forward_train(g, in.x.data(), in.gamma.data(), in.beta.data(), kEps, kMomentum,
                                 running_mean.data(), running_var.data(), y.data(), mean.data(),
                                 invstd.data());

  auto y_double = sized<double>(n);
  auto mean_double = sized<double>(c), invstd_double = sized<double>(c);
  std::vector<double> running_mean_double = converted<double>(in.running_mean);
  std::vector<double> running_var_double = converted<double>(in.running_var);
  ref::batchnorm2d_forward_train(g, converted<double>(in.x).data(), converted<double>(in.gamma).data(),
                                 converted<double>(in.beta).data(), double{kEps}, double{kMomentum},
                                 running_mean_double.data(), running_var_double.data(), y_double.data(),
                                 mean_double.data(), invstd_double.data());

  auto y_float = sized<float>(n);
  auto mean_float = sized<float>(c), invstd_float = sized<float>(c);
  std::vector<float> running_mean_float = in.running_mean, running_var_float = in.running_var;
  ref::batchnorm2d_forward_train(g, converted<float>(in.x).data(), in.gamma.data(), in.beta.data(), kEps,
                                 kMomentum, running_mean_float.data(), running_var_float.data(),
                                 y_float.data(), mean_float.data(), invstd_float.data());

  check_bfloat16_against_wider(y, y_double, y_float, "y");
  check_channel(mean, mean_double, mean_float, "save_mean");
  check_channel(invstd, invstd_double, invstd_float, "save_invstd");
  check_channel(running_mean, running_mean_double, running_mean_float, "running_mean");
  check_channel(running_var, running_var_double, running_var_float, "running_var");

  auto gx = sized<bfloat16>(n);
  auto ggamma = sized<float>(c), gbeta = sized<float>(c);
  ref::batchnorm2d_backward_train(g, in.x.data(), in.gy.data(), y.data(), in.gamma.data(), in.beta.data(),
                                  mean.data(), invstd.data(), gx.data(), ggamma.data(), gbeta.data());
  auto gx_double = sized<double>(n);
  auto ggamma_double = sized<double>(c), gbeta_double = sized<double>(c);
  ref::batchnorm2d_backward_train(
      g, converted<double>(in.x).data(), converted<double>(in.gy).data(), converted<double>(y).data(),
      converted<double>(in.gamma).data(), converted<double>(in.beta).data(), converted<double>(mean).data(),
      converted<double>(invstd).data(), gx_double.data(), ggamma_double.data(), gbeta_double.data());
  auto gx_float = sized<float>(n);
  auto ggamma_float = sized<float>(c), gbeta_float = sized<float>(c);
  ref::batchnorm2d_backward_train(g, converted<float>(in.x).data(), converted<float>(in.gy).data(),
                                  converted<float>(y).data(), in.gamma.data(), in.beta.data(), mean.data(),
                                  invstd.data(), gx_float.data(), ggamma_float.data(), gbeta_float.data());
  check_bfloat16_against_wider(gx, gx_double, gx_float, "gx");
  check_channel(ggamma, ggamma_double, ggamma_float, "ggamma");
  check_channel(gbeta, gbeta_double, gbeta_float, "gbeta");
}

void check_eval(const BatchNorm2dGeometry& g, const Inputs& in) {
  const std::int64_t n = numel(g), c = g.channels;
  auto y = sized<bfloat16>(n);
  ref::batchnorm2d_forward_eval(g, in.x.data(), in.gamma.data(), in.beta.data(), in.running_mean.data(),
                                in.running_var.data(), kEps, y.data());
  auto y_double = sized<double>(n);
  ref::batchnorm2d_forward_eval(g, converted<double>(in.x).data(), converted<double>(in.gamma).data(),
                                converted<double>(in.beta).data(), converted<double>(in.running_mean).data(),
                                converted<double>(in.running_var).data(), double{kEps}, y_double.data());
  auto y_float = sized<float>(n);
  ref::batchnorm2d_forward_eval(g, converted<float>(in.x).data(), in.gamma.data(), in.beta.data(),
                                in.running_mean.data(), in.running_var.data(), kEps, y_float.data());
  check_bfloat16_against_wider(y, y_double, y_float, "eval y");

  auto gx = sized<bfloat16>(n);
  auto ggamma = sized<float>(c), gbeta = sized<float>(c);
  ref::batchnorm2d_backward_eval(g, in.x.data(), in.gy.data(), y.data(), in.gamma.data(), in.beta.data(),
                                 in.running_mean.data(), in.running_var.data(), kEps, gx.data(),
                                 ggamma.data(), gbeta.data());
  auto gx_double = sized<double>(n);
  auto ggamma_double = sized<double>(c), gbeta_double = sized<double>(c);
  ref::batchnorm2d_backward_eval(g, converted<double>(in.x).data(), converted<double>(in.gy).data(),
                                 converted<double>(y).data(), converted<double>(in.gamma).data(),
                                 converted<double>(in.beta).data(), converted<double>(in.running_mean).data(),
                                 converted<double>(in.running_var).data(), double{kEps}, gx_double.data(),
                                 ggamma_double.data(), gbeta_double.data());
  auto gx_float = sized<float>(n);
  auto ggamma_float = sized<float>(c), gbeta_float = sized<float>(c);
  ref::batchnorm2d_backward_eval(g, converted<float>(in.x).data(), converted<float>(in.gy).data(),
                                 converted<float>(y).data(), in.gamma.data(), in.beta.data(),
                                 in.running_mean.data(), in.running_var.data(), kEps, gx_float.data(),
                                 ggamma_float.data(), gbeta_float.data());
  check_bfloat16_against_wider(gx, gx_double, gx_float, "eval gx");
  check_channel(ggamma, ggamma_double, ggamma_float, "eval ggamma");
  check_channel(gbeta, gbeta_double, gbeta_float, "eval gbeta");
}

std::string error_of(const std::function<void()>& body) {
  try {
    body();
  } catch (const Error& error) {
    return error.what();
  }
  return "";
}

Tensor bfloat16_tensor(const Shape& shape, std::uint64_t seed) {
  return Tensor::from_vector(random_values<bfloat16>(shape.numel(), seed, -2.0f, 2.0f), shape);
}

// A bfloat16 tensor's values widened to float32, in a float32 tensor.
Tensor widened(const Tensor& t) {
  return Tensor::from_vector(converted<float>(t.to_vector<bfloat16>()), t.shape());
}

}  // namespace

TEST_CASE("bfloat16 batchnorm2d reference: train forward and backward equal the wider references") {
  std::uint64_t seed = 1;
  for (const BatchNorm2dGeometry& g : odd_geometries()) {
    for (const float offset : {0.0f, 30.0f}) {  // 30: a mean far from zero next to a spread of 0.6
      INFO(describe(g), " offset ", offset);
      check_train(g, make_inputs(g, seed, offset));
      seed += 10;
    }
  }
}

TEST_CASE("bfloat16 batchnorm2d reference: eval forward and backward equal the wider references") {
  std::uint64_t seed = 500;
  for (const BatchNorm2dGeometry& g : odd_geometries()) {
    INFO(describe(g));
    check_eval(g, make_inputs(g, seed, 0.0f));
    seed += 10;
  }
}

TEST_CASE("bfloat16 batchnorm2d reference: NaN and infinity in x propagate as in the wider references") {
  // Channel 0 holds a NaN, channel 1 is finite, channel 2 holds +inf: their statistics and outputs are
  // NaN (or infinite) alike in every precision.
  for (const bool fused_relu : {false, true}) {
    const BatchNorm2dGeometry g{.batch = 2, .channels = 3, .height = 4, .width = 5, .fused_relu = fused_relu};
    INFO(describe(g));
    Inputs in = make_inputs(g, 77, 0.0f);
    const std::int64_t plane = g.height * g.width;
    in.x[static_cast<std::size_t>(7)] = bfloat16(std::numeric_limits<float>::quiet_NaN());  // n 0, c 0
    in.x[static_cast<std::size_t>((3 + 2) * plane + 4)] =
        bfloat16(std::numeric_limits<float>::infinity());  // n 1, c 2
    check_train(g, in);
    check_eval(g, in);
  }
}

TEST_CASE("bfloat16 Tensor-level batchnorm2d: bfloat16 x with float32 parameters matches all-float32") {
  // The float32 op runs the AVX kernels where the CPU has them (float partial sums), the bfloat16 op the
  // reference (double sums). Activations: Tolerance::bfloat16(), 1 bfloat16 ulp (2^-8 relative) and the
  // float path's error with room to spare. Per-channel results, float32 on both sides: atol 1e-4 + rtol
  // 1e-4, the AVX kernels' float partial sums, as in tests/kernels/batchnorm_fast_test.cpp.
  constexpr Tolerance kChannel{1e-4, 1e-4};
  const Shape shape{6, 17, 9, 7};
  const Tensor x = bfloat16_tensor(shape, 11), gy = bfloat16_tensor(shape, 12);
  const Tensor gamma = Tensor::from_vector(random_floats(17, 13, 0.5f, 1.5f), {17});
  const Tensor beta = Tensor::from_vector(random_floats(17, 14), {17});
  auto expect_activation = [&](const Tensor& actual, const Tensor& expected, const char* what) {
    CHECK_MESSAGE(actual.dtype() == DType::BFloat16, what);
    const auto report = matches_reference(widened(actual), expected, Tolerance::bfloat16());
    CHECK_MESSAGE(report.ok, what, ": ", report.message);
  };
  auto expect_channel = [&](const Tensor& actual, const Tensor& expected, const char* what) {
    CHECK_MESSAGE(actual.dtype() == DType::Float32, what);
    const auto report = matches_reference(actual, expected, kChannel);
    CHECK_MESSAGE(report.ok, what, ": ", report.message);
  };
  for (const bool training : {true, false}) {
    for (const bool fused_relu : {false, true}) {
      INFO((training ? "train" : "eval"), (fused_relu ? ", fused relu" : ""));
      const BatchNormOptions options{
          .training = training, .momentum = 0.1, .eps = 1e-5, .fused_relu = fused_relu};
      const Tensor running_mean = Tensor::full({17}, 0.25), running_var = Tensor::full({17}, 1.5);
      const Tensor running_mean_float = Tensor::full({17}, 0.25), running_var_float = Tensor::full({17}, 1.5);

      const raw::BatchNormResult mixed =
          raw::batchnorm2d_forward(x, gamma, beta, running_mean, running_var, options);
      const raw::BatchNormResult all_float =
          raw::batchnorm2d_forward(widened(x), gamma, beta, running_mean_float, running_var_float, options);
      expect_activation(mixed.output, all_float.output, "output");
      expect_channel(running_mean, running_mean_float, "running_mean");
      expect_channel(running_var, running_var_float, "running_var");
      if (training) {
        expect_channel(mixed.save_mean, all_float.save_mean, "save_mean");
        expect_channel(mixed.save_invstd, all_float.save_invstd, "save_invstd");
      }

      const raw::BatchNormGrads mixed_grads =
          raw::batchnorm2d_backward(gy, x, gamma, beta, mixed, running_mean, running_var, options);
      const raw::BatchNormGrads float_grads = raw::batchnorm2d_backward(
          widened(gy), widened(x), gamma, beta, all_float, running_mean_float, running_var_float, options);
      expect_activation(mixed_grads.x, float_grads.x, "grad x");
      expect_channel(mixed_grads.gamma, float_grads.gamma, "grad gamma");
      expect_channel(mixed_grads.beta, float_grads.beta, "grad beta");
    }
  }
}

TEST_CASE("bfloat16 Tensor-level batchnorm2d refuses bfloat16 parameters, naming both dtypes") {
  const Shape shape{2, 3, 4, 5};
  const Tensor x = bfloat16_tensor(shape, 21);
  const Tensor gamma = Tensor::from_vector(random_values<bfloat16>(3, 22), {3});
  const Tensor beta = Tensor::from_vector(random_values<bfloat16>(3, 23), {3});
  const Tensor gamma_float = Tensor::from_vector(random_floats(3, 22), {3});
  const Tensor beta_float = Tensor::from_vector(random_floats(3, 23), {3});
  auto names_both_dtypes = [](const std::string& error) {
    INFO(error);
    CHECK(error.find("must be float32") != std::string::npos);
    CHECK(error.find("bfloat16") != std::string::npos);
  };
  const BatchNormOptions train{.training = true};
  names_both_dtypes(error_of([&] { raw::batchnorm2d_forward(x, gamma, beta, Tensor(), Tensor(), train); }));
  names_both_dtypes(
      error_of([&] { raw::batchnorm2d_forward(x, gamma_float, beta, Tensor(), Tensor(), train); }));

  // The backward checks the parameter it reads, too.
  const raw::BatchNormResult saved =
      raw::batchnorm2d_forward(x, gamma_float, beta_float, Tensor(), Tensor(), train);
  names_both_dtypes(error_of(
      [&] { raw::batchnorm2d_backward(x, x, gamma, beta_float, saved, Tensor(), Tensor(), train); }));
  // A float32 x still takes float32 parameters only.
  const std::string float_x =
      error_of([&] { raw::batchnorm2d_forward(widened(x), gamma, beta_float, Tensor(), Tensor(), train); });
  CHECK(float_x.find("must be float32") != std::string::npos);
}

// After a residual added before the fused ReLU, the ReLU's mask is only in the output: the CPU backward that
// keeps no gradient through the ReLU takes it from x instead (kernels/batchnorm/batchnorm.hpp), so the raw
// backward refuses that pairing, naming it, and takes the one that keeps it.
TEST_CASE("bfloat16 Tensor-level batchnorm2d backward after a residual must keep the residual's gradient") {
  const Shape shape{2, 3, 4, 5};
  const Tensor x = bfloat16_tensor(shape, 31), residual = bfloat16_tensor(shape, 32);
  const Tensor gamma = Tensor::from_vector(random_floats(3, 33), {3});
  const Tensor beta = Tensor::from_vector(random_floats(3, 34), {3});
  const BatchNormOptions train{.training = true, .fused_relu = true};
  const raw::BatchNormResult saved =
      raw::batchnorm2d_forward(x, gamma, beta, Tensor(), Tensor(), train, residual);
  const std::string error =
      error_of([&] { raw::batchnorm2d_backward(x, x, gamma, beta, saved, Tensor(), Tensor(), train); });
  INFO(error);
  CHECK(error.find("residual") != std::string::npos);
  CHECK(error_of([&] {
          raw::batchnorm2d_backward(x, x, gamma, beta, saved, Tensor(), Tensor(), train, true);
        }).empty());
}

}  // namespace kernels_batchnorm_bf16_test
