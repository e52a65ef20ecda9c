// Tests for the bfloat16 reduction kernels (kernels/reduce/reduce.hpp) and bfloat16 dropout
// (kernels/dropout/dropout.hpp), at the kernel level and on bfloat16 tensors.
//
// Inputs are random floats rounded to bfloat16, so the float and double references see the same values.
//   Sum: the bfloat16 reference sums in double in the double reference's order and rounds once, so it must
//     equal the double reference rounded to bfloat16 bit for bit, and lie within 1 bfloat16 ulp of the float
//     reference rounded to bfloat16 (a double rounding through float).
//   Max / Min / argmax: no rounding anywhere, so exactly the float reference's element and index.
//   Dropout: p and the scale stay float, so bfloat16 keeps exactly float's elements; the mask is the float
//     scale rounded to bfloat16, and y is x times that mask rounded once to bfloat16 (what the backward's
//     gy * mask differentiates).
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "core/bfloat16.hpp"
#include "core/generator.hpp"
#include "core/ops.hpp"
#include "core/raw.hpp"
#include "core/tensor.hpp"
#include "kernels/dropout/dropout.hpp"
#include "kernels/reduce/reduce.hpp"
#include "tests/support/bfloat16_testing.hpp"
#include "tests/support/fast_kernel_testing.hpp"

