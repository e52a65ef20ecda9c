// BatchNorm2d layer: its parameters and buffers, batch statistics and running-statistic updates in train
// mode, the running statistics in eval mode, description and errors.
#include "layers/batchnorm.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>

#include "core/error.hpp"
#include "core/ops.hpp"
#include "tests/layers/layer_testing.hpp"

namespace layers_batchnorm_test {

using namespace kiln;
using namespace kiln::layers;
using kiln::layers::testing::names;
using kiln::layers::testing::values;

TEST_CASE("layers: BatchNorm2d has weight/bias parameters and running_mean/running_var buffers") {
  const BatchNorm2d bn(3);
  CHECK(names(bn.named_parameters()) == std::vector<std::string>{"weight", "bias"});
  CHECK(names(bn.named_buffers()) == std::vector<std::string>{"running_mean", "running_var"});
  CHECK(values(bn.weight()) == std::vector<double>{1, 1, 1});
  CHECK(values(bn.bias()) == std::vector<double>{0, 0, 0});
  CHECK(values(bn.running_mean()) == std::vector<double>{0, 0, 0});
  CHECK(values(bn.running_var()) == std::vector<double>{1, 1, 1});
  CHECK(bn.weight().requires_grad());
  CHECK_FALSE(bn.running_mean().requires_grad());
  CHECK(bn.parameter_count() == 6);
  CHECK(bn.describe() == "BatchNorm2d(3, eps=1e-05, momentum=0.1)");
  CHECK(BatchNorm2d(8, {.momentum = 0.01, .eps = 1e-3}).describe() ==
        "BatchNorm2d(8, eps=0.001, momentum=0.01)");
}

// One channel, N = 2, H = 1, W = 2: x = (1, 3, 5, 7), batch mean 4, biased variance 5, unbiased 20/3.
TEST_CASE("layers: BatchNorm2d in train mode normalizes by the batch and moves the running statistics") {
  BatchNorm2d bn(1, {.momentum = 0.5});
  const Tensor x = Tensor::from_vector<float>({1, 3, 5, 7}, {2, 1, 1, 2});
  const Tensor y = bn(x);
  CHECK(y.shape() == x.shape());
  const double scale = 1.0 / std::sqrt(5.0 + 1e-5);
  const std::vector<double> expected{-3 * scale, -1 * scale, 1 * scale, 3 * scale};
  const std::vector<double> actual = values(y);
  for (std::size_t i = 0; i < 4; ++i) CHECK(actual[i] == doctest::Approx(expected[i]).epsilon(1e-5));
  // running = 0.5 * running + 0.5 * batch: mean 0.5 * 4 = 2, var 0.5 * 1 + 0.5 * 20/3 = 23/6.
  CHECK(values(bn.running_mean())[0] == doctest::Approx(2.0));
  CHECK(values(bn.running_var())[0] == doctest::Approx(23.0 / 6.0).epsilon(1e-6));
}

TEST_CASE("layers: BatchNorm2d in eval mode uses the running statistics and leaves them alone") {
  BatchNorm2d bn(1);
  bn.eval();
  const Tensor x = Tensor::from_vector<float>({1, 3, 5, 7}, {2, 1, 1, 2});
  // running mean 0, var 1: y = x / sqrt(1 + eps).
  const std::vector<double> actual = values(bn(x));
  for (std::size_t i = 0; i < 4; ++i) {
    CHECK(actual[i] == doctest::Approx(values(x)[i] / std::sqrt(1.0 + 1e-5)).epsilon(1e-6));
  }
  CHECK(values(bn.running_mean()) == std::vector<double>{0});
  CHECK(values(bn.running_var()) == std::vector<double>{1});
}

TEST_CASE("layers: BatchNorm2d rejects bad settings and an input with the wrong channels") {
  CHECK_THROWS_WITH_AS(BatchNorm2d(0), doctest::Contains("BatchNorm2d: channels 0"), kiln::Error);
  CHECK_THROWS_WITH_AS(BatchNorm2d(4, {.momentum = 1.5}), doctest::Contains("momentum 1.5"), kiln::Error);
  BatchNorm2d bn(4);
  CHECK_THROWS_WITH_AS(bn(Tensor::zeros({2, 3, 5, 5})),
                       doctest::Contains("BatchNorm2d(4, eps=1e-05, momentum=0.1): input float32[2, 3, 5, 5] "
                                         "must be [N, 4, H, W]"),
                       kiln::Error);
}

// The fused BN -> ReLU and BN -> ReLU6 (BatchNormOptions::fused_relu, relu_upper) against batch norm and then
// the separate op, relu or clamp(0, 6), in both modes: the same values and the same gradients for the input
// and both parameters. gamma 4 and beta 3 put about a fifth of the outputs above 6 and a fifth below 0, so
// both ends of the clamp's rule (and the ReLU's mask) are exercised.
TEST_CASE(
    "layers: BatchNorm2d::forward_then_relu and _relu6 are relu(forward) and clamp(forward, 0, 6), values "
    "and "
    "gradients, train and eval") {
  for (const FusedActivation activation : {FusedActivation::Relu, FusedActivation::Relu6}) {
    const bool relu6 = activation == FusedActivation::Relu6;
    for (const bool training : {true, false}) {
      INFO((relu6 ? "relu6, " : "relu, "), (training ? "train" : "eval"));
      BatchNorm2d fused(3), separate(3);
      for (BatchNorm2d* bn : {&fused, &separate}) {
        std::fill_n(bn->weight().data<float>(), 3, 4.0f);
        std::fill_n(bn->bias().data<float>(), 3, 3.0f);
        if (!training) bn->eval();
      }
      const Tensor x_data = Tensor::randn({4, 3, 5, 5});
      const Tensor weights = Tensor::randn({4, 3, 5, 5});
      Tensor x_fused = x_data.detach(), x_separate = x_data.detach();
      x_fused.set_requires_grad();
      x_separate.set_requires_grad();
      const Tensor y_fused = relu6 ? fused.forward_then_relu6(x_fused) : fused.forward_then_relu(x_fused);
      const Tensor normalized = separate.forward(x_separate);
      const Tensor y_separate = relu6 ? clamp(normalized, 0.0, 6.0) : relu(normalized);
      CHECK(y_fused.grad_fn()->op == "batch_norm2d_relu");
      const std::vector<double> y = values(y_fused);
      CHECK(y == values(y_separate));
      CHECK(std::count(y.begin(), y.end(), 0.0) > 10);
      if (relu6) CHECK(std::count(y.begin(), y.end(), 6.0) > 10);
      sum(y_fused * weights).backward();
      sum(y_separate * weights).backward();
      const auto close = [](const Tensor& a, const Tensor& b) {
        const std::vector<double> va = values(a), vb = values(b);
        REQUIRE(va.size() == vb.size());
        for (std::size_t i = 0; i < va.size(); ++i) CHECK(va[i] == doctest::Approx(vb[i]).epsilon(1e-5));
      };
      close(x_fused.grad(), x_separate.grad());
      close(fused.weight().grad(), separate.weight().grad());
      close(fused.bias().grad(), separate.bias().grad());
    }
  }
}

// The fused hard swish against batch norm and the hard swish op, in either layout: the same values, and the
// same gradients within a rounding (kernels/batchnorm/batchnorm.hpp). gamma 3 and beta 1 put outputs on all
// three of its pieces.
TEST_CASE("layers: BatchNorm2d::forward_then(Hardswish) is hardswish(forward), values and gradients") {
  for (const bool channels_last : {false, true}) {
    for (const bool training : {true, false}) {
      INFO((channels_last ? "channels-last, " : "NCHW, "), (training ? "train" : "eval"));
      BatchNorm2d fused(3), separate(3);
      for (BatchNorm2d* bn : {&fused, &separate}) {
        std::fill_n(bn->weight().data<float>(), 3, 3.0f);
        std::fill_n(bn->bias().data<float>(), 3, 1.0f);
        if (!training) bn->eval();
      }
      Tensor x_data = Tensor::randn({4, 3, 5, 5});
      if (channels_last) x_data = x_data.channels_last();
      const Tensor weights = Tensor::randn({4, 3, 5, 5});
      Tensor x_fused = x_data.detach(), x_separate = x_data.detach();
      x_fused.set_requires_grad();
      x_separate.set_requires_grad();
      const Tensor y_fused = fused.forward_then(x_fused, FusedActivation::Hardswish);
      const Tensor normalized = separate.forward(x_separate);
      const Tensor y_separate = hardswish(normalized);
      CHECK(y_fused.grad_fn()->op == "batch_norm2d_hardswish");
      const std::vector<double> v = values(normalized), y = values(y_fused);
      CHECK(y == values(y_separate));
      CHECK(std::count_if(v.begin(), v.end(), [](double e) { return e <= -3; }) > 0);
      CHECK(std::count_if(v.begin(), v.end(), [](double e) { return e >= 3; }) > 0);
      sum(y_fused * weights).backward();
      sum(y_separate * weights).backward();
      const auto match = [](const Tensor& a, const Tensor& b) {
        const std::vector<double> va = values(a), vb = values(b);
        REQUIRE(va.size() == vb.size());
        for (std::size_t i = 0; i < va.size(); ++i) CHECK(va[i] == doctest::Approx(vb[i]).epsilon(1e-5));
      };
      match(x_fused.grad(), x_separate.grad());
      match(fused.weight().grad(), separate.weight().grad());
      match(fused.bias().grad(), separate.bias().grad());
    }
  }
}

}  // namespace layers_batchnorm_test
