// Channels-last tensors (Tensor::is_channels_last, Tensor::channels_last): the layout itself, that the CPU
// convolution, batch norm, pooling and elementwise ops keep it from input to output and from gradient to
// gradient,
// that a network fed channels-last computes what it computes on NCHW, and that the backward rules hold
// on it (finite differences in float64, through the reference kernels' channels-last loops).
#include <doctest/doctest.h>

#include <cmath>
#include <functional>
#include <utility>
#include <vector>

#include "core/generator.hpp"
#include "core/ops.hpp"
#include "core/raw.hpp"
#include "core/tensor.hpp"
#include "layers/blocks.hpp"
#include "tests/support/gradcheck.hpp"

namespace core_channels_last_test {

using namespace kiln;
using kiln::testing::gradcheck;
using kiln::testing::Inputs;
using kiln::testing::random_input;

namespace {

// The largest |a - b| over two tensors of one shape, read in logical order whatever their layouts.
double largest_difference(const Tensor& a, const Tensor& b) {
  REQUIRE(a.shape() == b.shape());
  const std::vector<double> x = a.to_vector<double>(), y = b.to_vector<double>();
  double largest = 0.0;
  for (std::size_t i = 0; i < x.size(); ++i) largest = std::max(largest, std::fabs(x[i] - y[i]));
  return largest;
}

}  // namespace

TEST_CASE("channels-last: the layout's strides, values and round trip") {
  const Tensor x = random_input({2, 3, 4, 5}, 1).to(DType::Float32);
  const Tensor last = x.channels_last();
  CHECK(last.is_channels_last());
  CHECK_FALSE(last.is_contiguous());
  CHECK(last.strides() == Strides{60, 1, 15, 3});
  CHECK(last.to_vector<float>() == x.to_vector<float>());
  CHECK(last.channels_last().same(last));  // already channels-last: no copy
  CHECK(last.contiguous().is_contiguous());
  CHECK(last.contiguous().to_vector<float>() == x.to_vector<float>());
  CHECK_FALSE(x.is_channels_last());
  // One channel, or one pixel: both layouts are the same memory.
  CHECK(Tensor::zeros({2, 1, 3, 3}).is_channels_last());
  CHECK(Tensor::zeros({2, 5, 1, 1}).is_channels_last());
}

TEST_CASE("channels-last: elementwise ops and cat keep the layout, and mixed operands take it") {
  const Tensor a = random_input({2, 3, 4, 5}, 8).to(DType::Float32),
               b = random_input({2, 3, 4, 5}, 9).to(DType::Float32);
  const Tensor a_last = a.channels_last(), b_last = b.channels_last();
  CHECK(relu(a_last).is_channels_last());
  CHECK(relu(a_last).to_vector<float>() == relu(a).to_vector<float>());
  for (const Tensor& sum : {a_last + b_last, a_last + b, a + b_last}) {
    CHECK(sum.is_channels_last());
    CHECK(sum.to_vector<float>() == (a + b).to_vector<float>());
  }
  CHECK_FALSE((a + b).is_channels_last());
  const Tensor joined = cat({a_last, Tensor::zeros({2, 2, 4, 5})}, 1);
  CHECK(joined.is_channels_last());
  CHECK(joined.to_vector<float>() == cat({a, Tensor::zeros({2, 2, 4, 5})}, 1).to_vector<float>());
}

// x * s with s [N, C, 1, 1] (a squeeze-and-excitation's scaling), and other broadcasts into a channels-last
// operand's shape: the product is channels-last and equals the NCHW one, float and bfloat16 (the vectorized
// kernels walk the channels), either operand order, and its gradients are those of the NCHW product.
TEST_CASE("channels-last: a broadcast into a channels-last operand's shape keeps the layout") {
  for (const DType dtype : {DType::Float32, DType::BFloat16}) {
    CAPTURE(dtype_name(dtype));
    const Tensor x = random_input({2, 24, 3, 5}, 10).to(dtype), s = random_input({2, 24, 1, 1}, 11).to(dtype);
    const Tensor row = random_input({5}, 12).to(dtype), x_last = x.channels_last();
    for (const auto& [actual, expected] :
         {std::pair{x_last * s, x * s}, std::pair{s * x_last, s * x}, std::pair{x_last - row, x - row}}) {
      CHECK(actual.is_channels_last());
      CHECK(actual.to_vector<double>() == expected.to_vector<double>());
    }
  }
  Tensor x = random_input({2, 24, 3, 5}, 13).to(DType::Float32).channels_last(),
         s = random_input({2, 24, 1, 1}, 14).to(DType::Float32);
  x.set_requires_grad();
  s.set_requires_grad();
  const Tensor weights = random_input({2, 24, 3, 5}, 15).to(DType::Float32);
  sum(x * s * weights).backward();
  const Tensor x_grad = x.grad(), s_grad = s.grad();
  Tensor x_nchw = x.contiguous().detach(), s_again = s.detach();
  x_nchw.set_requires_grad();
  s_again.set_requires_grad();
  sum(x_nchw * s_again * weights).backward();
  CHECK(largest_difference(x_grad, x_nchw.grad()) < 1e-6);
  CHECK(largest_difference(s_grad, s_again.grad()) < 1e-5);
}

// raw::add_in_place (the autograd engine's accumulation) into either layout, from a source in either layout
// or a strided view: the destination keeps its buffer and layout and holds the sum.
TEST_CASE("channels-last: add_in_place adds into either layout from any source") {
  const Tensor a = random_input({2, 3, 4, 5}, 31).to(DType::Float32);
  const Tensor b = random_input({2, 3, 4, 5}, 32).to(DType::Float32);
  const Tensor wide = random_input({2, 3, 4, 10}, 33).to(DType::Float32);
  const Tensor strided = wide.slice(3, 0, 10, 2);  // [2, 3, 4, 5], every other column
  const std::vector<float> expected_b = (a + b).to_vector<float>();
  const std::vector<float> expected_strided = (a + strided).to_vector<float>();
  for (const bool last : {false, true}) {
    for (const Tensor* source : {&b, &strided}) {
      INFO((last ? "channels-last" : "nchw"), " destination, ", (source == &b ? "dense" : "strided"),
           " source");
      const Tensor sources[] = {*source, source->channels_last()};
      for (const Tensor& from : sources) {
        const Tensor into = last ? a.clone().channels_last() : a.clone();  // a buffer of its own either way
        const float* before = into.data<float>();
        raw::add_in_place(into, from);
        CHECK(into.data<float>() == before);
        CHECK(into.is_channels_last() == last);
        CHECK(into.to_vector<float>() == (source == &b ? expected_b : expected_strided));
      }
    }
  }
}

TEST_CASE("channels-last: a ResNet block keeps the layout and computes what it computes on NCHW") {
  // 16 channels at 8x8, batch 8: Winograd takes the convolutions (channels-last itself), the vectorized
  // batch norm walks channels-last rows; the shortcut pads 8 -> 16 channels at stride 2 in the second case.
  for (const auto& [in_channels, stride] : {std::pair<std::int64_t, std::int64_t>{16, 1}, {8, 2}}) {
    INFO(in_channels, " -> 16 channels, stride ", stride);
    Generator generator(7);
    layers::BasicBlock block(in_channels, 16, stride, generator, layers::Shortcut::PadIdentity);
    const Tensor x = random_input({8, in_channels, 16, 16}, 2).to(DType::Float32);

    const auto run = [&](const Tensor& input) {
      for (Tensor& p : block.parameters()) p.zero_grad();
      Tensor leaf = input.detach().set_requires_grad(true);
      const Tensor y = block.forward(leaf);
      sum(y * y).backward();
      std::vector<Tensor> grads{leaf.grad()};
      for (const Tensor& p : block.parameters()) grads.push_back(p.grad());
      return std::pair{y, grads};
    };
    const auto [y_nchw, grads_nchw] = run(x);
    const auto [y_last, grads_last] = run(x.channels_last());
    if (stride == 2) {  // the padded shortcut of a subsampled view stays channels-last: no layout change
      layers::PadIdentityShortcut shortcut(in_channels, 16, stride);
      CHECK(shortcut.forward(x.channels_last()).is_channels_last());
    }
    CHECK(y_last.is_channels_last());
    CHECK_FALSE(y_nchw.is_channels_last());
    CHECK(largest_difference(y_last, y_nchw) <= 1e-4);
    for (std::size_t i = 0; i < grads_nchw.size(); ++i) {
      INFO("gradient ", i);
      CHECK(largest_difference(grads_last[i], grads_nchw[i]) <= 1e-3);
    }
  }
}

TEST_CASE("channels-last: conv2d -> batch norm -> relu backward against finite differences (float64)") {
  const Tensor x = random_input({2, 5, 6, 7}, 3), w = random_input({4, 5, 3, 3}, 4);
  const Tensor gamma = random_input({4}, 5, 0.5, 1.5), beta = random_input({4}, 6);
  const auto result = gradcheck(
      [](const Inputs& in) {
        const Tensor y =
            conv2d(in[0].channels_last(), in[1], Tensor(), {.stride = {1, 2}, .padding = {1, 1}});
        REQUIRE(y.is_channels_last());
        return relu(batch_norm2d(y, in[2], in[3], Tensor(), Tensor(), {.training = true}) + 0.1);
      },
      {x, w, gamma, beta});
  CHECK_MESSAGE(result.ok, result.message);
}

TEST_CASE(
    "channels-last: pooling keeps the layout, forward and backward, and computes what it computes on NCHW") {
  // Max pooling selects, and the max and average passes add in the reference's order in either layout: their
  // results are the NCHW ones bit for bit (float32, through the vectorized kernels where the CPU has them).
  // The global average sums float lanes differently per layout (a plane's run of positions NCHW, one lane per
  // channel channels-last): within float rounding of each other, and so is its gradient (2y / positions).
  const Tensor x = random_input({3, 19, 9, 10}, 8).to(DType::Float32);
  const std::vector<std::pair<const char*, std::function<Tensor(const Tensor&)>>> pools = {
      {"max 2x2",
       [](const Tensor& t) {
         return max_pool2d(t, {.kernel = {2, 2}});
       }},
      {"max 3x3 s2 p1",
       [](const Tensor& t) {
         return max_pool2d(t, {.kernel = {3, 3}, .stride = {2, 2}, .padding = {1, 1}});
       }},
      {"avg 3x3 s2 p1",
       [](const Tensor& t) {
         return avg_pool2d(t, {.kernel = {3, 3}, .stride = {2, 2}, .padding = {1, 1}});
       }},
      {"global avg", [](const Tensor& t) { return global_avg_pool2d(t); }},
  };
  for (const auto& [name, pool] : pools) {
    INFO(name);
    const auto run = [&](const Tensor& input) {
      Tensor leaf = input.detach().set_requires_grad(true);
      const Tensor y = pool(leaf);
      sum(y * y).backward();
      return std::pair{y, leaf.grad()};
    };
    const auto [y_nchw, gx_nchw] = run(x);
    const auto [y_last, gx_last] = run(x.channels_last());
    if (y_last.dim() == 4) CHECK(y_last.is_channels_last());
    const double tolerance = y_last.dim() == 2 ? 1e-6 : 0.0;
    CHECK(largest_difference(y_last, y_nchw) <= tolerance);
    CHECK(largest_difference(gx_last, gx_nchw) <= tolerance);
  }
  // A leaf's .grad is dense NCHW whatever the layout (autograd.cpp); the gradients the pools hand on are in
  // their forward's layout, whatever layout gy arrives in.
  const Tensor x_last = x.channels_last();
  const Pool2dOptions options{.kernel = {2, 2}};
  const raw::MaxPoolResult max = raw::max_pool2d_forward(x_last, options);
  CHECK(max.argmax.is_channels_last());
  const Tensor gy = Tensor::ones(max.output.shape());  // NCHW
  CHECK(raw::max_pool2d_backward(gy, max.argmax, x.shape(), options, true).is_channels_last());
  CHECK(raw::avg_pool2d_backward(gy, x.shape(), options, true).is_channels_last());
  CHECK(raw::global_avg_pool2d_backward(Tensor::ones({3, 19}), x.shape(), true).is_channels_last());
}

TEST_CASE("channels-last: max, average and global pooling backward against finite differences (float64)") {
  const Tensor x = random_input({2, 5, 7, 6}, 9);
  for (const Pool2dOptions& options :
       {Pool2dOptions{.kernel = {2, 2}},
        Pool2dOptions{.kernel = {3, 3}, .stride = {2, 2}, .padding = {1, 1}, .ceil_mode = true}}) {
    INFO("kernel ", options.kernel[0]);
    const auto result = gradcheck(
        [&](const Inputs& in) {
          const Tensor pooled = max_pool2d(in[0].channels_last(), options);
          REQUIRE(pooled.is_channels_last());
          const Tensor averaged = avg_pool2d(pooled, {.kernel = {2, 2}, .stride = {1, 1}, .padding = {1, 1}});
          REQUIRE(averaged.is_channels_last());
          return global_avg_pool2d(averaged * averaged);
        },
        {x});
    CHECK_MESSAGE(result.ok, result.message);
  }
}

}  // namespace core_channels_last_test
