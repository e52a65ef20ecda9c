// layers/conv_batch_norm.hpp: at inference a zoo model's convolutions and the batch norms after them run as
// one op (kiln::conv2d_batch_norm_eval), and in training a batch norm, its activation and the convolution
// after them (kiln::conv2d_of_batch_norm); each must give the bits of the layers' own forwards (and, in
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

// One training forward and backward of conv(after(norm(x))) on fresh layers drawn from one seed (so both
// calls get the same parameters), fused (batch_norm_then_conv) or as the layers' own forwards. The
// convolution: `kernel` x `kernel` padded by kernel / 2, at `stride`, to `out_channels`, or depthwise (0).
struct ConvCase {
  Shape x_shape;
  std::int64_t out_channels = 0;  // 0: depthwise
  std::int64_t kernel = 3, stride = 1;
};

TrainingResults train_once(const ConvCase& c, layers::FusedActivation after, bool fused) {
  Generator generator(17);
  const std::int64_t channels = c.x_shape[1];
  const bool depthwise = c.out_channels == 0;
  const std::int64_t out_channels = depthwise ? channels : c.out_channels;
  layers::BatchNorm2d norm(channels);
  layers::Conv2d conv(channels, out_channels, c.kernel, generator,
                      {.stride = c.stride, .padding = c.kernel / 2, .groups = depthwise ? channels : 1});
  randomize_batch_norms(norm, generator);
  {
    const NoGradGuard no_grad;
    Tensor bias = conv.bias();  // a handle on the layer's parameter
    bias.copy_(Tensor::randn({out_channels}, DType::Float32, &generator) * 0.1);
  }
  Tensor x = Tensor::randn(c.x_shape, DType::Float32, &generator) * 2.0;  // past ReLU6's cap, the kinks
  x.set_requires_grad(true);
  const Tensor y =
      fused ? layers::batch_norm_then_conv(norm, conv, x, after) : conv.forward(norm.forward_then(x, after));
  const Tensor weights = Tensor::randn(y.shape(), DType::Float32, &generator);
  sum(y * weights).backward();
  return {y.detach(),           x.grad(),           conv.weight().grad(), conv.bias().grad(),
          norm.weight().grad(), norm.bias().grad(), norm.running_mean(),  norm.running_var()};
}

}  // namespace

