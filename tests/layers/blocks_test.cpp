// BasicBlock, DepthwiseSeparable, InvertedResidual and SqueezeExcitation: shapes, shortcut kinds and their
// parameters, hand-counted parameter totals, the pad-identity shortcut's values, the block's forward against
// the ops it is made of, finite differences of those ops, and gradients reaching every parameter.
#include "layers/blocks.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <functional>
#include <map>
#include <memory>
#include <utility>

#include "core/error.hpp"
#include "core/profiler.hpp"
#include "tests/layers/layer_testing.hpp"
#include "tests/support/gradcheck.hpp"

namespace layers_blocks_test {

using namespace kiln;
using namespace kiln::layers;
using kiln::layers::testing::max_abs_difference;
using kiln::layers::testing::names;
using kiln::layers::testing::values;

namespace {

std::map<std::string, Tensor> by_name(const std::vector<NamedTensor>& tensors) {
  return {tensors.begin(), tensors.end()};
}

// Backpropagates a random weighting of the block's output (a plain sum would give batch-norm's
// parameters upstream of another batch-norm zero gradient) and checks each parameter got a nonzero one.
void check_gradients_reach_every_parameter(Module& block, const Tensor& x, Generator& generator) {
  const Tensor y = block(x);
  sum(y * Tensor::randn(y.shape(), DType::Float32, &generator)).backward();
  for (const auto& [name, parameter] : block.named_parameters()) {
    CAPTURE(name);
    REQUIRE(parameter.grad().defined());
    CHECK(parameter.grad().shape() == parameter.shape());
    const std::vector<double> grad = values(parameter.grad());
    CHECK(std::any_of(grad.begin(), grad.end(), [](double g) { return g != 0.0; }));
  }
}

}  // namespace

TEST_CASE("layers: BasicBlock with the shape kept has an identity shortcut") {
  Generator generator(1);
  BasicBlock block(8, 8, 1, generator);
  CHECK(block.shortcut() == nullptr);
  const Tensor x = Tensor::randn({2, 8, 6, 6}, DType::Float32, &generator);
  CHECK(block(x).shape() == x.shape());
  CHECK(names(block.named_parameters()) == std::vector<std::string>{"conv1.weight", "bn1.weight", "bn1.bias",
                                                                    "conv2.weight", "bn2.weight",
                                                                    "bn2.bias"});
  CHECK(block.parameter_count() == 2 * 8 * 8 * 9 + 4 * 8);  // 1184
  CHECK(block.describe() == "BasicBlock(8, 8, stride=1, shortcut=identity)");
  // Projection is only used where the shape changes.
  CHECK(BasicBlock(8, 8, 1, generator, Shortcut::Projection).shortcut() == nullptr);
}

TEST_CASE("layers: BasicBlock forward is relu(bn2(conv2(relu(bn1(conv1 x)))) + x)") {
  Generator generator(2);
  BasicBlock block(3, 3, 1, generator);
  block.eval();  // running statistics 0 and 1: each BN is a fixed scale, so the ops below can repeat it
  const Tensor x = Tensor::randn({2, 3, 5, 5}, DType::Float32, &generator);
  const auto p = by_name(block.named_parameters());
  const Tensor running_mean = Tensor::zeros({3}), running_var = Tensor::ones({3});
  const BatchNormOptions eval{.training = false};
  const Conv2dOptions same{.padding = {1, 1}};
  Tensor h = relu(batch_norm2d(conv2d(x, p.at("conv1.weight"), Tensor(), same), p.at("bn1.weight"),
                               p.at("bn1.bias"), running_mean, running_var, eval));
  h = batch_norm2d(conv2d(h, p.at("conv2.weight"), Tensor(), same), p.at("bn2.weight"), p.at("bn2.bias"),
                   running_mean, running_var, eval);
  CHECK(max_abs_difference(block(x), relu(h + x)) < 1e-6);
}

TEST_CASE(
    "layers: BasicBlock with PadIdentity and stride 2 doubles channels, halves H and W, adds no parameters") {
  Generator generator(3);
  BasicBlock block(4, 8, 2, generator, Shortcut::PadIdentity);
  const Tensor x = Tensor::randn({2, 4, 8, 8}, DType::Float32, &generator);
  CHECK(block(x).shape() == Shape{2, 8, 4, 4});
  CHECK(block(Tensor::zeros({1, 4, 7, 7})).shape() == Shape{1, 8, 4, 4});  // odd sizes round up
  REQUIRE(block.shortcut() != nullptr);
  CHECK(block.shortcut()->parameter_count() == 0);
  CHECK(block.shortcut()->named_buffers().empty());
  CHECK(block.parameter_count() == 4 * 8 * 9 + 8 * 8 * 9 + 4 * 8);  // 896: the two convs and two BNs only
  CHECK(block.describe() == "BasicBlock(4, 8, stride=2, shortcut=pad-identity)");
  CHECK(block.shortcut()->describe() == "PadIdentityShortcut(4 -> 8, stride=2)");
}

TEST_CASE("layers: PadIdentityShortcut keeps every stride-th pixel and pads channels evenly with zeros") {
  // x [1, 2, 4, 4] holds 0..31; to 6 channels with stride 2: 2 zero channels, x's 2, then 2 zero channels.
  PadIdentityShortcut shortcut(2, 6, 2);
  const Tensor y = shortcut(Tensor::arange(0, 32).reshape({1, 2, 4, 4}));
  REQUIRE(y.shape() == Shape{1, 6, 2, 2});
  const std::vector<double> expected{0,  0,  0,  0,  0, 0, 0, 0,  //
                                     0,  2,  8,  10,              // x channel 0, rows/cols 0 and 2
                                     16, 18, 24, 26,              // x channel 1
                                     0,  0,  0,  0,  0, 0, 0, 0};
  CHECK(values(y) == expected);
  // An odd difference puts the extra zero channel after x's.
  const Tensor odd = PadIdentityShortcut(1, 4, 1)(Tensor::ones({1, 1, 1, 1}));
  CHECK(values(odd) == std::vector<double>{0, 1, 0, 0});
  CHECK_THROWS_WITH_AS(PadIdentityShortcut(1, 4, 1)(Tensor::ones({1, 2, 1, 1})),
                       doctest::Contains("PadIdentityShortcut(1 -> 4, stride=1): input float32[1, 2, 1, 1]"),
                       kiln::Error);
}

// The shortcut's one op against what it replaced, slices of x between zero tensors joined by cat: the same
// values and the same gradient, bit for bit, NCHW and channels-last.
TEST_CASE("layers: subsample_pad_channels gives the slices and cat's values and gradients") {
  Generator generator(9);
  for (const bool channels_last : {false, true}) {
    INFO((channels_last ? "channels-last" : "NCHW"));
    Tensor x = Tensor::randn({3, 4, 7, 6}, DType::Float32, &generator);
    if (channels_last) x = x.channels_last();
    const Tensor weights = Tensor::randn({3, 10, 4, 3}, DType::Float32, &generator);
    const auto gradient_of = [&](const std::function<Tensor(const Tensor&)>& op) {
      Tensor leaf = x.detach().set_requires_grad(true);
      const Tensor y = op(leaf);
      sum(y * weights).backward();
      return std::pair{y, leaf.grad()};
    };
    const auto [fused, fused_grad] =
        gradient_of([](const Tensor& in) { return subsample_pad_channels(in, 2, 2, 4); });
    const auto [composed, composed_grad] = gradient_of([](const Tensor& in) {
      const Tensor kept = in.slice(2, 0, 7, 2).slice(3, 0, 6, 2);
      const auto zeros = [&](std::int64_t channels) {
        return Tensor::zeros({3, channels, 4, 3}, kept.dtype(), kept.device());
      };
      return cat({zeros(2), kept, zeros(4)}, 1);
    });
    CHECK(fused.is_channels_last() == channels_last);
    CHECK(values(fused) == values(composed));
    CHECK(values(fused_grad) == values(composed_grad));
  }
}

TEST_CASE("layers: BasicBlock with Projection adds a 1x1 conv and a BN on the shortcut") {
  Generator generator(4);
  BasicBlock block(4, 8, 2, generator, Shortcut::Projection);
  CHECK(block(Tensor::randn({2, 4, 8, 8}, DType::Float32, &generator)).shape() == Shape{2, 8, 4, 4});
  CHECK(names(block.named_parameters()) ==
        std::vector<std::string>{"conv1.weight", "bn1.weight", "bn1.bias", "conv2.weight", "bn2.weight",
                                 "bn2.bias", "shortcut.conv.weight", "shortcut.bn.weight",
                                 "shortcut.bn.bias"});
  CHECK(by_name(block.named_parameters()).at("shortcut.conv.weight").shape() == Shape{8, 4, 1, 1});
  CHECK(names(block.named_buffers()).back() == "shortcut.bn.running_var");
  CHECK(block.parameter_count() == 896 + 8 * 4 + 2 * 8);  // 944
  CHECK(block.describe() == "BasicBlock(4, 8, stride=2, shortcut=projection)");
}

TEST_CASE("layers: gradients reach every parameter of each kind of BasicBlock") {
  Generator generator(5);
  const Tensor x = Tensor::randn({2, 4, 6, 6}, DType::Float32, &generator);
  BasicBlock identity(4, 4, 1, generator);
  check_gradients_reach_every_parameter(identity, x, generator);
  BasicBlock padded(4, 8, 2, generator, Shortcut::PadIdentity);
  check_gradients_reach_every_parameter(padded, x, generator);
  BasicBlock projected(4, 8, 2, generator, Shortcut::Projection);
  check_gradients_reach_every_parameter(projected, x, generator);
}

TEST_CASE("layers: BasicBlock refuses a pad-identity shortcut that would drop channels") {
  Generator generator(6);
  CHECK_THROWS_WITH_AS(
      BasicBlock(8, 4, 1, generator, Shortcut::PadIdentity),
      doctest::Contains("BasicBlock(8, 4): the pad-identity shortcut cannot reduce channels"), kiln::Error);
  CHECK_NOTHROW(BasicBlock(8, 4, 1, generator, Shortcut::Projection));
  CHECK_THROWS_WITH_AS(BasicBlock(4, 4, 0, generator), doctest::Contains("BasicBlock: in_channels 4"),
                       kiln::Error);
}

TEST_CASE("layers: DepthwiseSeparable shapes, parameter names and hand-counted parameter count") {
  Generator generator(7);
  DepthwiseSeparable block(8, 16, 2, generator);
  const Tensor x = Tensor::randn({2, 8, 9, 9}, DType::Float32, &generator);
  const Tensor y = block(x);
  CHECK(y.shape() == Shape{2, 16, 5, 5});  // (9 + 2 - 3) / 2 + 1 = 5
  const std::vector<double> ys = values(y);
  CHECK(std::all_of(ys.begin(), ys.end(), [](double v) { return v >= 0.0; }));  // ends in ReLU
  CHECK(names(block.named_parameters()) == std::vector<std::string>{"depthwise.weight", "bn1.weight",
                                                                    "bn1.bias", "pointwise.weight",
                                                                    "bn2.weight", "bn2.bias"});
  const auto p = by_name(block.named_parameters());
  CHECK(p.at("depthwise.weight").shape() == Shape{8, 1, 3, 3});
  CHECK(p.at("pointwise.weight").shape() == Shape{16, 8, 1, 1});
  // depthwise 8*9 = 72, bn1 2*8 = 16, pointwise 16*8 = 128, bn2 2*16 = 32.
  CHECK(block.parameter_count() == 248);
  CHECK(DepthwiseSeparable(32, 64, 1, generator)(Tensor::zeros({1, 32, 7, 7})).shape() == Shape{1, 64, 7, 7});
  CHECK(block.describe() == "DepthwiseSeparable(8, 16, stride=2)");
  check_gradients_reach_every_parameter(block, x, generator);
}

TEST_CASE("layers: InvertedResidual shapes, names, hand-counted parameters, and when it adds its input") {
  Generator generator(8);
  InvertedResidual widened(8, 12, 2, 6, generator);
  const Tensor x = Tensor::randn({2, 8, 9, 9}, DType::Float32, &generator);
  CHECK(widened(x).shape() == Shape{2, 12, 5, 5});
  CHECK_FALSE(widened.residual());
  CHECK(names(widened.named_parameters()) ==
        std::vector<std::string>{"expand.weight", "bn0.weight", "bn0.bias", "depthwise.weight", "bn1.weight",
                                 "bn1.bias", "project.weight", "bn2.weight", "bn2.bias"});
  // h = 48: expand 8*48 = 384, bn0 96, depthwise 48*9 = 432, bn1 96, project 48*12 = 576, bn2 24.
  CHECK(widened.parameter_count() == 384 + 96 + 432 + 96 + 576 + 24);
  CHECK(widened.describe() == "InvertedResidual(8, 12, stride=2, expansion=6)");
  check_gradients_reach_every_parameter(widened, x, generator);

  InvertedResidual narrow(8, 8, 1, 1, generator);  // no expansion: the depthwise reads x itself
  CHECK(narrow.residual());
  CHECK(names(narrow.named_parameters()).front() == "depthwise.weight");
  CHECK(narrow.parameter_count() == 72 + 16 + 64 + 16);
  CHECK(narrow(x).shape() == x.shape());
  check_gradients_reach_every_parameter(narrow, x, generator);
  CHECK_THROWS_WITH_AS(InvertedResidual(8, 8, 1, 0, generator),
                       doctest::Contains("expansion 0 must be positive"), kiln::Error);
}

TEST_CASE("layers: InvertedResidual forward is bn2(project(relu6(bn1(dw(relu6(bn0(expand x))))))) + x") {
  Generator generator(9);
  InvertedResidual block(4, 4, 1, 3, generator);
  const Tensor x = Tensor::randn({2, 4, 5, 5}, DType::Float32, &generator) * 4.0;  // some values past 6
  const auto p = by_name(block.named_parameters());
  const auto expected = [&](const BatchNormOptions& norm) {
    const auto normalized = [&](const Tensor& t, const std::string& bn, std::int64_t channels) {
      return batch_norm2d(t, p.at(bn + ".weight"), p.at(bn + ".bias"), Tensor::zeros({channels}),
                          Tensor::ones({channels}), norm);
    };
    Tensor h = clamp(normalized(conv2d(x, p.at("expand.weight"), Tensor(), {}), "bn0", 12), 0.0, 6.0);
    h = clamp(normalized(conv2d(h, p.at("depthwise.weight"), Tensor(), {.padding = {1, 1}, .groups = 12}),
                         "bn1", 12),
              0.0, 6.0);
    return normalized(conv2d(h, p.at("project.weight"), Tensor(), {}), "bn2", 4) + x;
  };
  // Train mode: batch statistics (the running statistics passed above are moved, not read).
  CHECK(max_abs_difference(block(x), expected({.training = true})) < 1e-5);
  // Eval mode, on a block whose running statistics are still 0 and 1: each batch norm inside its
  // convolution's stores.
  InvertedResidual fresh(4, 4, 1, 3, generator);
  for (auto& [name, parameter] : fresh.named_parameters()) parameter.copy_(p.at(name));
  fresh.eval();
  NoGradGuard no_grad;
  CHECK(max_abs_difference(fresh(x), expected({.training = false})) < 1e-5);
}

namespace {

// The block from the ops: x * gate(conv(relu(conv(mean over H, W of x)))), 1x1 convolutions with biases.
Tensor squeeze_excitation(const Tensor& x, const Tensor& reduce_weight, const Tensor& reduce_bias,
                          const Tensor& expand_weight, const Tensor& expand_bias, SqueezeGate gate) {
  const Tensor means = mean(x, {2, 3}, true);
  const Tensor logits =
      conv2d(relu(conv2d(means, reduce_weight, reduce_bias, {})), expand_weight, expand_bias, {});
  return x * (gate == SqueezeGate::Sigmoid ? sigmoid(logits) : hardsigmoid(logits));
}

}  // namespace

TEST_CASE(
    "layers: MobileNetV3's InvertedResidual: hidden width, 5x5 kernel, hard swish, squeeze, described") {
  Generator generator(12);
  const InvertedResidualOptions options{.stride = 2,
                                        .hidden_channels = 20,
                                        .kernel = 5,
                                        .activation = BlockActivation::Hardswish,
                                        .squeeze_channels = 8};
  InvertedResidual block(6, 10, options, generator);
  const Tensor x = Tensor::randn({2, 6, 9, 9}, DType::Float32, &generator);
  CHECK(block(x).shape() == Shape{2, 10, 5, 5});  // padded by 2: ceil(9 / 2)
  CHECK(block.expands());
  CHECK(names(block.named_parameters()) ==
        std::vector<std::string>{"expand.weight", "bn0.weight", "bn0.bias", "depthwise.weight", "bn1.weight",
                                 "bn1.bias", "squeeze.reduce.weight", "squeeze.reduce.bias",
                                 "squeeze.expand.weight", "squeeze.expand.bias", "project.weight",
                                 "bn2.weight", "bn2.bias"});
  // expand 6*20, bn0 40, depthwise 20*25, bn1 40, squeeze 20*8 + 8 + 8*20 + 20, project 20*10, bn2 20.
  CHECK(block.parameter_count() == 120 + 40 + 500 + 40 + (160 + 8 + 160 + 20) + 200 + 20);
  CHECK(block.describe() == "InvertedResidual(6, 10, stride=2, hidden=20, kernel=5, hardswish, squeeze=8)");
  check_gradients_reach_every_parameter(block, x, generator);
  // A hidden width equal to the input's: no expansion, as expansion 1.
  InvertedResidual plain(6, 6, {.hidden_channels = 6, .activation = BlockActivation::Relu}, generator);
  CHECK_FALSE(plain.expands());
  CHECK(plain.residual());
  CHECK(plain.describe() == "InvertedResidual(6, 6, stride=1, hidden=6, relu)");
  CHECK_THROWS_WITH_AS(InvertedResidual(6, 6, {.kernel = 4}, generator), doctest::Contains("must be odd"),
                       kiln::Error);
}

TEST_CASE(
    "layers: MobileNetV3's InvertedResidual is bn2(project(se(act(bn1(dw(act(bn0(expand x)))))))) + x") {
  Generator generator(13);
  for (const BlockActivation activation : {BlockActivation::Hardswish, BlockActivation::Relu}) {
    CAPTURE(block_activation_name(activation));
    const InvertedResidualOptions options{
        .hidden_channels = 10, .kernel = 5, .activation = activation, .squeeze_channels = 3};
    InvertedResidual block(4, 4, options, generator);
    const Tensor x = Tensor::randn({2, 4, 6, 6}, DType::Float32, &generator) * 4.0;  // past the kinks at +-3
    const auto p = by_name(block.named_parameters());
    const auto act = [&](const Tensor& t) {
      return activation == BlockActivation::Hardswish ? hardswish(t) : relu(t);
    };
    const auto expected = [&](const BatchNormOptions& norm) {
      const auto normalized = [&](const Tensor& t, const std::string& bn, std::int64_t channels) {
        return batch_norm2d(t, p.at(bn + ".weight"), p.at(bn + ".bias"), Tensor::zeros({channels}),
                            Tensor::ones({channels}), norm);
      };
      Tensor h = act(normalized(conv2d(x, p.at("expand.weight"), Tensor(), {}), "bn0", 10));
      h = act(normalized(conv2d(h, p.at("depthwise.weight"), Tensor(), {.padding = {2, 2}, .groups = 10}),
                         "bn1", 10));
      h = squeeze_excitation(h, p.at("squeeze.reduce.weight"), p.at("squeeze.reduce.bias"),
                             p.at("squeeze.expand.weight"), p.at("squeeze.expand.bias"),
                             SqueezeGate::Hardsigmoid);
      return normalized(conv2d(h, p.at("project.weight"), Tensor(), {}), "bn2", 4) + x;
    };
    CHECK(max_abs_difference(block(x), expected({.training = true})) < 1e-5);
    InvertedResidual fresh(4, 4, options, generator);
    for (auto& [name, parameter] : fresh.named_parameters()) parameter.copy_(p.at(name));
    fresh.eval();
    NoGradGuard no_grad;
    CHECK(max_abs_difference(fresh(x), expected({.training = false})) < 1e-5);
  }
}

// ---- SqueezeExcitation -----------------------------------------------------------------------------------

TEST_CASE("layers: SqueezeExcitation shapes, names, hand-counted parameters and description") {
  Generator generator(10);
  SqueezeExcitation block(12, 3, SqueezeGate::Hardsigmoid, generator);
  CHECK(names(block.named_parameters()) ==
        std::vector<std::string>{"reduce.weight", "reduce.bias", "expand.weight", "expand.bias"});
  CHECK(block.parameter_count() == 12 * 3 + 3 + 3 * 12 + 12);
  CHECK(block.describe() == "SqueezeExcitation(12, squeeze=3, gate=hardsigmoid)");
  const Tensor x = Tensor::randn({2, 12, 5, 3}, DType::Float32, &generator);
  CHECK(block(x).shape() == x.shape());
  CHECK_THROWS_WITH_AS(block(Tensor::randn({2, 8, 5, 3}, DType::Float32, &generator)),
                       doctest::Contains("must be [N, 12, H, W]"), kiln::Error);
  CHECK_THROWS_WITH_AS(SqueezeExcitation(12, 0, SqueezeGate::Sigmoid, generator),
                       doctest::Contains("must be positive"), kiln::Error);
}

TEST_CASE("layers: SqueezeExcitation is x * gate(expand(relu(reduce(mean x)))), values and input gradient") {
  Generator generator(11);
  for (const SqueezeGate gate : {SqueezeGate::Sigmoid, SqueezeGate::Hardsigmoid}) {
    CAPTURE(squeeze_gate_name(gate));
    SqueezeExcitation block(6, 2, gate, generator);
    // Biases away from zero, so the hard sigmoid's gates fall on both its ramp and its flat ends.
    for (auto& [name, parameter] : block.named_parameters())
      parameter.copy_(Tensor::randn(parameter.shape(), DType::Float32, &generator) * 2.0);
    const auto p = by_name(block.named_parameters());
    Tensor x = Tensor::randn({3, 6, 4, 5}, DType::Float32, &generator);
    x.set_requires_grad();
    const Tensor weights = Tensor::randn({3, 6, 4, 5}, DType::Float32, &generator);
    const Tensor actual = block(x);
    sum(actual * weights).backward();
    const Tensor actual_grad = x.grad();
    x.zero_grad();
    const Tensor expected = squeeze_excitation(x, p.at("reduce.weight"), p.at("reduce.bias"),
                                               p.at("expand.weight"), p.at("expand.bias"), gate);
    sum(expected * weights).backward();
    CHECK(max_abs_difference(actual, expected) < 1e-6);
    CHECK(max_abs_difference(actual_grad, x.grad()) < 1e-6);
    check_gradients_reach_every_parameter(block, x.detach(), generator);
  }
}

// x feeds both the global average pool and the channel scale; the channel scale's gradient comes first, and
// the pool's backward adds its share into it (NeedsGrad::sum_into) rather than writing one for a separate
// add: the profile of the backward shows the accumulating pass and no add, in either layout.
TEST_CASE("layers: SqueezeExcitation's backward adds the pool's gradient into the channel scale's") {
  Generator generator(12);
  for (const bool channels_last : {false, true}) {
    CAPTURE(channels_last);
    SqueezeExcitation block(8, 2, SqueezeGate::Hardsigmoid, generator);  // fresh: no gradients to add to
    Tensor x = Tensor::randn({2, 8, 5, 5}, DType::Float32, &generator);
    if (channels_last) x = x.channels_last();
    x.set_requires_grad();
    const Tensor y = block(relu(x));  // an op's output, as in a network (a leaf's gradient sums elsewhere)
    profiler::Session session(Device::cpu());
    sum(y).backward();
    const profiler::Profile profile = session.finish();
    std::int64_t accumulating = 0, adds = 0;  // calls
    for (const profiler::OpTime& row : profile.ops) {
      if (row.op == "global_avg_pool2d_backward" && row.detail == "accumulating") accumulating += row.calls;
      if (row.op == "binary_forward" && row.detail == "add") adds += row.calls;
    }
    CHECK(accumulating == 1);
    CHECK(adds == 0);
    CHECK(x.grad().shape() == x.shape());
  }
}

TEST_CASE("layers: SqueezeExcitation's ops match finite differences, both gates") {
  using kiln::testing::random_input;
  for (const SqueezeGate gate : {SqueezeGate::Sigmoid, SqueezeGate::Hardsigmoid}) {
    CAPTURE(squeeze_gate_name(gate));
    const auto result = kiln::testing::gradcheck(
        [gate](const kiln::testing::Inputs& in) {
          return squeeze_excitation(in[0], in[1], in[2], in[3], in[4], gate);
        },
        {random_input({2, 4, 3, 3}, 1, -2.0, 2.0), random_input({2, 4, 1, 1}, 2), random_input({2}, 3),
         random_input({4, 2, 1, 1}, 4, -2.0, 2.0), random_input({4}, 5, -2.0, 2.0)});
    CHECK_MESSAGE(result.ok, result.message);
  }
}

}  // namespace layers_blocks_test
