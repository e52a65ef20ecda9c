// Every differentiable op's backward rule against central finite differences in float64, over odd
// shapes: batch 1, 1x1 spatial, channels that are not multiples of 8, stride 2, padding, dilation 2,
// groups, broadcasting. One test case per op (and per interesting configuration), so `ctest -N` lists
// them and a broken rule names itself.
#include <doctest/doctest.h>

#include "core/generator.hpp"
#include "tests/support/gradcheck.hpp"

namespace core_gradcheck_ops_test {

using namespace kiln;
using kiln::testing::gradcheck;
using kiln::testing::Inputs;
using kiln::testing::random_input;

namespace {

void check_gradient(const kiln::testing::OpUnderTest& op, const Inputs& inputs) {
  const auto result = gradcheck(op, inputs);
  CHECK_MESSAGE(result.ok, result.message);
}

// Values with |x| in [0.2, 1] and both signs, for ops with a kink at 0 (relu, abs, ...): a finite
// difference never straddles the kink.
Tensor away_from_zero(const Shape& shape, std::uint64_t seed) {
  const Tensor magnitude = random_input(shape, seed, 0.2, 1.0);
  const Tensor coin = random_input(shape, seed + 1, 0.0, 1.0);
  return magnitude * (2.0 * gt(coin, Tensor::scalar(0.5, DType::Float64)) - 1.0);
}

Tensor labels(std::vector<std::int64_t> values) {
  const auto n = static_cast<std::int64_t>(values.size());
  return Tensor::from_vector(values, {n});
}

}  // namespace

// ---- elementwise binary, with broadcasting -------------------------------------------------------------
TEST_CASE("gradcheck: add broadcast [2,3] + [3]") {
  check_gradient([](const Inputs& in) { return in[0] + in[1]; }, {random_input({2, 3}, 1), random_input({3}, 2)});
}
TEST_CASE("gradcheck: sub broadcast [2,1] - [1,3]") {
  check_gradient([](const Inputs& in) { return in[0] - in[1]; }, {random_input({2, 1}, 3), random_input({1, 3}, 4)});
}
TEST_CASE("gradcheck: mul broadcast [4,1,3] * [5,1]") {
  check_gradient([](const Inputs& in) { return in[0] * in[1]; }, {random_input({4, 1, 3}, 5), random_input({5, 1}, 6)});
}
TEST_CASE("gradcheck: div broadcast [3,2] / [2]") {
  check_gradient([](const Inputs& in) { return in[0] / in[1]; },
                 {random_input({3, 2}, 7), random_input({2}, 8, 0.5, 2.0)});
}
TEST_CASE("gradcheck: pow tensor exponent") {
  check_gradient([](const Inputs& in) { return pow(in[0], in[1]); },
                 {random_input({2, 3}, 9, 0.5, 2.0), random_input({2, 3}, 10)});
}
TEST_CASE("gradcheck: pow scalar exponent") {
  check_gradient([](const Inputs& in) { return pow(in[0], 3.0); }, {random_input({5}, 11)});
}
TEST_CASE("gradcheck: maximum") {
  check_gradient([](const Inputs& in) { return maximum(in[0], in[1]); }, {random_input({3, 4}, 12), random_input({4}, 13)});
}
TEST_CASE("gradcheck: minimum") {
  check_gradient([](const Inputs& in) { return minimum(in[0], in[1]); }, {random_input({3, 4}, 14), random_input({3, 1}, 15)});
}

// ---- elementwise unary ------------------------------------------------------------------------------------
TEST_CASE("gradcheck: neg") { check_gradient([](const Inputs& in) { return -in[0]; }, {random_input({7}, 20)}); }
TEST_CASE("gradcheck: exp") { check_gradient([](const Inputs& in) { return exp(in[0]); }, {random_input({2, 5}, 21)}); }
TEST_CASE("gradcheck: log") {
  check_gradient([](const Inputs& in) { return log(in[0]); }, {random_input({2, 5}, 22, 0.1, 3.0)});
}
TEST_CASE("gradcheck: sqrt") {
  check_gradient([](const Inputs& in) { return sqrt(in[0]); }, {random_input({2, 5}, 23, 0.1, 3.0)});
}
TEST_CASE("gradcheck: abs") { check_gradient([](const Inputs& in) { return abs(in[0]); }, {away_from_zero({3, 3}, 24)}); }
TEST_CASE("gradcheck: relu") { check_gradient([](const Inputs& in) { return relu(in[0]); }, {away_from_zero({3, 5}, 25)}); }
TEST_CASE("gradcheck: leaky_relu") {
  check_gradient([](const Inputs& in) { return leaky_relu(in[0], 0.1); }, {away_from_zero({3, 5}, 26)});
}
TEST_CASE("gradcheck: sigmoid") {
  check_gradient([](const Inputs& in) { return sigmoid(in[0]); }, {random_input({9}, 27, -4.0, 4.0)});
}
TEST_CASE("gradcheck: tanh") { check_gradient([](const Inputs& in) { return tanh(in[0]); }, {random_input({9}, 28, -3.0, 3.0)}); }
TEST_CASE("gradcheck: gelu") { check_gradient([](const Inputs& in) { return gelu(in[0]); }, {random_input({9}, 29, -3.0, 3.0)}); }
TEST_CASE("gradcheck: silu") {
  check_gradient([](const Inputs& in) { return silu(in[0]); }, {random_input({9}, 30, -4.0, 4.0)});
}
// Over [-5, 5]: both flat parts and the ramp between (random points, none within the step of a kink).
TEST_CASE("gradcheck: hardsigmoid") {
  check_gradient([](const Inputs& in) { return hardsigmoid(in[0]); }, {random_input({9}, 31, -5.0, 5.0)});
}
TEST_CASE("gradcheck: hardswish") {
  check_gradient([](const Inputs& in) { return hardswish(in[0]); }, {random_input({9}, 32, -5.0, 5.0)});
}
TEST_CASE("gradcheck: clamp") {
  // Bounds +-0.5 with inputs kept away from them: inside passes the gradient, outside blocks it.
  const Tensor x = Tensor::from_vector<double>({-1.2, -0.7, -0.3, -0.05, 0.05, 0.2, 0.4, 0.7, 1.3}, {3, 3});
  check_gradient([](const Inputs& in) { return clamp(in[0], -0.5, 0.5); }, {x});
}

// ---- reductions -----------------------------------------------------------------------------------------------
TEST_CASE("gradcheck: sum over all axes") { check_gradient([](const Inputs& in) { return sum(in[0]); }, {random_input({2, 3, 4}, 40)}); }
TEST_CASE("gradcheck: sum over non-adjacent axes, keepdim") {
  check_gradient([](const Inputs& in) { return sum(in[0], {0, 2}, true); }, {random_input({2, 3, 4}, 41)});
}
TEST_CASE("gradcheck: mean over axis 1") {
  check_gradient([](const Inputs& in) { return mean(in[0], {1}); }, {random_input({3, 5, 2}, 42)});
}
TEST_CASE("gradcheck: max over axis -1") {
  check_gradient([](const Inputs& in) { return max(in[0], {-1}); }, {random_input({4, 7}, 43)});
}
TEST_CASE("gradcheck: max over all axes") { check_gradient([](const Inputs& in) { return max(in[0]); }, {random_input({3, 5}, 44)}); }
TEST_CASE("gradcheck: var unbiased over axes 0 and 2") {
  check_gradient([](const Inputs& in) { return var(in[0], {0, 2}); }, {random_input({3, 2, 4}, 45)});
}
TEST_CASE("gradcheck: var biased, keepdim") {
  check_gradient([](const Inputs& in) { return var(in[0], {1}, true, 0); }, {random_input({2, 6}, 46)});
}

TEST_CASE("gradcheck: cat along channels") {
  check_gradient([](const Inputs& in) { return cat({in[0], in[1], in[0]}, 1); },
                 {random_input({2, 3, 2}, 62), random_input({2, 1, 2}, 63)});
}

// ---- linear algebra -------------------------------------------------------------------------------------------
TEST_CASE("gradcheck: matmul 2-d") {
  check_gradient([](const Inputs& in) { return matmul(in[0], in[1]); }, {random_input({3, 5}, 50), random_input({5, 2}, 51)});
}
TEST_CASE("gradcheck: matmul batched with broadcast weight") {
  check_gradient([](const Inputs& in) { return matmul(in[0], in[1]); }, {random_input({2, 3, 4}, 52), random_input({4, 5}, 53)});
}
TEST_CASE("gradcheck: matmul broadcast batch dims [2,1,3,4] @ [3,4,2]") {
  check_gradient([](const Inputs& in) { return matmul(in[0], in[1]); },
                 {random_input({2, 1, 3, 4}, 54), random_input({3, 4, 2}, 55)});
}
TEST_CASE("gradcheck: matmul vector @ matrix and matrix @ vector") {
  check_gradient([](const Inputs& in) { return matmul(in[0], in[1]); }, {random_input({4}, 56), random_input({4, 3}, 57)});
  check_gradient([](const Inputs& in) { return matmul(in[0], in[1]); }, {random_input({3, 4}, 58), random_input({4}, 59)});
}
TEST_CASE("gradcheck: matmul of transposed views") {
  check_gradient([](const Inputs& in) { return matmul(in[0].transpose(0, 1), in[1].transpose(0, 1)); },
                 {random_input({5, 3}, 60), random_input({2, 5}, 61)});
}

// ---- views -------------------------------------------------------------------------------------------------------
TEST_CASE("gradcheck: reshape with -1") {
  check_gradient([](const Inputs& in) { return in[0].reshape({3, -1}) * in[0].reshape({3, -1}); }, {random_input({2, 3, 2}, 70)});
}
TEST_CASE("gradcheck: permute") {
  check_gradient([](const Inputs& in) { return in[0].permute({2, 0, 1}).contiguous(); }, {random_input({2, 3, 4}, 71)});
}
TEST_CASE("gradcheck: transpose then reshape (a copy)") {
  check_gradient([](const Inputs& in) { return in[0].transpose(0, 1).reshape({-1}); }, {random_input({3, 4}, 72)});
}
TEST_CASE("gradcheck: slice with step and negative start") {
  check_gradient([](const Inputs& in) { return in[0].slice(1, -5, 7, 2); }, {random_input({3, 7}, 73)});
}
TEST_CASE("gradcheck: expand") {
  check_gradient([](const Inputs& in) { return in[0].expand({4, 3, 5}); }, {random_input({3, 1}, 74)});
}
TEST_CASE("gradcheck: squeeze, unsqueeze and flatten") {
  check_gradient([](const Inputs& in) { return in[0].squeeze(1).unsqueeze(0).flatten(); }, {random_input({2, 1, 3}, 75)});
}
TEST_CASE("gradcheck: clone and to(float64)") {
  check_gradient([](const Inputs& in) { return in[0].clone().to(DType::Float64) * 2.0; }, {random_input({4}, 76)});
}

// ---- convolution ---------------------------------------------------------------------------------------------------
namespace {
void check_conv2d(const Shape& x, const Shape& w, const Conv2dOptions& options, bool bias, std::uint64_t seed) {
  Inputs inputs{random_input(x, seed), random_input(w, seed + 1)};
  if (bias) inputs.push_back(random_input({w[0]}, seed + 2));
  check_gradient([options](const Inputs& in) { return conv2d(in[0], in[1], in.size() > 2 ? in[2] : Tensor(), options); },
                 inputs);
}
}  // namespace

TEST_CASE("gradcheck: conv2d 3x3 padding 1 with bias, C_in 3 -> C_out 5") {
  check_conv2d({2, 3, 5, 5}, {5, 3, 3, 3}, {.padding = {1, 1}}, true, 80);
}
TEST_CASE("gradcheck: conv2d stride 2, batch 1, rectangular input") {
  check_conv2d({1, 3, 7, 6}, {4, 3, 3, 3}, {.stride = {2, 2}, .padding = {1, 1}}, true, 83);
}
TEST_CASE("gradcheck: conv2d dilation 2") { check_conv2d({1, 2, 7, 7}, {3, 2, 3, 3}, {.dilation = {2, 2}}, false, 86); }
TEST_CASE("gradcheck: conv2d groups 2, channels 6 -> 4") {
  check_conv2d({2, 6, 4, 4}, {4, 3, 3, 3}, {.padding = {1, 1}, .groups = 2}, true, 89);
}
TEST_CASE("gradcheck: conv2d depthwise, 5 channels, stride 2") {
  check_conv2d({1, 5, 5, 5}, {5, 1, 3, 3}, {.stride = {2, 2}, .padding = {1, 1}, .groups = 5}, false, 92);
}
TEST_CASE("gradcheck: conv2d 1x1 kernel on 1x1 spatial input") { check_conv2d({3, 7, 1, 1}, {5, 7, 1, 1}, {}, true, 95); }
TEST_CASE("gradcheck: conv2d non-square kernel 3x1 with asymmetric padding") {
  check_conv2d({1, 2, 5, 4}, {3, 2, 3, 1}, {.stride = {1, 2}, .padding = {1, 0}}, true, 98);
}

// ---- pooling -------------------------------------------------------------------------------------------------------
TEST_CASE("gradcheck: max_pool2d 2x2 stride 2") {
  check_gradient([](const Inputs& in) { return max_pool2d(in[0], {.kernel = {2, 2}}); }, {random_input({2, 3, 4, 4}, 100)});
}
TEST_CASE("gradcheck: max_pool2d 3x3 stride 2 padding 1, overlapping windows") {
  check_gradient([](const Inputs& in) { return max_pool2d(in[0], {.kernel = {3, 3}, .stride = {2, 2}, .padding = {1, 1}}); },
                 {random_input({1, 5, 5, 6}, 101)});
}
TEST_CASE("gradcheck: max_pool2d ceil_mode") {
  check_gradient([](const Inputs& in) { return max_pool2d(in[0], {.kernel = {2, 2}, .ceil_mode = true}); },
                 {random_input({1, 2, 5, 5}, 102)});
}
TEST_CASE("gradcheck: avg_pool2d with padding, count_include_pad both ways") {
  check_gradient([](const Inputs& in) { return avg_pool2d(in[0], {.kernel = {3, 3}, .stride = {2, 2}, .padding = {1, 1}}); },
                 {random_input({2, 3, 5, 5}, 103)});
  check_gradient(
      [](const Inputs& in) {
        return avg_pool2d(in[0], {.kernel = {3, 3}, .stride = {2, 2}, .padding = {1, 1}, .count_include_pad = false});
      },
      {random_input({2, 3, 5, 5}, 104)});
}
TEST_CASE("gradcheck: global_avg_pool2d") {
  check_gradient([](const Inputs& in) { return global_avg_pool2d(in[0]); }, {random_input({2, 5, 3, 4}, 105)});
}

TEST_CASE("gradcheck: add_relu, same shapes and broadcast") {
  check_gradient([](const Inputs& in) { return add_relu(in[0], in[1]); },
                 {random_input({2, 3, 4}, 140), random_input({2, 3, 4}, 141)});
  check_gradient([](const Inputs& in) { return add_relu(in[0], in[1]); },
                 {random_input({2, 3, 4}, 142), random_input({3, 1}, 143)});
}

// ---- batch normalization --------------------------------------------------------------------------------------------
TEST_CASE("gradcheck: batch_norm2d training mode, 3 channels, batch 2") {
  check_gradient([](const Inputs& in) { return batch_norm2d(in[0], in[1], in[2], Tensor(), Tensor(), {.training = true}); },
                 {random_input({2, 3, 3, 2}, 110), random_input({3}, 111, 0.5, 1.5), random_input({3}, 112)});
}
TEST_CASE("gradcheck: batch_norm2d training mode, batch 1 with 1x2 planes") {
  check_gradient([](const Inputs& in) { return batch_norm2d(in[0], in[1], in[2], Tensor(), Tensor(), {.training = true}); },
                 {random_input({1, 5, 1, 2}, 113), random_input({5}, 114, 0.5, 1.5), random_input({5}, 115)});
}
TEST_CASE("gradcheck: batch_norm2d eval mode") {
  const Tensor running_mean = random_input({3}, 116), running_var = random_input({3}, 117, 0.5, 2.0);
  check_gradient(
      [&](const Inputs& in) { return batch_norm2d(in[0], in[1], in[2], running_mean, running_var, {.training = false}); },
      {random_input({2, 3, 2, 2}, 118), random_input({3}, 119), random_input({3}, 120)});
}
TEST_CASE("gradcheck: batch_norm2d with the ReLU fused, training and eval mode") {
  check_gradient(
      [](const Inputs& in) {
        return batch_norm2d(in[0], in[1], in[2], Tensor(), Tensor(), {.training = true, .fused_relu = true});
      },
      {random_input({2, 3, 3, 2}, 121), random_input({3}, 122, 0.5, 1.5), random_input({3}, 123)});
  const Tensor running_mean = random_input({3}, 124), running_var = random_input({3}, 125, 0.5, 2.0);
  check_gradient(
      [&](const Inputs& in) {
        return batch_norm2d(in[0], in[1], in[2], running_mean, running_var, {.training = false, .fused_relu = true});
      },
      {random_input({2, 3, 2, 2}, 126), random_input({3}, 127), random_input({3}, 128)});
}

// Capped at 0.5 (ReLU6's rule, with a cap the normalized values reach often): the clamp's gradient.
TEST_CASE("gradcheck: batch_norm2d with a capped ReLU fused, training and eval mode") {
  const BatchNormOptions train{.training = true, .fused_relu = true, .relu_upper = 0.5f};
  check_gradient(
      [&](const Inputs& in) { return batch_norm2d(in[0], in[1], in[2], Tensor(), Tensor(), train); },
      {random_input({2, 3, 3, 2}, 131), random_input({3}, 132, 0.5, 1.5), random_input({3}, 133)});
  const Tensor running_mean = random_input({3}, 134), running_var = random_input({3}, 135, 0.5, 2.0);
  BatchNormOptions eval = train;
  eval.training = false;
  check_gradient(
      [&](const Inputs& in) { return batch_norm2d(in[0], in[1], in[2], running_mean, running_var, eval); },
      {random_input({2, 3, 2, 2}, 136), random_input({3}, 137), random_input({3}, 138)});
}

// The hard swish fused (gamma 2 to 4: normalized values past both kinks at -3 and 3, and between).
TEST_CASE("gradcheck: batch_norm2d with the hard swish fused, training and eval mode") {
  const BatchNormOptions train{.training = true, .fused_hardswish = true};
  check_gradient(
      [&](const Inputs& in) { return batch_norm2d(in[0], in[1], in[2], Tensor(), Tensor(), train); },
      {random_input({2, 3, 3, 2}, 151), random_input({3}, 152, 2.0, 4.0), random_input({3}, 153)});
  const Tensor running_mean = random_input({3}, 154), running_var = random_input({3}, 155, 0.2, 0.5);
  BatchNormOptions eval = train;
  eval.training = false;
  check_gradient(
      [&](const Inputs& in) { return batch_norm2d(in[0], in[1], in[2], running_mean, running_var, eval); },
      {random_input({2, 3, 2, 2}, 156), random_input({3}, 157, 2.0, 4.0), random_input({3}, 158)});
}

// With the ReLU after the sum (a ResNet block's tail) and without it (an inverted residual block's).
TEST_CASE(
    "gradcheck: batch_norm2d_add (x, the residual, gamma, beta), with and without the ReLU, both modes") {
  for (const bool relu : {true, false}) {
    CAPTURE(relu);
    check_gradient(
        [&](const Inputs& in) {
          return batch_norm2d_add(in[0], in[1], in[2], in[3], Tensor(), Tensor(),
                                  {.training = true, .fused_relu = relu});
        },
        {random_input({2, 3, 3, 2}, 150), random_input({2, 3, 3, 2}, 151), random_input({3}, 152, 0.5, 1.5),
         random_input({3}, 153)});
    const Tensor running_mean = random_input({3}, 154), running_var = random_input({3}, 155, 0.5, 2.0);
    check_gradient(
        [&](const Inputs& in) {
          return batch_norm2d_add(in[0], in[1], in[2], in[3], running_mean, running_var,
                                  {.training = false, .fused_relu = relu});
        },
        {random_input({2, 3, 2, 2}, 156), random_input({2, 3, 2, 2}, 157), random_input({3}, 158),
         random_input({3}, 159)});
  }
}

TEST_CASE("gradcheck: conv2d_of_batch_norm (x, gamma, beta, the weight, the bias), each activation") {
  // In float64 the op is the two ops (the fused kernels are float32's), whose gradients it must give; the
  // fused path is held to those bits in tests/layers/conv_batch_norm_test.cpp. A 3x3 convolution after the
  // ReLU, and depthwise ones after ReLU6 (capped at 0.5, so that values reach it), the hard swish (gamma 2
  // to 4: values past both kinks) and no activation.
  check_gradient(
      [](const Inputs& in) {
        return conv2d_of_batch_norm(in[0], in[1], in[2], Tensor(), Tensor(),
                                    {.training = true, .fused_relu = true}, in[3], in[4],
                                    {.padding = {1, 1}});
      },
      {random_input({2, 3, 4, 3}, 170), random_input({3}, 171, 0.5, 1.5), random_input({3}, 172),
       random_input({2, 3, 3, 3}, 173), random_input({2}, 174)});
  const BatchNormOptions capped{.training = true, .fused_relu = true, .relu_upper = 0.5f};
  const BatchNormOptions hardswish{.training = true, .fused_hardswish = true};
  for (const BatchNormOptions& options : {capped, hardswish, BatchNormOptions{.training = true}}) {
    CAPTURE(options.fused_hardswish);
    CAPTURE(options.fused_relu);
    check_gradient(
        [&](const Inputs& in) {
          return conv2d_of_batch_norm(in[0], in[1], in[2], Tensor(), Tensor(), options, in[3], in[4],
                                      {.padding = {1, 1}, .groups = 3});
        },
        {random_input({2, 3, 4, 3}, 175), random_input({3}, 176, 2.0, 4.0), random_input({3}, 177),
         random_input({3, 1, 3, 3}, 178), random_input({3}, 179)});
  }
}

TEST_CASE("gradcheck: flip, one axis and several, NCHW and channels-last") {
  check_gradient([](const Inputs& in) { return flip(in[0], {3}); }, {random_input({2, 3, 4, 5}, 164)});
  check_gradient(
      [](const Inputs& in) {
        return flip(in[0] * in[0], {0, 2}) * 0.5;
      },
      {random_input({2, 3, 4, 5}, 165)});
  check_gradient(
      [](const Inputs& in) {
        return flip(in[0].channels_last(), {1, 2, 3});
      },
      {random_input({1, 3, 3, 2}, 166)});
}

// The gates as [N, C, 1, 1] (the squeeze-and-excitation's) and as [N, C]; batch 1 with 1x1 planes too.
TEST_CASE("gradcheck: channel_scale, x and the gates, gates [N, C, 1, 1] and [N, C]") {
  check_gradient([](const Inputs& in) { return channel_scale(in[0], in[1]); },
                 {random_input({2, 3, 4, 5}, 161), random_input({2, 3, 1, 1}, 162)});
  check_gradient([](const Inputs& in) { return channel_scale(in[0], in[1]); },
                 {random_input({1, 5, 1, 1}, 163), random_input({1, 5}, 164)});
}
TEST_CASE("gradcheck: subsample_pad_channels, odd sizes, stride 2 and 3, zero channels on either side") {
  check_gradient([](const Inputs& in) { return subsample_pad_channels(in[0], 2, 1, 2); },
                 {random_input({2, 3, 5, 4}, 160)});
  check_gradient([](const Inputs& in) { return subsample_pad_channels(in[0], 3, 0, 1); },
                 {random_input({1, 2, 7, 3}, 161)});
}
// An input the shortcut shares with another op: the second backward to run adds into the first's gradient
// (NeedsGrad::sum_into), in either layout.
TEST_CASE("gradcheck: subsample_pad_channels adding into the gradient of an input used twice") {
  check_gradient(
      [](const Inputs& in) {
        const Tensor t = in[0] * 1.5;
        return subsample_pad_channels(t, 2, 1, 2) + subsample_pad_channels(t * t, 2, 1, 2) * 0.5 +
               subsample_pad_channels(t, 2, 1, 2) * 2.0;
      },
      {random_input({2, 3, 5, 4}, 162)});
  check_gradient(
      [](const Inputs& in) {
        const Tensor t = (in[0] * 1.5).channels_last();
        return subsample_pad_channels(t, 2, 0, 1) + subsample_pad_channels(t, 2, 0, 1) * 3.0;
      },
      {random_input({1, 2, 7, 3}, 163)});
}

// ---- softmax and losses -----------------------------------------------------------------------------------------------
TEST_CASE("gradcheck: softmax over the last axis") {
  check_gradient([](const Inputs& in) { return softmax(in[0], -1); }, {random_input({3, 7}, 130, -2.0, 2.0)});
}
TEST_CASE("gradcheck: softmax over channels of NCHW") {
  check_gradient([](const Inputs& in) { return softmax(in[0], 1); }, {random_input({2, 3, 2, 2}, 131, -2.0, 2.0)});
}
TEST_CASE("gradcheck: log_softmax over a middle axis") {
  check_gradient([](const Inputs& in) { return log_softmax(in[0], 1); }, {random_input({2, 5, 3}, 132, -2.0, 2.0)});
}
TEST_CASE("gradcheck: cross_entropy mean") {
  const Tensor y = labels({0, 2, 1, 2});
  check_gradient([&](const Inputs& in) { return cross_entropy(in[0], y); }, {random_input({4, 3}, 140, -2.0, 2.0)});
}
TEST_CASE("gradcheck: cross_entropy with label smoothing and class weights, 7 classes") {
  const Tensor y = labels({6, 0, 3});
  const Tensor weight = random_input({7}, 141, 0.5, 2.0);
  check_gradient([&](const Inputs& in) { return cross_entropy(in[0], y, weight, {.label_smoothing = 0.1}); },
                 {random_input({3, 7}, 142, -2.0, 2.0)});
}
TEST_CASE("gradcheck: cross_entropy per-sample and summed reductions") {
  const Tensor y = labels({1, 0});
  check_gradient([&](const Inputs& in) { return cross_entropy(in[0], y, Tensor(), {.reduction = Reduction::None}); },
                 {random_input({2, 5}, 143)});
  check_gradient([&](const Inputs& in) { return cross_entropy(in[0], y, Tensor(), {.reduction = Reduction::Sum}); },
                 {random_input({2, 5}, 144)});
}
TEST_CASE("gradcheck: binary_cross_entropy_with_logits with pos_weight") {
  const Tensor targets = random_input({3, 4}, 150, 0.0, 1.0);
  const Tensor pos_weight = random_input({4}, 151, 0.5, 3.0);
  check_gradient([&](const Inputs& in) { return binary_cross_entropy_with_logits(in[0], targets, pos_weight); },
                 {random_input({3, 4}, 152, -3.0, 3.0)});
  check_gradient([&](const Inputs& in) { return binary_cross_entropy_with_logits(in[0], targets); },
                 {random_input({3, 4}, 153, -3.0, 3.0)});
}

// ---- dropout -------------------------------------------------------------------------------------------------------------
TEST_CASE("gradcheck: dropout with a fixed generator") {
  // A fresh generator per call draws the same mask every time, so the op is a fixed function of x.
  check_gradient(
      [](const Inputs& in) {
        Generator generator(7);
        return dropout(in[0], 0.3, true, &generator);
      },
      {random_input({4, 9}, 160)});
}

// ---- the harness itself ---------------------------------------------------------------------------------------------------
TEST_CASE("gradcheck: detects a wrong derivative rule") {
  // An op whose recorded rule is deliberately wrong (claims d/dx x^2 = x): gradcheck must say so.
  const auto wrong_square = [](const Inputs& in) {
    const Tensor& x = in[0];
    Tensor y;
    {
      NoGradGuard no_grad;
      y = x * x;
    }
    return record("wrong_square", {x}, y, [x](const Tensor& g) { return Grads{g * x}; });
  };
  const auto result = gradcheck(wrong_square, {random_input({5}, 170, 0.5, 1.0)});
  CHECK_FALSE(result.ok);
  CHECK(result.message.find("analytic") != std::string::npos);
}

}  // namespace core_gradcheck_ops_test