namespace kernels_reduce_dropout_bf16_test {

namespace {

using namespace kiln;
using kernels::PhiloxState;
using kernels::ReduceGeometry;
using kernels::ReduceOp;
using testing::bfloat16_difference;
using testing::converted;
using testing::random_values;

constexpr Device kCpu = Device::cpu();
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

// ---- reduce ------------------------------------------------------------------------------------------

std::size_t output_size(const ReduceGeometry& g) { return static_cast<std::size_t>(g.outer * g.inner); }

// Odd geometries: a long row, columns, a reduced axis of 1, and an empty Sum.
const ReduceGeometry kGeometries[] = {{1, 1031, 1}, {3, 37, 5}, {7, 1, 3}, {2, 300, 1}, {4, 33, 9}};

TEST_CASE("bfloat16 Sum: the double reference rounded once; Max, Min, argmax: float's exact element") {
  for (const ReduceGeometry& g : kGeometries) {
    INFO("geometry [", g.outer, ", ", g.reduced, ", ", g.inner, "]");
    const std::vector<bfloat16> x = random_values<bfloat16>(g.outer * g.reduced * g.inner, 3, -8.0f, 8.0f);
    const std::size_t outputs = output_size(g);
    for (const ReduceOp op : {ReduceOp::Sum, ReduceOp::Max, ReduceOp::Min}) {
      INFO("op ", static_cast<int>(op));
      std::vector<bfloat16> y(outputs);
      kernels::reduce<bfloat16>(kCpu, op, g, x.data(), y.data());
      std::vector<double> y_double(outputs);
      std::vector<float> y_float(outputs);
      kernels::reference::reduce(op, g, converted<double>(x).data(), y_double.data());
      kernels::reference::reduce(op, g, converted<float>(x).data(), y_float.data());
      std::string difference = bfloat16_difference(y, converted<bfloat16>(y_double), 0);
      CHECK_MESSAGE(difference.empty(), "against the double reference: " << difference);
      difference = bfloat16_difference(y, converted<bfloat16>(y_float), op == ReduceOp::Sum ? 1 : 0);
      CHECK_MESSAGE(difference.empty(), "against the float reference: " << difference);
    }
    std::vector<std::int64_t> indices(outputs), float_indices(outputs);
    kernels::argmax<bfloat16>(kCpu, g, x.data(), indices.data());
    kernels::reference::argmax(g, converted<float>(x).data(), float_indices.data());
    CHECK(indices == float_indices);
  }
}

TEST_CASE("bfloat16 Sum accumulates in double: 1000 ones sum to 1000, not to 256") {
  // A bfloat16 accumulator stops at 256, where adding 1 is a tie that rounds back to 256.
  const std::vector<bfloat16> ones(1000, bfloat16(1.0));
  bfloat16 total;
  kernels::reduce<bfloat16>(kCpu, ReduceOp::Sum, {1, 1000, 1}, ones.data(), &total);
  CHECK(static_cast<float>(total) == 1000.0f);
  // An empty axis sums to 0.
  bfloat16 empty = bfloat16(5.0);
  kernels::reduce<bfloat16>(kCpu, ReduceOp::Sum, {1, 0, 1}, ones.data(), &empty);
  CHECK(empty.bits == 0);
}

TEST_CASE("bfloat16 Max / Min / argmax: NaN propagates and is found first; ties keep the first") {
  // Column [1, NaN, 3, NaN]: Max and Min are NaN, argmax the first NaN. Column [2, 5, 5, -inf]: ties.
  const std::vector<bfloat16> x = {bfloat16(1.0), bfloat16(2.0), bfloat16(kNaN), bfloat16(5.0),
                                   bfloat16(3.0), bfloat16(5.0), bfloat16(kNaN), bfloat16(-kInf)};
  const ReduceGeometry g{1, 4, 2};
  std::vector<bfloat16> y(2);
  kernels::reduce<bfloat16>(kCpu, ReduceOp::Max, g, x.data(), y.data());
  CHECK(std::isnan(y[0]));
  CHECK(static_cast<float>(y[1]) == 5.0f);
  kernels::reduce<bfloat16>(kCpu, ReduceOp::Min, g, x.data(), y.data());
  CHECK(std::isnan(y[0]));
  CHECK(static_cast<float>(y[1]) == -INFINITY);
  std::vector<std::int64_t> indices(2);
  kernels::argmax<bfloat16>(kCpu, g, x.data(), indices.data());
  CHECK(indices == std::vector<std::int64_t>{1, 1});
}

// A bfloat16 tensor of random bfloat16-exact values and the same values as float32.
std::pair<Tensor, Tensor> bf16_and_float(const Shape& shape, std::uint64_t seed) {
  const Tensor bf16 = Tensor::from_vector(random_values<bfloat16>(shape.numel(), seed, -8.0f, 8.0f), shape);
  return {bf16, raw::cast(bf16, DType::Float32)};
}

void check_tensor(const Tensor& bf16, const Tensor& reference, std::int64_t max_ulps) {
  CHECK(bf16.dtype() == DType::BFloat16);
  CHECK(bf16.shape() == reference.shape());
  const std::string difference = bfloat16_difference(
      bf16.to_vector<bfloat16>(), converted<bfloat16>(reference.to_vector<float>()), max_ulps);
  CHECK_MESSAGE(difference.empty(), difference);
}

TEST_CASE("bfloat16 tensors: sum, max, argmax and sum_to over axes against float32") {
  const auto [x, x_f] = bf16_and_float(Shape{5, 6, 7}, 71);
  const auto transposed = x.transpose(0, 2), transposed_f = x_f.transpose(0, 2);  // made dense first
  for (const std::vector<int>& axes : {std::vector<int>{}, {1}, {0, 2}, {-1}}) {
    for (const bool keepdim : {false, true}) {
      INFO("axes of size ", axes.size(), ", keepdim ", keepdim);
      // Float sums accumulate in double too, in another order: within 1 bfloat16 ulp once rounded.
      check_tensor(raw::reduce(ReduceOp::Sum, x, axes, keepdim),
                   raw::reduce(ReduceOp::Sum, x_f, axes, keepdim), 1);
      check_tensor(sum(transposed, axes, keepdim), sum(transposed_f, axes, keepdim), 1);
      check_tensor(raw::reduce(ReduceOp::Max, x, axes, keepdim),
                   raw::reduce(ReduceOp::Max, x_f, axes, keepdim), 0);
      check_tensor(raw::reduce(ReduceOp::Min, transposed, axes, keepdim),
                   raw::reduce(ReduceOp::Min, transposed_f, axes, keepdim), 0);
    }
  }
  CHECK(raw::argmax(x, 1, false).to_vector<std::int64_t>() ==
        raw::argmax(x_f, 1, false).to_vector<std::int64_t>());
  CHECK(raw::argmax(transposed, 2, true).to_vector<std::int64_t>() ==
        raw::argmax(transposed_f, 2, true).to_vector<std::int64_t>());
  check_tensor(raw::sum_to(x, Shape{6, 1}), raw::sum_to(x_f, Shape{6, 1}), 1);
}

// ---- dropout -----------------------------------------------------------------------------------------

// n bfloat16 values with NaN and infinities among them (a dropped NaN or infinity gives NaN: x * 0).
std::vector<bfloat16> dropout_input(std::int64_t n) {
  std::vector<bfloat16> x = random_values<bfloat16>(n, 81, -4.0f, 4.0f);
  const double specials[] = {kNaN, kInf, -kInf, -0.0};
  for (std::size_t i = 0; i < std::size(specials) && i < x.size(); ++i)
    x[(i * 7919) % x.size()] = bfloat16(specials[i]);
  return x;
}

TEST_CASE("bfloat16 dropout: float's mask, rounded; y is x times that mask rounded once") {
  const PhiloxState state{2718, 5, 3};
  for (const std::int64_t n : {0, 1, 5, 1031}) {
    for (const float p : {0.0f, 0.1f, 0.3f, 0.5f, 1.0f}) {
      INFO("n = ", n, ", p = ", p);
      const auto count = static_cast<std::size_t>(n);
      const std::vector<bfloat16> x = dropout_input(n);
      std::vector<bfloat16> y(count), mask(count);
      kernels::dropout_forward<bfloat16>(kCpu, n, p, state, x.data(), y.data(), mask.data());
      std::vector<float> y_float(count), mask_float(count);
      const std::vector<float> x_float = converted<float>(x);
      kernels::reference::dropout_forward(n, p, state, x_float.data(), y_float.data(), mask_float.data());

      std::string difference = bfloat16_difference(mask, converted<bfloat16>(mask_float), 0);
      CHECK_MESSAGE(difference.empty(), "mask: " << difference);
      // The product of two bfloat16 values is exact in double, so this is the exact product rounded once.
      std::vector<double> exact(count);
      for (std::size_t i = 0; i < count; ++i)
        exact[i] = static_cast<double>(x[i]) * static_cast<double>(mask[i]);
      difference = bfloat16_difference(y, converted<bfloat16>(exact), 0);
      CHECK_MESSAGE(difference.empty(), "y against the exact product: " << difference);
      difference = bfloat16_difference(y, converted<bfloat16>(y_float), 1);
      CHECK_MESSAGE(difference.empty(), "y against float's y: " << difference);
    }
  }
}

TEST_CASE("bfloat16 dropout: p = 0.1 scales forward and backward by the same mask, 1/0.9 in bfloat16") {
  // The float scale 1/0.9f = 1.1111112 is 1.109375 in bfloat16. For x = 1.03125 the products round apart:
  // x * 1.1111112 = 1.1458334 -> 1.1484375, while x * 1.109375 = 1.1440430 -> 1.140625. The forward must
  // use the second, the mask the backward's gy * mask multiplies by, so that its gradient is exact.
  const float p = 0.1f;
  const std::vector<bfloat16> x(64, bfloat16(1.03125));
  std::vector<bfloat16> y(64), mask(64);
  kernels::dropout_forward<bfloat16>(kCpu, 64, p, PhiloxState{1, 0, 0}, x.data(), y.data(), mask.data());
  std::int64_t kept = 0;
  for (std::size_t i = 0; i < 64; ++i) {
    INFO("element ", i);
    if (mask[i].bits == 0) {
      CHECK(y[i].bits == 0);
      continue;
    }
    ++kept;
    CHECK(static_cast<float>(mask[i]) == 1.109375f);  // what the backward's gy * mask scales by
    CHECK(static_cast<float>(y[i]) == 1.140625f);
  }
  CHECK(kept > 40);  // about 0.9 * 64 = 58 expected
}

TEST_CASE("bfloat16 tensors: dropout keeps float's elements; its gradient is gy * mask") {
  const auto [x0, x_f0] = bf16_and_float(Shape{3, 7, 11}, 91);
  Tensor x = x0, x_f = x_f0;
  x.set_requires_grad();
  x_f.set_requires_grad();
  Generator generator(42), generator_f(42);
  const raw::DropoutResult result = raw::dropout_forward(x, 0.25, generator);
  const raw::DropoutResult result_f = raw::dropout_forward(x_f, 0.25, generator_f);
  check_tensor(result.mask, result_f.mask, 0);  // 0 or 4/3 -> 1.3359375 in bfloat16
  check_tensor(result.output, result_f.output, 1);

  Generator again(42), again_f(42);
  const Tensor y = dropout(x, 0.25, true, &again), y_f = dropout(x_f, 0.25, true, &again_f);
  y.backward(Tensor::ones(y.shape(), DType::BFloat16));
  y_f.backward(Tensor::ones(y_f.shape()));
  check_tensor(x.grad(), x_f.grad(), 0);  // gy = 1: the gradient is the mask itself
}

}  // namespace

}  // namespace kernels_reduce_dropout_bf16_test
