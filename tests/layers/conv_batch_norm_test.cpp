// conv_then_batch_norm (layers/conv_batch_norm.hpp): at inference a zoo model's convolutions and the batch
// norms after them run as one op (kiln::conv2d_batch_norm_eval), and the model must give the same bits as
// its layers' own forwards, which it runs whenever gradients flow.
#include <doctest/doctest.h>

#include <cstring>
#include <string>
#include <vector>

#include "core/autograd.hpp"
#include "core/error.hpp"
#include "core/ops.hpp"
#include "core/profiler.hpp"
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
  for (const std::string name : {"resnet20", "vgg_small", "mobilenet"}) {
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
  const Tensor fused = layers::conv_then_batch_norm(conv, norm, x, true, residual);
  layers::BatchNorm2d again(6);
  CHECK(same_bits(fused, again.forward_add_relu(conv.forward(x), residual)));
  CHECK(same_bits(norm.running_mean(), again.running_mean()));
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
