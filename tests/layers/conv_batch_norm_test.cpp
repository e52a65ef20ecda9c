// layers/conv_batch_norm.hpp: at inference a zoo model's convolutions and the batch norms after them run as
// one op (kiln::conv2d_batch_norm_eval), and in training a batch norm, its ReLU and the convolution after
// them (kiln::conv2d_of_batch_norm_relu); each must give the bits of the layers' own forwards (and, in
// training, backwards).
#include <doctest/doctest.h>

#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "core/autograd.hpp"
#include "core/error.hpp"
#include "core/ops.hpp"
#include "core/profiler.hpp"
#include "core/raw.hpp"
#include "kernels/cpu_level.hpp"
#include "layers/layers.hpp"
#include "models/architecture.hpp"

namespace layers_conv_batch_norm_test {

using namespace kiln;

namespace {

bool same_bits(const Tensor& a, const Tensor& b) {
  const Tensor x = a.contiguous(), y = b.contiguous();
  return x.shape() == y.shape() && x.dtype() == y.dtype() &&
         std::memcmp(x.data<float>(), y.data<float>(), static_cast<std::size_t>(x.numel()) * sizeof(float)) ==
             0;
}

// Running statistics and affine parameters away from their initial 0, 1 (which make the normalization
// nearly the identity), drawn from `generator`.
void randomize_batch_norms(layers::Module& model, Generator& generator) {
  const NoGradGuard no_grad;
  for (auto& [name, tensor] : model.named_buffers()) {
    if (name.ends_with("running_mean"))
      tensor.copy_(Tensor::randn(tensor.shape(), DType::Float32, &generator) * 0.2);
    if (name.ends_with("running_var"))
      tensor.copy_(Tensor::rand(tensor.shape(), DType::Float32, &generator) + 0.1);
  }
  for (auto& [name, tensor] : model.named_parameters()) {
    const bool norm = name.find("bn") != std::string::npos || name.find("norm") != std::string::npos;
    if (norm && name.ends_with("weight"))
      tensor.copy_(Tensor::rand(tensor.shape(), DType::Float32, &generator) * 2.0 - 0.5);
    if (norm && name.ends_with("bias"))
      tensor.copy_(Tensor::randn(tensor.shape(), DType::Float32, &generator) * 0.1);
  }
}

// Whether a profile holds a convolution that normalized its own outputs.
bool has_fused_convolution(const profiler::Profile& profile) {
  for (const profiler::OpTime& row : profile.ops) {
    if (row.op == "conv2d_forward" && row.detail.find("+ batch norm") != std::string::npos) return true;
  }
  return false;
}

}  // namespace

TEST_CASE("conv_then_batch_norm: inference's fused op gives the layers' own forwards' bits, zoo models") {
  // Batch 8 at 16x16: ResNet-20's and the VGG-style net's first 16- and 32-channel layers are ones the CPU
  // dispatch gives Winograd, which normalizes in its stores; the rest take the two-op path inside the op.
  // MobileNetV2's ReLU6s ride its depthwise and pointwise convolutions' stores, capped there; MobileNetV3's
  // hard swishes follow the stores at inference and ride batch norm's pass with gradients.
  for (const std::string name :
       {"resnet20", "vgg_small", "mobilenet", "mobilenet_v2", "mobilenet_v3_small"}) {
    CAPTURE(name);
    Generator generator(7);
    const layers::ModulePtr model = models::build_model({name, 3, 16, 16, 10}, generator);
    randomize_batch_norms(*model, generator);
    model->eval();
    const Tensor images = Tensor::randn({8, 3, 16, 16}, DType::Float32, &generator);

    const Tensor with_gradients = (*model)(images);  // the parameters require grad: the layers' forwards
    CHECK(with_gradients.requires_grad());
    Tensor inferred;
    profiler::Session session(Device::cpu());
    {
      const NoGradGuard no_grad;
      inferred = (*model)(images);
    }
    const profiler::Profile profile = session.finish();
    CHECK(same_bits(inferred, with_gradients.detach()));
    // (The Reference CPU level runs the reference kernels, the two ops, throughout.)
    if (name != "mobilenet" && kernels::cpu_level() != kernels::CpuLevel::Reference)
      CHECK(has_fused_convolution(profile));
  }
}

TEST_CASE("conv_then_batch_norm: training mode runs the layers' forwards, with batch statistics") {
  Generator generator(3);
  layers::Conv2d conv(4, 6, 3, generator, {.padding = 1, .bias = false});
  layers::BatchNorm2d norm(6);
  const Tensor x = Tensor::randn({2, 4, 5, 5}, DType::Float32, &generator);
  const Tensor residual = Tensor::randn({2, 6, 5, 5}, DType::Float32, &generator);
  const NoGradGuard no_grad;  // even without gradients: training mode's statistics are the batch's
  const Tensor fused = layers::conv_then_batch_norm(conv, norm, x, layers::FusedActivation::Relu, residual);
  layers::BatchNorm2d again(6);
  CHECK(same_bits(fused, again.forward_add_relu(conv.forward(x), residual)));
  CHECK(same_bits(norm.running_mean(), again.running_mean()));
}

namespace {

struct TrainingResults {
  Tensor output, input_grad, conv_weight_grad, conv_bias_grad, norm_weight_grad, norm_bias_grad, running_mean,
      running_var;
};

// One training forward and backward of conv(relu(norm(x))) on fresh layers drawn from `seed` (so both calls
// get the same parameters), fused (batch_norm_relu_then_conv) or as the layers' own forwards.
TrainingResults train_once(const Shape& x_shape, std::int64_t out_channels, bool fused) {
  Generator generator(17);
  const std::int64_t channels = x_shape[1];
  layers::BatchNorm2d norm(channels);
  layers::Conv2d conv(channels, out_channels, 3, generator, {.padding = 1});
  randomize_batch_norms(norm, generator);
  {
    const NoGradGuard no_grad;
    Tensor bias = conv.bias();  // a handle on the layer's parameter
    bias.copy_(Tensor::randn({out_channels}, DType::Float32, &generator) * 0.1);
  }
  Tensor x = Tensor::randn(x_shape, DType::Float32, &generator);
  x.set_requires_grad(true);
  const Tensor y =
      fused ? layers::batch_norm_relu_then_conv(norm, conv, x) : conv.forward(norm.forward_then_relu(x));
  const Tensor weights = Tensor::randn(y.shape(), DType::Float32, &generator);
  sum(y * weights).backward();
  return {y.detach(),           x.grad(),           conv.weight().grad(), conv.bias().grad(),
          norm.weight().grad(), norm.bias().grad(), norm.running_mean(),  norm.running_var()};
}

}  // namespace

TEST_CASE(
    "batch_norm_relu_then_conv: training's fused op gives the layers' values, gradients and running "
    "statistics, bit for bit") {
  // [8, 16, 32, 32] -> 16 and [8, 64, 8, 8] -> 64: both of the convolution's passes Winograd (F(4x4, 3x3),
  // F(2x2, 3x3)) at the fast levels, so the batch norm's pass runs inside its copies; [2, 5, 9, 11] -> 7 is
  // the two ops inside the op, as is everything at the Reference level.
  const kernels::CpuLevel detected = kernels::cpu_level();
  std::vector<kernels::CpuLevel> levels{detected, kernels::CpuLevel::Reference};
  for (const kernels::CpuLevel level : levels) {
    kernels::set_cpu_level(level);
    for (const auto& [x_shape, out_channels] :
         {std::pair{Shape{8, 16, 32, 32}, 16}, {Shape{8, 64, 8, 8}, 64}, {Shape{2, 5, 9, 11}, 7}}) {
      CAPTURE(kernels::cpu_level_name(level));
      CAPTURE(x_shape.str());
      const TrainingResults fused = train_once(x_shape, out_channels, true);
      const TrainingResults plain = train_once(x_shape, out_channels, false);
      CHECK(same_bits(fused.output, plain.output));
      CHECK(same_bits(fused.input_grad, plain.input_grad));
      CHECK(same_bits(fused.conv_weight_grad, plain.conv_weight_grad));
      CHECK(same_bits(fused.conv_bias_grad, plain.conv_bias_grad));
      CHECK(same_bits(fused.norm_weight_grad, plain.norm_weight_grad));
      CHECK(same_bits(fused.norm_bias_grad, plain.norm_bias_grad));
      CHECK(same_bits(fused.running_mean, plain.running_mean));
      CHECK(same_bits(fused.running_var, plain.running_var));
    }
  }
  kernels::set_cpu_level(detected);
  // And the fused shapes are ones the kernels fuse.
  const Tensor x = Tensor::zeros({8, 16, 32, 32}), w = Tensor::zeros({16, 16, 3, 3});
  if (detected != kernels::CpuLevel::Reference)
    CHECK(raw::conv2d_normalizes_input(x, w, {.padding = {1, 1}}));
}

TEST_CASE("conv2d_batch_norm_eval: refuses what it cannot do, by name") {
  Generator generator(5);
  const Tensor x = Tensor::randn({1, 2, 4, 4}, DType::Float32, &generator);
  const Tensor w = Tensor::randn({3, 2, 3, 3}, DType::Float32, &generator);
  const Tensor ones = Tensor::ones({3}), zeros = Tensor::zeros({3});
  const Conv2dOptions same{.padding = {1, 1}};
  const BatchNormOptions eval_relu{.training = false, .fused_relu = true};
  const Tensor residual = Tensor::zeros({1, 3, 4, 4});

  Tensor trained = w.detach();
  trained.set_requires_grad(true);
  CHECK_THROWS_WITH_AS(
      conv2d_batch_norm_eval(x, trained, Tensor(), same, ones, zeros, zeros, ones, eval_relu),
      doctest::Contains("requires grad"), Error);
  const NoGradGuard no_grad;
  CHECK_THROWS_WITH_AS(
      conv2d_batch_norm_eval(x, w, Tensor(), same, ones, zeros, zeros, ones, {.training = false}, residual),
      doctest::Contains("fused_relu"), Error);
  CHECK_THROWS_WITH_AS(conv2d_batch_norm_eval(x, w, Tensor(), same, ones, zeros, zeros, ones,
                                              {.training = true, .fused_relu = true}),
                       doctest::Contains("eval mode"), Error);
  CHECK_THROWS_WITH_AS(
      conv2d_batch_norm_eval(x, w, Tensor(), same, Tensor::ones({4}), zeros, zeros, ones, eval_relu),
      doctest::Contains("per-channel"), Error);
  CHECK_THROWS_WITH_AS(conv2d_batch_norm_eval(x, w, Tensor(), same, ones, zeros, zeros, ones, eval_relu,
                                              Tensor::zeros({1, 3, 2, 2})),
                       doctest::Contains("residual"), Error);
  // And with none of those, the two ops' values.
  const Tensor expected =
      batch_norm2d_add_relu(conv2d(x, w, Tensor(), same), residual, ones, zeros, zeros, ones, eval_relu);
  CHECK(same_bits(conv2d_batch_norm_eval(x, w, Tensor(), same, ones, zeros, zeros, ones, eval_relu, residual),
                  expected));
}

}  // namespace layers_conv_batch_norm_test
