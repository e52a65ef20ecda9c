// Tests for the elementwise kernels (kernels/elementwise/elementwise.hpp): hand-worked values for every
// unary op, a finite-difference check of every unary backward, broadcasting binary ops over strided
// operands, strided copies with dtype conversion, and fill.
#include "kernels/elementwise/elementwise.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <numbers>
#include <vector>

#include "core/error.hpp"
#include "tests/support/buffer_gradcheck.hpp"

namespace kernels_elementwise_test {

namespace {

using kiln::testing::check_gradients_match;
using kiln::testing::numeric_gradient;
using kiln::testing::weighted_sum;

using kiln::Device;
using kiln::kernels::BinaryOp;
using kiln::kernels::UnaryOp;
using kiln::kernels::UnaryParams;
namespace kernels = kiln::kernels;

constexpr Device kCpu = Device::cpu();
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// How close a T result must be to a hand-worked double value, relative to max(1, |expected|). The
// reference rounds a double result once, so float is within half an ulp (6e-8).
template <typename T>
double tolerance() {
  return sizeof(T) == sizeof(float) ? 1e-6 : 1e-14;
}

template <typename T>
void check_close(const std::vector<T>& actual, const std::vector<double>& expected) {
  REQUIRE(actual.size() == expected.size());
  for (std::size_t i = 0; i < actual.size(); ++i) {
    INFO("element ", i, ": got ", actual[i], ", expected ", expected[i]);
    const double scale = std::max(1.0, std::abs(expected[i]));
    CHECK(std::abs(static_cast<double>(actual[i]) - expected[i]) <= tolerance<T>() * scale);
  }
}

template <typename T>
std::vector<T> run_unary_forward(UnaryOp op, const UnaryParams& params, const std::vector<double>& x) {
  const std::vector<T> input(x.begin(), x.end());
  std::vector<T> y(x.size());
  kernels::unary_forward<T>(kCpu, op, params, static_cast<std::int64_t>(x.size()), input.data(), y.data());
  return y;
}

std::vector<double> run_unary_backward(UnaryOp op, const UnaryParams& params, const std::vector<double>& x,
                                       const std::vector<double>& gy) {
  const std::vector<double> y = run_unary_forward<double>(op, params, x);
  std::vector<double> gx(x.size());
  kernels::unary_backward<double>(kCpu, op, params, static_cast<std::int64_t>(x.size()), x.data(), y.data(),
                                  gy.data(), gx.data());
  return gx;
}

// ---- binary and copy helpers -------------------------------------------------------------------------

std::int64_t element_count(const std::vector<std::int64_t>& sizes) {
  std::int64_t count = 1;
  for (const std::int64_t size : sizes) count *= size;
  return count;
}

// out = op(a, b) over `sizes`, each operand read through its own strides; out is dense.
template <typename T>
std::vector<T> run_binary_forward(BinaryOp op, const std::vector<std::int64_t>& sizes,
                                  const std::vector<double>& a, const std::vector<std::int64_t>& a_strides,
                                  const std::vector<double>& b, const std::vector<std::int64_t>& b_strides) {
  const std::vector<T> a_values(a.begin(), a.end()), b_values(b.begin(), b.end());
  std::vector<T> out(static_cast<std::size_t>(element_count(sizes)));
  kernels::binary_forward<T>(kCpu, op, static_cast<int>(sizes.size()), sizes.data(), a_values.data(),
                             a_strides.data(), b_values.data(), b_strides.data(), out.data());
  return out;
}

template <typename Src, typename Dst>
void run_copy_strided(const std::vector<std::int64_t>& sizes, const std::vector<Src>& src,
                      const std::vector<std::int64_t>& src_strides, std::vector<Dst>& dst,
                      const std::vector<std::int64_t>& dst_strides) {
  kernels::copy_strided<Src, Dst>(kCpu, static_cast<int>(sizes.size()), sizes.data(), src.data(),
                                  src_strides.data(), dst.data(), dst_strides.data());
}

}  // namespace

// ---- unary forward -----------------------------------------------------------------------------------

TEST_CASE_TEMPLATE("unary_forward: Neg, Exp, Log, Sqrt and Abs on hand-worked values", T, float, double) {
  const UnaryParams params;
  check_close(run_unary_forward<T>(UnaryOp::Neg, params, {-2, 0, 3.5}), {2, 0, -3.5});
  // e^0 = 1, e^1 = e, e^-1 = 1/e.
  check_close(run_unary_forward<T>(UnaryOp::Exp, params, {0, 1, -1}),
              {1, std::numbers::e, 1 / std::numbers::e});
  // ln 1 = 0, ln e = 1, ln 0.5 = -ln 2.
  check_close(run_unary_forward<T>(UnaryOp::Log, params, {1, std::numbers::e, 0.5}),
              {0, 1, -std::numbers::ln2});
  check_close(run_unary_forward<T>(UnaryOp::Sqrt, params, {0, 4, 2}), {0, 2, std::numbers::sqrt2});
  check_close(run_unary_forward<T>(UnaryOp::Abs, params, {-3, 0, 2.5}), {3, 0, 2.5});
}

TEST_CASE_TEMPLATE("unary_forward: Relu, LeakyRelu with alpha and Clamp with bounds", T, float, double) {
  check_close(run_unary_forward<T>(UnaryOp::Relu, {}, {-1, 0, 2}), {0, 0, 2});
  // alpha = 0.1: -2 -> -0.2, and positive values pass unchanged.
  check_close(run_unary_forward<T>(UnaryOp::LeakyRelu, {.alpha = 0.1}, {-2, 0, 3}), {-0.2, 0, 3});
  // The default alpha is 0.01: -5 -> -0.05.
  check_close(run_unary_forward<T>(UnaryOp::LeakyRelu, {}, {-5}), {-0.05});
  // [low, high] = [-1, 2]: below low -> -1, the bounds themselves stay, above high -> 2.
  const UnaryParams bounds{.low = -1, .high = 2};
  check_close(run_unary_forward<T>(UnaryOp::Clamp, bounds, {-3, -1, 0.5, 2, 5}), {-1, -1, 0.5, 2, 2});
}

TEST_CASE_TEMPLATE("unary_forward: Hardsigmoid and Hardswish on hand-worked values", T, float, double) {
  // relu6(x + 3) / 6: 0 up to -3, then a line through 1/2 at 0, 1 from 3 on.
  const std::vector<double> x{-4, -3, -1.5, 0, 1.5, 3, 5};
  check_close(run_unary_forward<T>(UnaryOp::Hardsigmoid, {}, x), {0, 0, 0.25, 0.5, 0.75, 1, 1});
  // x times that: 0 up to -3, x from 3 on; -1.5 / 4 and 1.5 * 3/4 between.
  check_close(run_unary_forward<T>(UnaryOp::Hardswish, {}, x), {0, 0, -0.375, 0, 1.125, 3, 5});
}

TEST_CASE_TEMPLATE("unary_forward: Sigmoid, Tanh, Gelu and Silu on hand-worked values", T, float, double) {
  const double ln3 = std::log(3.0), ln2 = std::numbers::ln2;
  // sigmoid(0) = 1/2; sigmoid(ln 3) = 1 / (1 + 1/3) = 3/4; sigmoid(-ln 3) = 1 / (1 + 3) = 1/4.
  check_close(run_unary_forward<T>(UnaryOp::Sigmoid, {}, {0, ln3, -ln3}), {0.5, 0.75, 0.25});
  // tanh(ln 2) = (2 - 1/2) / (2 + 1/2) = 0.6, and tanh is odd.
  check_close(run_unary_forward<T>(UnaryOp::Tanh, {}, {0, ln2, -ln2}), {0, 0.6, -0.6});
  // gelu(x) = x Phi(x): Phi(1) = 0.8413447460685429, Phi(-1) = 1 - Phi(1), Phi(2) = 0.9772498680518208.
  check_close(run_unary_forward<T>(UnaryOp::Gelu, {}, {0, 1, -1, 2}),
              {0, 0.8413447460685429, -(1 - 0.8413447460685429), 2 * 0.9772498680518208});
  // silu(x) = x sigmoid(x): ln 3 * 3/4 and -ln 3 * 1/4.
  check_close(run_unary_forward<T>(UnaryOp::Silu, {}, {0, ln3, -ln3}), {0, ln3 * 0.75, -ln3 * 0.25});
}

// e^1000 overflows double, so the naive 1 / (1 + e^-x) at x = -1000 would give 1 / inf = 0 by luck but
// e^x / (1 + e^x) at x = +1000 would give inf / inf = NaN. The kernel must pick the safe form on each side.
TEST_CASE_TEMPLATE("unary_forward: Sigmoid is finite and saturates at x = +-1000", T, float, double) {
  const std::vector<T> y = run_unary_forward<T>(UnaryOp::Sigmoid, {}, {1000, -1000});
  CHECK(y[0] == T(1));
  CHECK(y[1] == T(0));
  // The backward there is 0, not NaN: s (1 - s) with s exactly 0 or 1.
  const std::vector<T> x{1000, -1000}, gy{1, 1};
  std::vector<T> gx(2);
  kernels::unary_backward<T>(kCpu, UnaryOp::Sigmoid, {}, 2, x.data(), y.data(), gy.data(), gx.data());
  CHECK(gx[0] == T(0));
  CHECK(gx[1] == T(0));
}

TEST_CASE("unary_forward: Relu and Clamp let a NaN through") {
  CHECK(std::isnan(run_unary_forward<double>(UnaryOp::Relu, {}, {kNaN})[0]));
  CHECK(std::isnan(run_unary_forward<double>(UnaryOp::Clamp, {.low = -1, .high = 1}, {kNaN})[0]));
}

TEST_CASE("unary_forward: in place, y aliasing x") {
  std::vector<double> values{1, -2, 3};
  kernels::unary_forward<double>(kCpu, UnaryOp::Neg, {}, 3, values.data(), values.data());
  CHECK(values == std::vector<double>{-1, 2, -3});
}

// ---- unary backward ----------------------------------------------------------------------------------

// Every op at points away from its kinks (0 for Relu, LeakyRelu and Abs; the bounds +-1 for Clamp; -3 and 3
// for Hardsigmoid and Hardswish),
// inside Log's and Sqrt's domain, with a gradient gy that is not all ones.
TEST_CASE("unary_backward: every op matches finite differences of its forward") {
  const std::vector<double> anywhere{-1.7, -0.45, 0.3, 0.8, 1.9};
  const std::vector<double> positive{0.3, 0.8, 1.9, 2.6, 7.5};
  const std::vector<double> across_three{-4.2, -2.1, 0.3, 2.6, 3.8};  // either side of -3 and 3
  const std::vector<double> gy{0.7, -1.3, 0.4, 2.1, -0.6};
  struct Case {
    UnaryOp op;
    UnaryParams params;
    const std::vector<double>& points;
  };
  const Case cases[] = {
      {UnaryOp::Neg, {}, anywhere},
      {UnaryOp::Exp, {}, anywhere},
      {UnaryOp::Log, {}, positive},
      {UnaryOp::Sqrt, {}, positive},
      {UnaryOp::Abs, {}, anywhere},
      {UnaryOp::Relu, {}, anywhere},
      {UnaryOp::LeakyRelu, {.alpha = 0.2}, anywhere},
      {UnaryOp::Sigmoid, {}, anywhere},
      {UnaryOp::Tanh, {}, anywhere},
      {UnaryOp::Gelu, {}, anywhere},
      {UnaryOp::Silu, {}, anywhere},
      {UnaryOp::Hardsigmoid, {}, across_three},
      {UnaryOp::Hardswish, {}, across_three},
      {UnaryOp::Clamp, {.low = -1, .high = 1}, anywhere},  // -1.7 and 1.9 outside, the rest inside
  };
  for (const Case& c : cases) {
    INFO("op ", static_cast<int>(c.op));
    std::vector<double> x = c.points;
    const std::vector<double> analytic = run_unary_backward(c.op, c.params, x, gy);
    const std::vector<double> numeric =
        numeric_gradient(x, [&] { return weighted_sum(gy, run_unary_forward<double>(c.op, c.params, x)); });
    check_gradients_match(analytic, numeric);
  }
}

// The derivative's value at a kink is a convention the finite difference cannot check: Abs' and Relu's
// is 0 at 0, Clamp's is 0 on the bounds (1 only strictly inside), Hardsigmoid's 0 at -3 and 3 (1/6 only
// strictly between), Hardswish's 0 at -3 and 1 at 3 (the slopes outside).
TEST_CASE("unary_backward: kink conventions for Abs, Relu, LeakyRelu, Clamp, Hardsigmoid and Hardswish") {
  const std::vector<double> ones{1, 1, 1};
  CHECK(run_unary_backward(UnaryOp::Abs, {}, {-2, 0, 3}, ones) == std::vector<double>{-1, 0, 1});
  CHECK(run_unary_backward(UnaryOp::Relu, {}, {-2, 0, 3}, ones) == std::vector<double>{0, 0, 1});
  CHECK(run_unary_backward(UnaryOp::LeakyRelu, {.alpha = 0.1}, {-2, 0, 3}, ones) ==
        std::vector<double>{0.1, 0.1, 1});
  CHECK(run_unary_backward(UnaryOp::Clamp, {.low = -1, .high = 2}, {-1, 0.5, 2}, ones) ==
        std::vector<double>{0, 1, 0});
  CHECK(run_unary_backward(UnaryOp::Hardsigmoid, {}, {-3, 0, 3}, ones) == std::vector<double>{0, 1.0 / 6, 0});
  CHECK(run_unary_backward(UnaryOp::Hardswish, {}, {-3, 0, 3}, ones) == std::vector<double>{0, 0.5, 1});
}

TEST_CASE("unary_backward: float agrees with double") {
  const std::vector<double> x{-1.7, -0.45, 0.3, 0.8, 1.9};
  const std::vector<double> gy{0.7, -1.3, 0.4, 2.1, -0.6};
  for (const UnaryOp op : {UnaryOp::Exp, UnaryOp::Sigmoid, UnaryOp::Tanh, UnaryOp::Gelu, UnaryOp::Silu,
                           UnaryOp::Hardsigmoid, UnaryOp::Hardswish}) {
    INFO("op ", static_cast<int>(op));
    const std::vector<float> xf(x.begin(), x.end()), gyf(gy.begin(), gy.end());
    const std::vector<float> yf = run_unary_forward<float>(op, {}, x);
    std::vector<float> gxf(x.size());
    kernels::unary_backward<float>(kCpu, op, {}, 5, xf.data(), yf.data(), gyf.data(), gxf.data());
    const std::vector<double> gx = run_unary_backward(op, {}, x, gy);
    for (std::size_t i = 0; i < x.size(); ++i) CHECK(gxf[i] == doctest::Approx(gx[i]).epsilon(1e-5));
  }
}

// ---- binary ------------------------------------------------------------------------------------------

// a = [2, -3, 4, 1], b = [4, 2, 0.5, 1], both dense rank 1.
TEST_CASE_TEMPLATE("binary_forward: every op on hand-worked pairs", T, float, double) {
  const std::vector<double> a{2, -3, 4, 1}, b{4, 2, 0.5, 1};
  const auto run = [&](BinaryOp op) { return run_binary_forward<T>(op, {4}, a, {1}, b, {1}); };
  check_close(run(BinaryOp::Add), {6, -1, 4.5, 2});
  check_close(run(BinaryOp::Sub), {-2, -5, 3.5, 0});
  check_close(run(BinaryOp::Mul), {8, -6, 2, 1});
  check_close(run(BinaryOp::Div), {0.5, -1.5, 8, 1});
  check_close(run(BinaryOp::Pow), {16, 9, 2, 1});  // 2^4, (-3)^2, 4^0.5, 1^1
  check_close(run(BinaryOp::Maximum), {4, 2, 4, 1});
  check_close(run(BinaryOp::Minimum), {2, -3, 0.5, 1});
  check_close(run(BinaryOp::Equal), {0, 0, 0, 1});
  check_close(run(BinaryOp::Greater), {0, 0, 1, 0});
  check_close(run(BinaryOp::AddRelu), {6, 0, 4.5, 2});  // relu of Add's row
}

// a [2, 3] = [[1, 2, 3], [4, 5, 6]] dense; b [3] = [10, 20, 30] broadcast over rows by a stride-0 row axis.
TEST_CASE_TEMPLATE("binary_forward: [2,3] with [3] broadcast through stride 0", T, float, double) {
  const std::vector<double> a{1, 2, 3, 4, 5, 6}, b{10, 20, 30};
  check_close(run_binary_forward<T>(BinaryOp::Add, {2, 3}, a, {3, 1}, b, {0, 1}), {11, 22, 33, 14, 25, 36});
  check_close(run_binary_forward<T>(BinaryOp::Sub, {2, 3}, b, {0, 1}, a, {3, 1}), {9, 18, 27, 6, 15, 24});
}

// a [2, 1] = [[1], [2]] and b [1, 3] = [[10, 20, 30]] broadcast to [2, 3]: an outer product.
TEST_CASE_TEMPLATE("binary_forward: [2,1] with [1,3] broadcasts both ways", T, float, double) {
  const std::vector<double> a{1, 2}, b{10, 20, 30};
  check_close(run_binary_forward<T>(BinaryOp::Mul, {2, 3}, a, {1, 0}, b, {0, 1}), {10, 20, 30, 20, 40, 60});
}

// a is stored [3, 2] = [[1, 2], [3, 4], [5, 6]] and read as its transpose [2, 3] = [[1, 3, 5], [2, 4, 6]]
// (strides {1, 2}); b [2, 3] = [[0, 1, 2], [3, 4, 5]] dense. Then rank 3: a [2, 2, 2] = 0..7 dense plus a
// scalar b broadcast along every axis (all strides 0), which walks every carry of the odometer.
TEST_CASE("binary_forward: transposed operand and a rank-3 walk with a broadcast scalar") {
  const std::vector<double> stored{1, 2, 3, 4, 5, 6}, b{0, 1, 2, 3, 4, 5};
  CHECK(run_binary_forward<double>(BinaryOp::Sub, {2, 3}, stored, {1, 2}, b, {3, 1}) ==
        std::vector<double>{1, 2, 3, -1, 0, 1});
  const std::vector<double> cube{0, 1, 2, 3, 4, 5, 6, 7}, scalar{100};
  CHECK(run_binary_forward<double>(BinaryOp::Add, {2, 2, 2}, cube, {4, 2, 1}, scalar, {0, 0, 0}) ==
        std::vector<double>{100, 101, 102, 103, 104, 105, 106, 107});
}

TEST_CASE("binary_forward: rank 0 is one element, and a zero size writes nothing") {
  const std::vector<double> a{3}, b{4};
  CHECK(run_binary_forward<double>(BinaryOp::Mul, {}, a, {}, b, {}) == std::vector<double>{12});
  CHECK(run_binary_forward<double>(BinaryOp::Mul, {2, 0}, a, {0, 0}, b, {0, 0}).empty());
}

TEST_CASE("binary_forward: Maximum and Minimum propagate NaN from either side") {
  const std::vector<double> a{kNaN, 1, 2}, b{1, kNaN, 3};
  for (const BinaryOp op : {BinaryOp::Maximum, BinaryOp::Minimum}) {
    const std::vector<double> out = run_binary_forward<double>(op, {3}, a, {1}, b, {1});
    CHECK(std::isnan(out[0]));
    CHECK(std::isnan(out[1]));
    CHECK(out[2] == (op == BinaryOp::Maximum ? 3 : 2));
  }
}

// a += b with a [2, 3] dense and b [3] broadcast: out aliases a with the same layout.
TEST_CASE("binary_forward: in place, out aliasing a") {
  std::vector<double> a{1, 2, 3, 4, 5, 6};
  const std::vector<double> b{10, 20, 30};
  const std::int64_t sizes[] = {2, 3}, a_strides[] = {3, 1}, b_strides[] = {0, 1};
  kernels::binary_forward<double>(kCpu, BinaryOp::Add, 2, sizes, a.data(), a_strides, b.data(), b_strides,
                                  a.data());
  CHECK(a == std::vector<double>{11, 22, 33, 14, 25, 36});
}

// ---- copy_strided ------------------------------------------------------------------------------------

// src stored [3, 2] = [[1, 2], [3, 4], [5, 6]]; its transpose [2, 3] (strides {1, 2}) made dense is
// [[1, 3, 5], [2, 4, 6]].
TEST_CASE("copy_strided: a transposed view into a dense destination") {
  const std::vector<double> src{1, 2, 3, 4, 5, 6};
  std::vector<double> dst(6);
  run_copy_strided<double, double>({2, 3}, src, {1, 2}, dst, {3, 1});
  CHECK(dst == std::vector<double>{1, 3, 5, 2, 4, 6});
}

// src [2, 3] = 1..6 dense written into every second column of a [2, 8] buffer (dst strides {8, 2}); the
// other 10 elements keep their -1.
TEST_CASE("copy_strided: into a strided destination leaves the gaps alone") {
  const std::vector<float> src{1, 2, 3, 4, 5, 6};
  std::vector<float> dst(16, -1.0f);
  run_copy_strided<float, float>({2, 3}, src, {3, 1}, dst, {8, 2});
  CHECK(dst == std::vector<float>{1, -1, 2, -1, 3, -1, -1, -1, 4, -1, 5, -1, 6, -1, -1, -1});
}

// src [2, 3, 4] dense with x[i, j, k] = 100 i + 10 j + k, permuted to [4, 2, 3] (axes k, i, j; strides
// {1, 12, 4}): the walk carries through all three dimensions.
TEST_CASE("copy_strided: a rank-3 permutation") {
  std::vector<std::int64_t> src(24);
  for (std::int64_t i = 0; i < 2; ++i)
    for (std::int64_t j = 0; j < 3; ++j)
      for (std::int64_t k = 0; k < 4; ++k)
        src[static_cast<std::size_t>(i * 12 + j * 4 + k)] = 100 * i + 10 * j + k;
  std::vector<std::int64_t> dst(24, -1);
  run_copy_strided<std::int64_t, std::int64_t>({4, 2, 3}, src, {1, 12, 4}, dst, {6, 3, 1});
  for (std::int64_t k = 0; k < 4; ++k)
    for (std::int64_t i = 0; i < 2; ++i)
      for (std::int64_t j = 0; j < 3; ++j) {
        INFO("k=", k, " i=", i, " j=", j);
        CHECK(dst[static_cast<std::size_t>(k * 6 + i * 3 + j)] == 100 * i + 10 * j + k);
      }
}

TEST_CASE("copy_strided: uint8 to float and double is exact over the whole range") {
  const std::vector<std::uint8_t> src{0, 1, 127, 128, 254, 255};
  std::vector<float> as_float(6);
  std::vector<double> as_double(6);
  run_copy_strided<std::uint8_t, float>({6}, src, {1}, as_float, {1});
  run_copy_strided<std::uint8_t, double>({6}, src, {1}, as_double, {1});
  CHECK(as_float == std::vector<float>{0, 1, 127, 128, 254, 255});
  CHECK(as_double == std::vector<double>{0, 1, 127, 128, 254, 255});
}

TEST_CASE("copy_strided: floating to int64 truncates toward zero; int64 copies exactly") {
  const std::vector<double> src{2.7, -2.7, 0.5, -0.5};
  std::vector<std::int64_t> dst(4);
  run_copy_strided<double, std::int64_t>({4}, src, {1}, dst, {1});
  CHECK(dst == std::vector<std::int64_t>{2, -2, 0, 0});
  // 2^62 + 1 has no double or float representation, so it survives only if int64 -> int64 stays integral.
  const std::vector<std::int64_t> big{(std::int64_t{1} << 62) + 1};
  std::vector<std::int64_t> big_copy(1);
  run_copy_strided<std::int64_t, std::int64_t>({1}, big, {1}, big_copy, {1});
  CHECK(big_copy[0] == (std::int64_t{1} << 62) + 1);
}

// A stride-0 source broadcasts one row to [2, 3]; rank 0 copies one element.
TEST_CASE("copy_strided: broadcast source and rank 0") {
  const std::vector<float> row{1, 2, 3};
  std::vector<double> dst(6);
  run_copy_strided<float, double>({2, 3}, row, {0, 1}, dst, {3, 1});
  CHECK(dst == std::vector<double>{1, 2, 3, 1, 2, 3});
  const std::vector<std::int64_t> scalar{42};
  std::vector<float> one(1);
  run_copy_strided<std::int64_t, float>({}, scalar, {}, one, {});
  CHECK(one[0] == 42.0f);
}

namespace {
// [1, 2, 3] read through a stride of 2 from [1, x, 2, x, 3] and written dense: checks that the pair is
// instantiated (a missing one fails to link) and converts small integers exactly.
template <typename Src, typename Dst>
void check_copy_pair() {
  const std::vector<Src> src{Src(1), Src(9), Src(2), Src(9), Src(3)};
  std::vector<Dst> dst(3);
  run_copy_strided<Src, Dst>({3}, src, {2}, dst, {1});
  CHECK(dst == std::vector<Dst>{Dst(1), Dst(2), Dst(3)});
}
}  // namespace

TEST_CASE("copy_strided: every instantiated dtype pair") {
  check_copy_pair<float, float>();
  check_copy_pair<float, double>();
  check_copy_pair<float, std::int64_t>();
  check_copy_pair<double, float>();
  check_copy_pair<double, double>();
  check_copy_pair<double, std::int64_t>();
  check_copy_pair<std::int64_t, float>();
  check_copy_pair<std::int64_t, double>();
  check_copy_pair<std::int64_t, std::int64_t>();
  check_copy_pair<std::uint8_t, float>();
  check_copy_pair<std::uint8_t, double>();
}

// ---- fill --------------------------------------------------------------------------------------------

TEST_CASE_TEMPLATE("fill: writes value to exactly n elements", T, float, double, std::int64_t) {
  std::vector<T> out(5, T(-1));
  kernels::fill<T>(kCpu, 4, T(7), out.data());
  CHECK(out == std::vector<T>{7, 7, 7, 7, -1});
}

}  // namespace kernels_elementwise_test
