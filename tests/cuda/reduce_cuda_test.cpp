// The CUDA reductions (kernels/reduce/cuda_reduce.cu), called through the dispatch functions with
// Device::cuda(), against the reference kernels on the same host data, for each shape of work the kernels
// choose between (rows with a warp or a block each, split rows, columns, split columns); and the
// Tensor-level raw::reduce and raw::argmax on CUDA tensors against the CPU. Skipped, with a message,
// without a GPU.
//
// Max, Min and argmax must give exactly the reference's element (first NaN, else first extreme); Sum adds
// in another order (a tree, in double) and is compared under a tolerance.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

#include "core/raw.hpp"
#include "core/tensor.hpp"
#include "kernels/cuda_grid.hpp"
#include "kernels/reduce/reduce.hpp"
#include "tests/support/cuda_testing.hpp"
#include "tests/support/matches_reference.hpp"

namespace cuda_reduce_cuda_test {

namespace {

using namespace kiln;
using kernels::ReduceGeometry;
using kernels::ReduceOp;
using testing::first_difference;
using testing::Tolerance;

// Sum's tolerance. Both sides accumulate in double; only the order of the additions differs. For float
// the double sums then round to the same float, or to a neighbour when they straddle a rounding boundary
// (one float ulp, 6e-8 relative). For double the two orders differ by the rounding of partial sums: for
// 100,000 terms of magnitude <= 1, whose partial sums stay below ~1000, well under 1e-9 absolute.
// bfloat16 rounds the double sums the same way: to the same bfloat16 or a neighbour (one bfloat16 ulp, at
// most 2^-7 = 7.8e-3 relative); the absolute part covers sums that cancel to near 0.
template <typename T>
Tolerance sum_tolerance() {
  if constexpr (std::is_same_v<T, bfloat16>) return Tolerance{1e-9, 8e-3};
  return std::is_same_v<T, float> ? Tolerance{1e-6, 1e-6} : Tolerance{1e-9, 1e-12};
}

// The values as float for first_difference, which compares NaN as NaN and zeros by sign only for the
// standard floating types (bfloat16 widens exactly); other types unchanged.
template <typename T>
auto comparable(const std::vector<T>& values) {
  if constexpr (std::is_same_v<T, bfloat16>)
    return std::vector<float>(values.begin(), values.end());
  else
    return values;
}

// Values uniform in [-1, 1), quantized to multiples of 1/8 so that many are equal (argmax must take the
// first of equal maxima, Max / Min either, which are the same value), with signed zeros among them.
template <typename T>
std::vector<T> tied_values(std::int64_t n, std::uint64_t seed) {
  std::mt19937_64 engine(seed);
  std::uniform_int_distribution<int> eighths(-8, 7);
  std::vector<T> values(static_cast<std::size_t>(n));
  for (T& v : values) {
    const int k = eighths(engine);
    v = k == 0 && engine() % 2 ? T(-0.0) : static_cast<T>(k / 8.0);
  }
  return values;
}

// Values uniform in [-1, 1), all distinct in practice: the sums' inputs.
template <typename T>
std::vector<T> spread_values(std::int64_t n, std::uint64_t seed) {
  std::mt19937_64 engine(seed);
  std::uniform_real_distribution<double> uniform(-1.0, 1.0);
  std::vector<T> values(static_cast<std::size_t>(n));
  for (T& v : values) v = static_cast<T>(uniform(engine));
  return values;
}

std::string describe(const ReduceGeometry& g) {
  std::ostringstream text;
  text << "[outer " << g.outer << ", reduced " << g.reduced << ", inner " << g.inner << "]";
  return text.str();
}

// Sum of `x` over g on the device, against the reference.
template <typename T>
void check_sum(const ReduceGeometry& g, const std::vector<T>& x) {
  const std::int64_t outputs = g.outer * g.inner;
  std::vector<T> expected(static_cast<std::size_t>(outputs));
  kernels::reference::reduce(ReduceOp::Sum, g, x.data(), expected.data());
  const Tensor x_gpu = testing::to_gpu(x), y_gpu = testing::empty_gpu<T>(outputs);
  kernels::reduce(Device::cuda(), ReduceOp::Sum, g, x_gpu.data<T>(), y_gpu.data<T>());
  const std::vector<T> actual = testing::to_host<T>(y_gpu);
  const auto report = testing::matches_reference(actual.data(), expected.data(), outputs, sum_tolerance<T>());
  CHECK_MESSAGE(report.ok, report.message);
}

// Max, Min and argmax of `x` over g on the device: exactly the reference's.
template <typename T>
void check_extremes(const ReduceGeometry& g, const std::vector<T>& x) {
  const std::int64_t outputs = g.outer * g.inner;
  const Tensor x_gpu = testing::to_gpu(x);
  for (const ReduceOp op : {ReduceOp::Max, ReduceOp::Min}) {
    INFO((op == ReduceOp::Max ? "max" : "min"));
    std::vector<T> expected(static_cast<std::size_t>(outputs));
    kernels::reference::reduce(op, g, x.data(), expected.data());
    const Tensor y_gpu = testing::empty_gpu<T>(outputs);
    kernels::reduce(Device::cuda(), op, g, x_gpu.data<T>(), y_gpu.data<T>());
    const std::string difference =
        first_difference(comparable(testing::to_host<T>(y_gpu)), comparable(expected));
    CHECK_MESSAGE(difference.empty(), difference);
  }
  INFO("argmax");
  std::vector<std::int64_t> expected(static_cast<std::size_t>(outputs));
  kernels::reference::argmax(g, x.data(), expected.data());
  const Tensor indices_gpu = testing::empty_gpu<std::int64_t>(outputs);
  kernels::argmax(Device::cuda(), g, x_gpu.data<T>(), indices_gpu.data<std::int64_t>());
  const std::string difference = first_difference(testing::to_host<std::int64_t>(indices_gpu), expected);
  CHECK_MESSAGE(difference.empty(), difference);
}

// Puts NaNs into x: into every 5th output's column at two places (so the first must win), and into the
// last column at its last element.
template <typename T>
void add_nans(const ReduceGeometry& g, std::vector<T>& x) {
  if (x.empty()) return;
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const auto at = [&](std::int64_t o, std::int64_t r, std::int64_t i) -> T& {
    return x[static_cast<std::size_t>((o * g.reduced + r) * g.inner + i)];
  };
  for (std::int64_t o = 0; o < g.outer; ++o) {
    for (std::int64_t i = 0; i < g.inner; ++i) {
      if ((o * g.inner + i) % 5 != 2) continue;
      at(o, g.reduced * 2 / 3, i) = static_cast<T>(nan);
      at(o, g.reduced * 5 / 6, i) = static_cast<T>(-nan);
    }
  }
  at(g.outer - 1, g.reduced - 1, g.inner - 1) = static_cast<T>(nan);
}

// The geometries, named by the kernels they take (cuda_reduce.cu): rows (inner == 1, reduced >= 32) go
// to a warp per row up to 1024 elements, else a block per row, split into chunks when the rows are too few
// to fill the GPU; everything else is columns, split when the outputs are too few.
std::vector<ReduceGeometry> geometries() {
  return {
      {1, 1, 1},        // one element
      {10, 1, 1},       // reduced == 1, rows
      {2, 1, 5},        // reduced == 1, columns
      {7, 31, 1},       // short rows: the column kernel
      {5, 32, 1},       // a warp per row, exactly one element per lane
      {9, 1000, 1},     // a warp per row, partial last step
      {3, 1025, 1},     // a block per row
      {3, 20000, 1},    // a block per chunk of a row: 3 rows are too few
      {1, 100000, 1},   // one long row (a full sum): split into chunks
      {2000, 5000, 1},  // enough rows: a block each, no split
      {4, 9, 33},       // columns, inner not a multiple of 32
      {1, 257, 256},    // columns
      {1, 100000, 3},   // few long columns: split
      {3, 4000, 70},    // columns, split
      {1, 5, 1000003},  // many short columns
  };
}

TEST_CASE("cuda: sums match the reference for each shape of work, float and double") {
  if (!testing::have_gpu()) return;
  for (const ReduceGeometry& g : geometries()) {
    INFO(describe(g));
    const std::int64_t n = g.outer * g.reduced * g.inner;
    check_sum<float>(g, spread_values<float>(n, 1));
    check_sum<double>(g, spread_values<double>(n, 2));
  }
}

TEST_CASE("cuda: max, min and argmax equal the reference's, with ties, signed zeros and NaNs") {
  if (!testing::have_gpu()) return;
  for (const ReduceGeometry& g : geometries()) {
    INFO(describe(g));
    const std::int64_t n = g.outer * g.reduced * g.inner;
    std::vector<float> x_float = tied_values<float>(n, 3);
    std::vector<double> x_double = tied_values<double>(n, 4);
    check_extremes(g, x_float);
    check_extremes(g, x_double);
    add_nans(g, x_float);
    add_nans(g, x_double);
    INFO("with NaNs");
    check_extremes(g, x_float);
    check_extremes(g, x_double);
  }
}

TEST_CASE("cuda: bfloat16 sums, max, min and argmax match the bfloat16 reference for each shape of work") {
  if (!testing::have_gpu()) return;
  for (const ReduceGeometry& g : geometries()) {
    INFO(describe(g), ", bfloat16");
    const std::int64_t n = g.outer * g.reduced * g.inner;
    check_sum<bfloat16>(g, spread_values<bfloat16>(n, 1));
    std::vector<bfloat16> x = tied_values<bfloat16>(n, 3);
    check_extremes(g, x);
    add_nans(g, x);
    INFO("with NaNs");
    check_extremes(g, x);
  }
  // A long row of ones: a bfloat16 accumulator would stop at 256; the double one reaches 100000, which
  // rounds to the bfloat16 99840.
  const ReduceGeometry row{1, 100000, 1};
  const Tensor ones = Tensor::ones(Shape{row.reduced}, DType::BFloat16, Device::cuda());
  const Tensor total = testing::empty_gpu<bfloat16>(1);
  kernels::reduce(Device::cuda(), ReduceOp::Sum, row, ones.data<bfloat16>(), total.data<bfloat16>());
  CHECK(static_cast<float>(testing::to_host<bfloat16>(total)[0]) == 99840.0f);
}

TEST_CASE("cuda: the first maximum wins across a long row's chunks") {
  if (!testing::have_gpu()) return;
  // One row of 100000 (split into chunks): the maximum 5 appears in several chunks, +inf nowhere, and
  // the answer is its first place; then -inf everywhere except two equal maxima far apart.
  const ReduceGeometry g{1, 100000, 1};
  std::vector<float> x = spread_values<float>(g.reduced, 5);
  for (const std::int64_t at : {99999, 61234, 50001, 12345, 88888}) x[static_cast<std::size_t>(at)] = 5.0f;
  check_extremes(g, x);
  std::vector<double> y(static_cast<std::size_t>(g.reduced), -std::numeric_limits<double>::infinity());
  y[77777] = 0.0;
  y[3] = -0.0;
  check_extremes(g, y);
}

TEST_CASE("cuda: empty reductions") {
  if (!testing::have_gpu()) return;
  // reduced == 0: Sum writes zeros.
  const ReduceGeometry g{3, 0, 4};
  const Tensor x_gpu = testing::empty_gpu<float>(0), y_gpu = testing::empty_gpu<float>(12);
  kernels::reduce(Device::cuda(), ReduceOp::Sum, g, x_gpu.data<float>(), y_gpu.data<float>());
  CHECK(testing::to_host<float>(y_gpu) == std::vector<float>(12, 0.0f));
  // Max over an empty axis is an error, not a read past the end.
  CHECK_THROWS_AS(kernels::reduce(Device::cuda(), ReduceOp::Max, g, x_gpu.data<float>(), y_gpu.data<float>()),
                  Error);
  // No outputs: nothing runs.
  CHECK_NOTHROW(kernels::reduce(Device::cuda(), ReduceOp::Max, ReduceGeometry{0, 5, 3}, x_gpu.data<float>(),
                                y_gpu.data<float>()));
}

TEST_CASE("cuda: reductions over more rows or columns than one pass of the grid covers") {
  if (!testing::have_gpu()) return;
  // kMaxGridBlocks blocks per pass (65535 on a GPU: 524,280 rows with a warp per row, 65,535 with a block
  // per row, 16,776,960 columns with a thread per column; emulated, the cap is lower): a little more than
  // each.
  using kernels::cuda::kMaxGridBlocks;
  for (const ReduceGeometry& g :
       {ReduceGeometry{kMaxGridBlocks * kernels::cuda::kWarpsPerBlock + 37, 33, 1},
        ReduceGeometry{kMaxGridBlocks + 5, 1100, 1}, ReduceGeometry{1, 2, testing::kOneGridPass + 11}}) {
    INFO(describe(g));
    const std::int64_t n = g.outer * g.reduced * g.inner;
    check_sum<float>(g, spread_values<float>(n, 6));
    check_extremes(g, tied_values<float>(n, 7));
  }
}

// ---- Tensor level ------------------------------------------------------------------------------------

TEST_CASE("cuda: raw::reduce and raw::argmax on CUDA tensors equal the CPU's") {
  if (!testing::have_gpu()) return;
  const Shape shape{4, 6, 9, 35};
  const Tensor x = Tensor::from_vector(spread_values<float>(shape.numel(), 8), shape);
  const Tensor x_gpu = x.to(Device::cuda());
  // Adjacent axes (no copy), a last axis (rows), and axes {0, 2, 3} (permuted and made dense on the device
  // first, as sum_to does for a conv bias's gradient).
  for (const std::vector<int>& axes : {std::vector<int>{1}, std::vector<int>{3}, std::vector<int>{1, 2},
                                       std::vector<int>{0, 2, 3}, std::vector<int>{}}) {
    INFO("axes of size ", axes.size());
    const Tensor sum_gpu = raw::reduce(ReduceOp::Sum, x_gpu, axes, true);
    CHECK(sum_gpu.device() == Device::cuda());
    const auto report = testing::matches_reference(
        sum_gpu.to(Device::cpu()), raw::reduce(ReduceOp::Sum, x, axes, true), sum_tolerance<float>());
    CHECK_MESSAGE(report.ok, report.message);
    for (const ReduceOp op : {ReduceOp::Max, ReduceOp::Min}) {
      const std::string difference =
          first_difference(raw::reduce(op, x_gpu, axes, false).to(Device::cpu()).to_vector<float>(),
                           raw::reduce(op, x, axes, false).to_vector<float>());
      CHECK_MESSAGE(difference.empty(), difference);
    }
  }
  const Tensor tied = Tensor::from_vector(tied_values<double>(shape.numel(), 9), shape);
  for (const int axis : {0, 1, 3, -1}) {
    INFO("argmax over axis ", axis);
    const Tensor indices_gpu = raw::argmax(tied.to(Device::cuda()), axis, false);
    CHECK(indices_gpu.dtype() == DType::Int64);
    CHECK(indices_gpu.to(Device::cpu()).to_vector<std::int64_t>() ==
          raw::argmax(tied, axis, false).to_vector<std::int64_t>());
  }
}

TEST_CASE("cuda: raw::reduce, raw::argmax and raw::sum_to on bfloat16 CUDA tensors equal the CPU's") {
  if (!testing::have_gpu()) return;
  const Shape shape{4, 6, 9, 35};
  const Tensor x = Tensor::from_vector(tied_values<bfloat16>(shape.numel(), 10), shape);
  const Tensor x_gpu = x.to(Device::cuda());
  for (const std::vector<int>& axes :
       {std::vector<int>{1}, std::vector<int>{3}, std::vector<int>{0, 2, 3}, std::vector<int>{}}) {
    INFO("axes of size ", axes.size());
    const Tensor sum_gpu = raw::reduce(ReduceOp::Sum, x_gpu, axes, true);
    CHECK(sum_gpu.dtype() == DType::BFloat16);
    const auto report = testing::matches_reference(
        sum_gpu.to(Device::cpu()), raw::reduce(ReduceOp::Sum, x, axes, true), sum_tolerance<bfloat16>());
    CHECK_MESSAGE(report.ok, report.message);
    for (const ReduceOp op : {ReduceOp::Max, ReduceOp::Min}) {
      const std::string difference =
          first_difference(raw::reduce(op, x_gpu, axes, false).to(Device::cpu()).to_vector<float>(),
                           raw::reduce(op, x, axes, false).to_vector<float>());
      CHECK_MESSAGE(difference.empty(), difference);
    }
  }
  CHECK(raw::argmax(x_gpu, 2, false).to(Device::cpu()).to_vector<std::int64_t>() ==
        raw::argmax(x, 2, false).to_vector<std::int64_t>());
  const auto report = testing::matches_reference(raw::sum_to(x_gpu, Shape{6, 1, 1}).to(Device::cpu()),
                                                 raw::sum_to(x, Shape{6, 1, 1}), sum_tolerance<bfloat16>());
  CHECK_MESSAGE(report.ok, report.message);
}

}  // namespace

}  // namespace cuda_reduce_cuda_test