TEST_CASE(
    "batch_norm_then_conv: training's fused op gives the layers' values, gradients and running statistics, "
    "bit for bit") {
  // [8, 16, 32, 32] -> 16 and [8, 64, 8, 8] -> 64: both of the convolution's passes Winograd (F(4x4, 3x3),
  // F(2x2, 3x3)) at the fast levels, so the batch norm's pass runs inside its copies; MobileNetV2's depthwise
  // layers (planes forward and channel blocks backward at 32x32, channel blocks both ways at 8x8, stride 2,
  // a 5x5 kernel), likewise; [2, 5, 9, 11] -> 7 is the two ops inside the op, as is everything at the
  // Reference level. Each with the ReLU, ReLU6, the hard swish and no activation.
  const std::vector<ConvCase> cases = {
      {{8, 16, 32, 32}, 16}, {{8, 64, 8, 8}, 64},        {{2, 5, 9, 11}, 7},        {{4, 24, 32, 32}, 0},
      {{4, 48, 8, 8}, 0},    {{4, 24, 16, 16}, 0, 3, 2}, {{3, 20, 10, 10}, 0, 5, 1}};
  const kernels::CpuLevel detected = kernels::cpu_level();
  std::vector<kernels::CpuLevel> levels{detected, kernels::CpuLevel::Reference};
  using layers::FusedActivation;
  for (const kernels::CpuLevel level : levels) {
    kernels::set_cpu_level(level);
    for (const ConvCase& c : cases) {
      for (const FusedActivation after : {FusedActivation::Relu, FusedActivation::Relu6,
                                          FusedActivation::Hardswish, FusedActivation::None}) {
        CAPTURE(kernels::cpu_level_name(level));
        CAPTURE(c.x_shape.str());
        CAPTURE(c.out_channels);
        CAPTURE(static_cast<int>(after));
        const TrainingResults fused = train_once(c, after, true);
        const TrainingResults plain = train_once(c, after, false);
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
  }
  kernels::set_cpu_level(detected);
  // And the fused shapes are ones the kernels fuse.
  if (detected != kernels::CpuLevel::Reference) {
    CHECK(raw::conv2d_normalizes_input(Tensor::zeros({8, 16, 32, 32}), Tensor::zeros({16, 16, 3, 3}),
                                       {.padding = {1, 1}}));
    CHECK(raw::conv2d_normalizes_input(Tensor::zeros({4, 24, 32, 32}), Tensor::zeros({24, 1, 3, 3}),
                                       {.padding = {1, 1}, .groups = 24}));
  }
}

// In training, an inverted residual block's expansion batch norm rides its depthwise convolution's copies in:
// the profile shows the convolution of the batch norm, and no normalizing pass of the expansion's output.
TEST_CASE("InvertedResidual: in training the expansion's batch norm runs inside the depthwise convolution") {
  if (kernels::cpu_level() == kernels::CpuLevel::Reference) return;  // (the two ops there)
  for (const layers::BlockActivation activation :
       {layers::BlockActivation::Relu6, layers::BlockActivation::Hardswish}) {
    Generator generator(9);
    layers::InvertedResidual block(16, 16, {.expansion = 4, .activation = activation}, generator);
    const Tensor x = Tensor::randn({4, 16, 16, 16}, DType::Float32, &generator);
    profiler::Session session(Device::cpu());
    sum((block)(x)).backward();
    const profiler::Profile profile = session.finish();
    bool fused_forward = false, fused_weight_gradient = false;
    for (const profiler::OpTime& row : profile.ops) {
      const bool of_batch_norm = row.detail.find("64->64 3x3 g64") != std::string::npos &&
                                 row.detail.find("of batch norm") != std::string::npos;
      fused_forward = fused_forward || (of_batch_norm && row.op == "conv2d_forward");
      fused_weight_gradient = fused_weight_gradient || (of_batch_norm && row.op == "conv2d_backward_weight");
    }
    CHECK(fused_forward);
    CHECK(fused_weight_gradient);
  }
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
      conv2d_batch_norm_eval(x, w, Tensor(), same, ones, zeros, zeros, ones,
                             {.training = false, .fused_relu = true, .relu_upper = 6.0f}, residual),
      doctest::Contains("uncapped"), Error);
  CHECK_THROWS_WITH_AS(conv2d_batch_norm_eval(x, w, Tensor(), same, ones, zeros, zeros, ones,
                                              {.training = true, .fused_relu = true}),
                       doctest::Contains("eval mode"), Error);
  CHECK_THROWS_WITH_AS(
      conv2d_batch_norm_eval(x, w, Tensor(), same, Tensor::ones({4}), zeros, zeros, ones, eval_relu),
      doctest::Contains("per-channel"), Error);
  CHECK_THROWS_WITH_AS(conv2d_batch_norm_eval(x, w, Tensor(), same, ones, zeros, zeros, ones, eval_relu,
                                              Tensor::zeros({1, 3, 2, 2})),
                       doctest::Contains("residual"), Error);
  // And with none of those, the two ops' values, with the ReLU after the sum and without it.
  const Tensor conv = conv2d(x, w, Tensor(), same);
  const Tensor drawn_residual = Tensor::randn({1, 3, 4, 4}, DType::Float32, &generator);
  for (const bool relu : {true, false}) {
    const BatchNormOptions eval{.training = false, .fused_relu = relu};
    CHECK(same_bits(
        conv2d_batch_norm_eval(x, w, Tensor(), same, ones, zeros, zeros, ones, eval, drawn_residual),
        batch_norm2d_add(conv, drawn_residual, ones, zeros, zeros, ones, eval)));
  }
}

}  // namespace layers_conv_batch_norm_test
