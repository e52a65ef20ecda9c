// Tests for the reduction kernels (kernels/reduce/reduce.hpp): Sum / Max / Min and argmax over each axis of
// a hand-worked [2, 3, 2] tensor, the double accumulator of a float Sum, NaN propagation, ties, and the
// empty Sum.
#include "kernels/reduce/reduce.hpp"

#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "core/error.hpp"

namespace kernels_reduce_test {

namespace {

using kiln::Device;
using kiln::kernels::ReduceGeometry;
using kiln::kernels::ReduceOp;
namespace kernels = kiln::kernels;

constexpr Device kCpu = Device::cpu();

std::size_t output_size(const ReduceGeometry& g) { return static_cast<std::size_t>(g.outer * g.inner); }

template <typename T>
std::vector<T> run_reduce(ReduceOp op, const ReduceGeometry& g, const std::vector<T>& x) {
  std::vector<T> y(output_size(g));
  kernels::reduce<T>(kCpu, op, g, x.data(), y.data());
  return y;
}

template <typename T>
std::vector<std::int64_t> run_argmax(const ReduceGeometry& g, const std::vector<T>& x) {
  std::vector<std::int64_t> indices(output_size(g));
  kernels::argmax<T>(kCpu, g, x.data(), indices.data());
  return indices;
}

// x [2, 3, 2] in row-major order, chosen so no axis is sorted and signs are mixed:
//   x[0] = [[ 3, -1],      x[1] = [[ 2, 6],
//           [ 4,  1],              [-5, 3],
//           [-5,  9]]              [ 5, 8]]
template <typename T>
std::vector<T> mixed_tensor() {
  return {3, -1, 4, 1, -5, 9, 2, 6, -5, 3, 5, 8};
}

// What reducing one axis of the tensor above gives.
struct AxisCase {
  const char* axis;
  ReduceGeometry geometry;
  std::vector<double> sum, max, min;
  std::vector<std::int64_t> argmax;
};

std::vector<AxisCase> axis_cases() {
  return {
      // Axis 0 (outer 1, inner 6): pairs (3,2) (-1,6) (4,-5) (1,3) (-5,5) (9,8).
      {"axis 0",
       {1, 2, 6},
       {5, 5, -1, 4, 0, 17},
       {3, 6, 4, 3, 5, 9},
       {2, -1, -5, 1, -5, 8},
       {0, 1, 0, 1, 1, 0}},
      // Axis 1 (outer 2, inner 2): columns (3,4,-5) (-1,1,9) (2,-5,5) (6,3,8).
      {"axis 1", {2, 3, 2}, {2, 9, 2, 17}, {4, 9, 5, 8}, {-5, -1, -5, 3}, {1, 2, 2, 2}},
      // Axis 2 (outer 6, inner 1): pairs (3,-1) (4,1) (-5,9) (2,6) (-5,3) (5,8).
      {"axis 2",
       {6, 2, 1},
       {2, 5, 4, 8, -2, 13},
       {3, 4, 9, 6, 3, 8},
       {-1, 1, -5, 2, -5, 5},
       {0, 0, 1, 1, 1, 1}},
  };
}

template <typename T>
std::vector<T> as(const std::vector<double>& values) {
  return std::vector<T>(values.begin(), values.end());
}

}  // namespace

TEST_CASE_TEMPLATE("reduce: Sum, Max and Min over each axis of a hand-worked [2,3,2]", T, float, double) {
  const std::vector<T> x = mixed_tensor<T>();
  for (const AxisCase& c : axis_cases()) {
    INFO(c.axis);
    CHECK(run_reduce(ReduceOp::Sum, c.geometry, x) == as<T>(c.sum));
    CHECK(run_reduce(ReduceOp::Max, c.geometry, x) == as<T>(c.max));
    CHECK(run_reduce(ReduceOp::Min, c.geometry, x) == as<T>(c.min));
  }
}

TEST_CASE_TEMPLATE("argmax: over each axis of a hand-worked [2,3,2]", T, float, double) {
  const std::vector<T> x = mixed_tensor<T>();
  for (const AxisCase& c : axis_cases()) {
    INFO(c.axis);
    CHECK(run_argmax(c.geometry, x) == c.argmax);
  }
}

// [1e8, 1, -1e8] sums to 1. A float accumulator loses the 1 (float's spacing at 1e8 is 8, so 1e8 + 1
// rounds back to 1e8) and returns 0; the double accumulator keeps it.
TEST_CASE("reduce: a float Sum is accumulated in double") {
  const std::vector<float> x{1e8f, 1.0f, -1e8f};
  CHECK(run_reduce(ReduceOp::Sum, {1, 3, 1}, x) == std::vector<float>{1.0f});
}

// A NaN anywhere in a column, first, middle or last, makes that column's Max and Min NaN; the column
// without one is unaffected. Columns of x [1, 3, 4]: (NaN,1,2) (1,NaN,2) (1,2,NaN) (1,5,2).
TEST_CASE_TEMPLATE("reduce: Max and Min propagate NaN", T, float, double) {
  const T nan = std::numeric_limits<T>::quiet_NaN();
  const std::vector<T> x{nan, 1,   1,   1,  //
                         1,   nan, 2,   5,  //
                         2,   2,   nan, 2};
  for (const ReduceOp op : {ReduceOp::Max, ReduceOp::Min}) {
    INFO((op == ReduceOp::Max ? "Max" : "Min"));
    const std::vector<T> y = run_reduce(op, {1, 3, 4}, x);
    CHECK(std::isnan(y[0]));
    CHECK(std::isnan(y[1]));
    CHECK(std::isnan(y[2]));
    CHECK(y[3] == (op == ReduceOp::Max ? T(5) : T(1)));
  }
  // argmax points at the NaN, like Max: the first one when there are two.
  const std::vector<T> two_nans{1, nan, 3, nan};
  CHECK(run_argmax({1, 4, 1}, two_nans) == std::vector<std::int64_t>{1});
}

// Ties go to the first index: columns of x [2, 4, 2] are (2,5,5,1) (7,7,7,7) and (0,-1,0,-1) (3,1,3,3).
TEST_CASE("argmax: the first of tied largest values wins") {
  const std::vector<double> x{2, 7, 5,  7, 5, 7, 1,  7,  //
                              0, 3, -1, 1, 0, 3, -1, 3};
  CHECK(run_argmax({2, 4, 2}, x) == std::vector<std::int64_t>{1, 0, 0, 0});
}

TEST_CASE("reduce: reduced == 0 sums to 0, and reduced == 1 copies") {
  const std::vector<double> none;
  CHECK(run_reduce(ReduceOp::Sum, {2, 0, 3}, none) == std::vector<double>(6, 0.0));
  const std::vector<double> x{4, -2, 7, 1};
  for (const ReduceOp op : {ReduceOp::Sum, ReduceOp::Max, ReduceOp::Min}) {
    CHECK(run_reduce(op, {2, 1, 2}, x) == x);
  }
  CHECK(run_argmax({2, 1, 2}, x) == std::vector<std::int64_t>{0, 0, 0, 0});
}

// A long float Sum (100003 terms of 0.1f, an odd count) agrees with the exact double sum of the same
// float values to float precision; a float accumulator would be off by 1.4e-4 relative (9998.86).
TEST_CASE("reduce: a long float Sum matches the double sum of its terms") {
  const std::int64_t count = 100003;
  const std::vector<float> x(static_cast<std::size_t>(count), 0.1f);
  const double exact = static_cast<double>(0.1f) * static_cast<double>(count);
  const float y = run_reduce(ReduceOp::Sum, {1, count, 1}, x)[0];
  CHECK(y == doctest::Approx(exact).epsilon(1e-7));
}

}  // namespace kernels_reduce_test
