// The CUDA elementwise kernels (kernels/elementwise/cuda_elementwise.cu), called through the dispatch
// functions with Device::cuda(), against the reference kernels on the same host data; and the Tensor-level
// calls (raw::) on CUDA tensors against the same calls on the CPU. Skipped, with a message, without a GPU.
//
// Ops whose result is correctly rounded on both sides (+ - * /, sqrt, comparisons, selections) and every
// conversion must agree exactly: the same value, or NaN where the reference has NaN (NaN payloads and signs
// differ between the two hardware, so NaNs are compared as NaN). Ops built on exp, log, tanh, erf and pow
// compare under a tolerance, because CUDA's double versions differ from glibc's by a few ulps. bfloat16 runs
// the same cases under the same split: both sides round the same double with kiln::bfloat16's rounding.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

#include "core/ops.hpp"
#include "core/raw.hpp"
#include "core/tensor.hpp"
#include "kernels/elementwise/elementwise.hpp"
#include "tests/support/cuda_testing.hpp"
#include "tests/support/matches_reference.hpp"

namespace cuda_elementwise_cuda_test {

namespace {

using namespace kiln;
using kernels::BinaryOp;
using kernels::UnaryOp;
using testing::first_difference;
using testing::Tolerance;

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

// Transcendental ops: both sides compute in double and round once to T, so for float a few-ulp difference
// in the double value moves the result by at most one float ulp (6e-8 relative); for double it stays within
// a few double ulps (CUDA's exp, log, tanh: 1 ulp; erf, pow: 2), far inside 1e-12. The absolute part covers
// results near 0 that come out of cancellation (Gelu at x << 0, where 1 + erf(x / sqrt 2) is tiny).
// For bfloat16 the few-ulp double difference moves a result by at most one bfloat16 ulp (at most 2^-7 =
// 7.8e-3 relative), and only where the double lies next to a rounding tie.
template <typename T>
Tolerance transcendental_tolerance() {
  if constexpr (std::is_same_v<T, bfloat16>) return Tolerance{1e-6, 8e-3};
  return std::is_same_v<T, float> ? Tolerance{1e-6, 1e-6} : Tolerance{1e-13, 1e-12};
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

// n values uniform in [low, high), seeded; the first ones are the special values every op must get right
// (NaN, infinities, signed zeros, values where Sigmoid's e^-x overflows, exact ties at the clamp bounds).
template <typename T>
std::vector<T> test_values(std::int64_t n, std::uint64_t seed, double low = -4.0, double high = 4.0) {
  std::mt19937_64 engine(seed);
  std::uniform_real_distribution<double> uniform(low, high);
  std::vector<T> values(static_cast<std::size_t>(n));
  for (T& v : values) v = static_cast<T>(uniform(engine));
  const double specials[] = {kNaN, kInf, -kInf, 0.0, -0.0, 1.0, -1.0, 800.0, -800.0, -0.5, 0.75, 2.0};
  for (std::size_t i = 0; i < std::size(specials) && i < values.size(); ++i)
    values[(i * 7919) % values.size()] = static_cast<T>(specials[i]);
  return values;
}

const UnaryOp kUnaryOps[] = {UnaryOp::Neg,       UnaryOp::Exp,  UnaryOp::Log,       UnaryOp::Sqrt,
                             UnaryOp::Abs,       UnaryOp::Relu, UnaryOp::LeakyRelu, UnaryOp::Sigmoid,
                             UnaryOp::Tanh,      UnaryOp::Gelu, UnaryOp::Silu,      UnaryOp::Hardsigmoid,
                             UnaryOp::Hardswish, UnaryOp::Clamp};
const BinaryOp kBinaryOps[] = {BinaryOp::Add,     BinaryOp::Sub,     BinaryOp::Mul,     BinaryOp::Div,
                               BinaryOp::Pow,     BinaryOp::Maximum, BinaryOp::Minimum, BinaryOp::Equal,
                               BinaryOp::Greater, BinaryOp::AddRelu};

bool exact_forward(UnaryOp op) {
  return op != UnaryOp::Exp && op != UnaryOp::Log && op != UnaryOp::Sigmoid && op != UnaryOp::Tanh &&
         op != UnaryOp::Gelu && op != UnaryOp::Silu;
}
// The backward's derivative is exact where it needs no transcendental (Sigmoid and Tanh read y).
bool exact_backward(UnaryOp op) { return op != UnaryOp::Exp && op != UnaryOp::Gelu && op != UnaryOp::Silu; }

// Checks actual against expected: exactly, or under the transcendental tolerance.
template <typename T>
void check_against(const std::vector<T>& actual, const std::vector<T>& expected, bool exact) {
  if (exact) {
    const std::string difference = first_difference(comparable(actual), comparable(expected));
    CHECK_MESSAGE(difference.empty(), difference);
  } else {
    const auto report =
        testing::matches_reference(actual.data(), expected.data(), static_cast<std::int64_t>(expected.size()),
                                   transcendental_tolerance<T>());
    CHECK_MESSAGE(report.ok, report.message);
  }
}

template <typename T>
void check_unary(std::int64_t n) {
  INFO("n = ", n, ", ", dtype_name(dtype_of_v<T>));
  kernels::UnaryParams params;
  params.alpha = 0.1;
  params.low = -0.5;
  params.high = 0.75;
  const std::vector<T> x = test_values<T>(n, 1), gy = test_values<T>(n, 2);
  const Tensor x_gpu = testing::to_gpu(x), gy_gpu = testing::to_gpu(gy);
  for (const UnaryOp op : kUnaryOps) {
    INFO("op ", static_cast<int>(op));
    std::vector<T> y(x.size()), gx(x.size());
    kernels::reference::unary_forward(op, params, n, x.data(), y.data());
    kernels::reference::unary_backward(op, params, n, x.data(), y.data(), gy.data(), gx.data());

    const Tensor y_gpu = testing::empty_gpu<T>(n), gx_gpu = testing::empty_gpu<T>(n);
    kernels::unary_forward(Device::cuda(), op, params, n, x_gpu.data<T>(), y_gpu.data<T>());
    check_against(testing::to_host<T>(y_gpu), y, exact_forward(op));
    // The backward reads the reference's y, so only the derivative itself is under test.
    const Tensor y_given = testing::to_gpu(y);
    kernels::unary_backward(Device::cuda(), op, params, n, x_gpu.data<T>(), y_given.data<T>(),
                            gy_gpu.data<T>(), gx_gpu.data<T>());
    check_against(testing::to_host<T>(gx_gpu), gx, exact_backward(op));
  }
}

TEST_CASE("cuda: unary forward and backward match the reference, every op, float and double") {
  if (!testing::have_gpu()) return;
  for (const std::int64_t n : {0, 1, 31, 257, 100003}) {
    check_unary<float>(n);
    check_unary<double>(n);
  }
}

TEST_CASE("cuda: unary forward and backward match the reference, every op, bfloat16") {
  if (!testing::have_gpu()) return;
  for (const std::int64_t n : {0, 1, 31, 257, 100003}) check_unary<bfloat16>(n);
}

TEST_CASE("cuda: unary ops run in place") {
  if (!testing::have_gpu()) return;
  const std::vector<float> x = test_values<float>(1000, 3);
  std::vector<float> expected(x.size());
  kernels::reference::unary_forward(UnaryOp::Relu, {}, 1000, x.data(), expected.data());
  const Tensor buffer = testing::to_gpu(x);
  kernels::unary_forward(Device::cuda(), UnaryOp::Relu, {}, 1000, buffer.data<float>(), buffer.data<float>());
  const std::string difference = first_difference(testing::to_host<float>(buffer), expected);
  CHECK_MESSAGE(difference.empty(), difference);
}

// ---- binary ------------------------------------------------------------------------------------------

// One broadcasting layout: the index space and each operand's element strides.
struct BinaryCase {
  const char* name;
  std::vector<std::int64_t> sizes, a_strides, b_strides;
};

// Elements a buffer needs for every index of sizes to be in range through strides (0 for an empty space).
std::int64_t extent(const std::vector<std::int64_t>& sizes, const std::vector<std::int64_t>& strides) {
  std::int64_t last = 0;
  for (std::size_t d = 0; d < sizes.size(); ++d) {
    if (sizes[d] == 0) return 0;
    last += (sizes[d] - 1) * strides[d];
  }
  return last + 1;
}

std::int64_t count_of(const std::vector<std::int64_t>& sizes) {
  std::int64_t count = 1;
  for (const std::int64_t size : sizes) count *= size;
  return count;
}

std::vector<BinaryCase> binary_cases() {
  return {
      {"dense, same shape", {100003}, {1}, {1}},
      {"[N,C,H,W] + [1,C,1,1]", {2, 3, 5, 7}, {105, 35, 7, 1}, {0, 1, 0, 0}},
      {"[N,F] + [F]", {4, 33}, {33, 1}, {0, 1}},
      {"tensor + scalar", {257}, {1}, {0}},
      {"scalar + tensor, 2-d", {3, 31}, {0, 0}, {31, 1}},
      {"scalar + scalar over a space", {5, 7}, {0, 0}, {0, 0}},
      {"transposed operand", {17, 19}, {19, 1}, {1, 17}},
      {"both broadcast: [3,1,5] + [1,4,1]", {3, 4, 5}, {5, 0, 1}, {0, 1, 0}},
      {"size-1 dimensions between", {2, 1, 9, 1}, {9, 9, 1, 1}, {1, 1, 0, 0}},
      {"rank 0", {}, {}, {}},
      {"an empty dimension", {3, 0, 2}, {0, 2, 1}, {2, 2, 1}},
      {"rank 8", {2, 3, 1, 2, 3, 2, 1, 5}, {180, 60, 60, 30, 10, 5, 5, 1}, {0, 1, 0, 3, 0, 0, 0, 0}},
      {"sliced with step 2", {6, 10}, {40, 2}, {1, 0}},
  };
}

template <typename T>
void check_binary(const BinaryCase& layout) {
  INFO(layout.name, ", ", dtype_name(dtype_of_v<T>));
  const int rank = static_cast<int>(layout.sizes.size());
  const std::int64_t count = count_of(layout.sizes);
  const std::vector<T> a = test_values<T>(extent(layout.sizes, layout.a_strides), 11, -3.0, 3.0);
  std::vector<T> b = test_values<T>(extent(layout.sizes, layout.b_strides), 12, -3.0, 3.0);
  // Some equal pairs for Equal, Maximum and Minimum's ties.
  for (std::size_t i = 3; i < b.size() && i < a.size(); i += 5) b[i] = a[i];
  const Tensor a_gpu = testing::to_gpu(a), b_gpu = testing::to_gpu(b);
  for (const BinaryOp op : kBinaryOps) {
    INFO("op ", static_cast<int>(op));
    std::vector<T> expected(static_cast<std::size_t>(count));
    kernels::reference::binary_forward(op, rank, layout.sizes.data(), a.data(), layout.a_strides.data(),
                                       b.data(), layout.b_strides.data(), expected.data());
    const Tensor out_gpu = testing::empty_gpu<T>(count);
    kernels::binary_forward(Device::cuda(), op, rank, layout.sizes.data(), a_gpu.data<T>(),
                            layout.a_strides.data(), b_gpu.data<T>(), layout.b_strides.data(),
                            out_gpu.data<T>());
    check_against(testing::to_host<T>(out_gpu), expected, op != BinaryOp::Pow);
  }
}

TEST_CASE("cuda: binary ops match the reference over broadcast, transposed and odd layouts") {
  if (!testing::have_gpu()) return;
  for (const BinaryCase& layout : binary_cases()) {
    check_binary<float>(layout);
    check_binary<double>(layout);
  }
}

TEST_CASE("cuda: bfloat16 binary ops match the reference over broadcast, transposed and odd layouts") {
  if (!testing::have_gpu()) return;
  for (const BinaryCase& layout : binary_cases()) check_binary<bfloat16>(layout);
}

TEST_CASE("cuda: binary ops over more elements than one pass of the grid covers") {
  if (!testing::have_gpu()) return;
  const std::int64_t rows = testing::side_past_one_grid_pass(), columns = rows;  // 4097 x 4097 on a GPU
  for (const BinaryCase& layout : {BinaryCase{"dense", {rows * columns}, {1}, {1}},
                                   BinaryCase{"[R,C] + [C]", {rows, columns}, {columns, 1}, {0, 1}},
                                   BinaryCase{"transposed", {rows, columns}, {columns, 1}, {1, rows}}}) {
    INFO(layout.name);
    const std::vector<float> a = test_values<float>(extent(layout.sizes, layout.a_strides), 21);
    const std::vector<float> b = test_values<float>(extent(layout.sizes, layout.b_strides), 22);
    const int rank = static_cast<int>(layout.sizes.size());
    std::vector<float> expected(static_cast<std::size_t>(rows * columns));
    kernels::reference::binary_forward(BinaryOp::Sub, rank, layout.sizes.data(), a.data(),
                                       layout.a_strides.data(), b.data(), layout.b_strides.data(),
                                       expected.data());
    const Tensor a_gpu = testing::to_gpu(a), b_gpu = testing::to_gpu(b);
    const Tensor out_gpu = testing::empty_gpu<float>(rows * columns);
    kernels::binary_forward(Device::cuda(), BinaryOp::Sub, rank, layout.sizes.data(), a_gpu.data<float>(),
                            layout.a_strides.data(), b_gpu.data<float>(), layout.b_strides.data(),
                            out_gpu.data<float>());
    check_against(testing::to_host<float>(out_gpu), expected, true);
  }
}

// ---- copies ------------------------------------------------------------------------------------------

struct CopyCase {
  const char* name;
  std::vector<std::int64_t> sizes, src_strides, dst_strides;
  std::int64_t src_offset = 0;  // where the view starts in the source buffer
};

std::vector<CopyCase> copy_cases() {
  return {
      {"dense", {100003}, {1}, {1}},
      {"transpose of [65, 33]", {33, 65}, {1, 33}, {65, 1}},
      {"rows 1..9 step 2, columns 3..39 step 3 of [10, 40]", {5, 13}, {80, 3}, {13, 1}, 43},
      {"expand [1,7,1] to [5,7,9] (stride 0 source)", {5, 7, 9}, {0, 1, 0}, {63, 9, 1}},
      {"a scalar expanded", {4, 6}, {0, 0}, {6, 1}},
      {"into a transposed destination", {12, 20}, {20, 1}, {1, 12}},
      {"into a strided destination", {7, 5}, {5, 1}, {20, 2}},
      {"rank 0", {}, {}, {}},
      {"an empty dimension", {4, 0}, {1, 1}, {1, 1}},
      {"[2,3,4,5] permuted (0,2,3,1)", {2, 4, 5, 3}, {60, 5, 1, 20}, {60, 15, 3, 1}},
  };
}

// Values every conversion handles: for floating sources halves and negatives (truncation toward zero),
// for int64 sources numbers a float or double must round (2^53 + 1, 2^40 + 1).
template <typename Src>
std::vector<Src> copy_source(std::int64_t n, std::uint64_t seed) {
  std::vector<Src> values(static_cast<std::size_t>(n));
  std::mt19937_64 engine(seed);
  if constexpr (std::is_same_v<Src, std::uint8_t>) {
    for (Src& v : values) v = static_cast<Src>(engine() % 256);
  } else if constexpr (std::is_same_v<Src, std::int64_t>) {
    for (Src& v : values) v = static_cast<Src>(engine() % 2001) - 1000;
    const std::int64_t specials[] = {(std::int64_t{1} << 53) + 1, -(std::int64_t{1} << 40) - 1, 16777217};
    for (std::size_t i = 0; i < std::size(specials) && i * 3 < values.size(); ++i)
      values[i * 3] = specials[i];
  } else {
    std::uniform_real_distribution<double> uniform(-1000.0, 1000.0);
    for (Src& v : values) v = static_cast<Src>(uniform(engine));
    const double specials[] = {-2.5, 2.5, -0.75, 0.75, 1e10};
    for (std::size_t i = 0; i < std::size(specials) && i * 3 < values.size(); ++i)
      values[i * 3] = static_cast<Src>(specials[i]);
  }
  return values;
}

// The poison testing::empty_gpu fills with, so the host reference's untouched elements match the device's.
template <typename Dst>
Dst poison() {
  if constexpr (std::is_floating_point_v<Dst> || std::is_same_v<Dst, bfloat16>)
    return Dst(kNaN);
  else
    return Dst{-777};
}

template <typename Src, typename Dst>
void check_copy(const CopyCase& layout) {
  INFO(layout.name, ", source dtype ", dtype_name(dtype_of_v<Src>), ", destination ",
       dtype_name(dtype_of_v<Dst>));
  const int rank = static_cast<int>(layout.sizes.size());
  const std::vector<Src> src =
      copy_source<Src>(layout.src_offset + extent(layout.sizes, layout.src_strides), 31);
  // The whole destination buffer is compared, so a write outside the view shows up too.
  const std::int64_t dst_count = extent(layout.sizes, layout.dst_strides);
  std::vector<Dst> expected(static_cast<std::size_t>(dst_count), poison<Dst>());
  kernels::reference::copy_strided(rank, layout.sizes.data(), src.data() + layout.src_offset,
                                   layout.src_strides.data(), expected.data(), layout.dst_strides.data());
  const Tensor src_gpu = testing::to_gpu(src), dst_gpu = testing::empty_gpu<Dst>(dst_count);
  kernels::copy_strided(Device::cuda(), rank, layout.sizes.data(), src_gpu.data<Src>() + layout.src_offset,
                        layout.src_strides.data(), dst_gpu.data<Dst>(), layout.dst_strides.data());
  const std::string difference =
      first_difference(comparable(testing::to_host<Dst>(dst_gpu)), comparable(expected));
  CHECK_MESSAGE(difference.empty(), difference);
}

template <typename Src>
void check_copies_from(const CopyCase& layout) {
  check_copy<Src, float>(layout);
  check_copy<Src, double>(layout);
  if constexpr (!std::is_same_v<Src, std::uint8_t>) check_copy<Src, std::int64_t>(layout);
}

TEST_CASE("cuda: strided copies match the reference, every dtype pair") {
  if (!testing::have_gpu()) return;
  for (const CopyCase& layout : copy_cases()) {
    check_copies_from<float>(layout);
    check_copies_from<double>(layout);
    check_copies_from<std::int64_t>(layout);
    check_copies_from<std::uint8_t>(layout);
  }
}

TEST_CASE("cuda: strided copies to and from bfloat16 match the reference") {
  if (!testing::have_gpu()) return;
  for (const CopyCase& layout : copy_cases()) {
    check_copy<bfloat16, bfloat16>(layout);
    check_copy<bfloat16, float>(layout);
    check_copy<bfloat16, double>(layout);
    check_copy<bfloat16, std::int64_t>(layout);
    check_copy<float, bfloat16>(layout);
    check_copy<double, bfloat16>(layout);
    check_copy<std::int64_t, bfloat16>(layout);
    check_copy<std::uint8_t, bfloat16>(layout);
  }
}

TEST_CASE("cuda: fill writes a bfloat16 everywhere") {
  if (!testing::have_gpu()) return;
  for (const std::int64_t n : {1, 1031, 100003}) {
    const std::vector<bfloat16> values =
        testing::to_host<bfloat16>(Tensor::full(Shape{n}, 0.1, DType::BFloat16, Device::cuda()));
    std::int64_t wrong = 0;
    for (const bfloat16 v : values) wrong += v.bits == bfloat16(0.1).bits ? 0 : 1;
    CHECK(wrong == 0);
  }
}

TEST_CASE("cuda: a transposing copy over more elements than one pass of the grid covers") {
  if (!testing::have_gpu()) return;
  const std::int64_t side = testing::side_past_one_grid_pass();  // 4097 on a GPU
  check_copy<float, float>({"transpose of a square", {side, side}, {1, side}, {side, 1}});
  check_copy<float, double>({"dense", {side * side}, {1}, {1}});
}

// ---- Tensor level ------------------------------------------------------------------------------------

// x's values as a tensor of `shape`, on the CPU and on the GPU.
template <typename T>
std::pair<Tensor, Tensor> cpu_and_gpu(const Shape& shape, std::uint64_t seed) {
  const Tensor cpu = Tensor::from_vector(test_values<T>(shape.numel(), seed), shape);
  return {cpu, cpu.to(Device::cuda())};
}

TEST_CASE("cuda: raw::binary, unary and contiguous on CUDA tensors equal the same calls on the CPU") {
  if (!testing::have_gpu()) return;
  const auto [x, x_gpu] = cpu_and_gpu<float>(Shape{4, 6, 5, 7}, 41);
  const auto [bias, bias_gpu] = cpu_and_gpu<float>(Shape{1, 6, 1, 1}, 42);
  const auto [row, row_gpu] = cpu_and_gpu<float>(Shape{7}, 43);

  const Tensor sum_gpu = raw::binary(BinaryOp::Add, x_gpu, bias_gpu, "add");
  CHECK(sum_gpu.device() == Device::cuda());
  std::string difference = first_difference(sum_gpu.to(Device::cpu()).to_vector<float>(),
                                            raw::binary(BinaryOp::Add, x, bias, "add").to_vector<float>());
  CHECK_MESSAGE(difference.empty(), difference);

  difference = first_difference(
      raw::binary(BinaryOp::Maximum, x_gpu, row_gpu, "maximum").to(Device::cpu()).to_vector<float>(),
      raw::binary(BinaryOp::Maximum, x, row, "maximum").to_vector<float>());
  CHECK_MESSAGE(difference.empty(), difference);

  // A transposed operand: the kernel reads it through its strides.
  const Tensor x_t = x.transpose(1, 3), x_t_gpu = x_gpu.transpose(1, 3);
  difference = first_difference(
      raw::binary(BinaryOp::Mul, x_t_gpu, x_t_gpu, "mul").to(Device::cpu()).to_vector<float>(),
      raw::binary(BinaryOp::Mul, x_t, x_t, "mul").to_vector<float>());
  CHECK_MESSAGE(difference.empty(), difference);

  // contiguous() of a transposed and of a sliced CUDA tensor: copy_strided on the device.
  const Tensor dense_gpu = raw::contiguous(x_t_gpu);
  CHECK(dense_gpu.is_contiguous());
  difference = first_difference(dense_gpu.to(Device::cpu()).to_vector<float>(),
                                raw::contiguous(x_t).to_vector<float>());
  CHECK_MESSAGE(difference.empty(), difference);
  const Tensor sliced = x.slice(3, 1, 7, 2), sliced_gpu = x_gpu.slice(3, 1, 7, 2);
  difference = first_difference(raw::contiguous(sliced_gpu).to(Device::cpu()).to_vector<float>(),
                                raw::contiguous(sliced).to_vector<float>());
  CHECK_MESSAGE(difference.empty(), difference);

  // A conversion on the device.
  difference = first_difference(raw::cast(x_t_gpu, DType::Float64).to(Device::cpu()).to_vector<double>(),
                                raw::cast(x_t, DType::Float64).to_vector<double>());
  CHECK_MESSAGE(difference.empty(), difference);

  // A unary op and its backward, on a transposed (so first made contiguous) input.
  const Tensor y_gpu = raw::unary(UnaryOp::Gelu, {}, x_t_gpu), y = raw::unary(UnaryOp::Gelu, {}, x_t);
  auto report = testing::matches_reference(y_gpu.to(Device::cpu()), y, transcendental_tolerance<float>());
  CHECK_MESSAGE(report.ok, report.message);
  // (Gelu: on the CPU its float kernels are the reference's; Sigmoid's and Tanh's backward run AVX code that
  // rounds in float, so they would not compare this tightly.)
  const Tensor gy = Tensor::from_vector(test_values<float>(y.numel(), 44), y.shape());
  const Tensor gx_gpu = raw::unary_backward(UnaryOp::Gelu, {}, x_t_gpu, y_gpu, gy.to(Device::cuda()));
  const Tensor gx = raw::unary_backward(UnaryOp::Gelu, {}, x_t, y, gy);
  report = testing::matches_reference(gx_gpu.to(Device::cpu()), gx, transcendental_tolerance<float>());
  CHECK_MESSAGE(report.ok, report.message);
}

TEST_CASE(
    "cuda: elementwise ops and cat keep a channels-last layout, forward and backward, as the CPU does") {
  if (!testing::have_gpu()) return;
  // A ResNet block's tail on channels-last tensors: add + relu with an NCHW operand joining, cat of a
  // subsampled view with zeros (the padded shortcut), and their gradients; each device's tensors brought to
  // the layout where they lie (Tensor::to copies densely).
  const auto [a, a_gpu] = cpu_and_gpu<float>(Shape{3, 6, 5, 7}, 51);
  const auto [b, b_gpu] = cpu_and_gpu<float>(Shape{3, 6, 5, 7}, 52);
  const auto run = [](const Tensor& a_nchw, const Tensor& b_nchw) {
    Tensor a_last = raw::to_channels_last(a_nchw).detach().set_requires_grad(true);
    Tensor b_leaf = b_nchw.detach().set_requires_grad(true);
    const Tensor joined = add_relu(a_last, b_leaf);
    const Tensor padded = cat({a_last.slice(2, 0, 5, 2).slice(3, 0, 7, 2),
                               Tensor::zeros({3, 2, 3, 4}, DType::Float32, a_nchw.device())},
                              1);
    CHECK(joined.is_channels_last());
    CHECK(padded.is_channels_last());
    (sum(joined * joined) + sum(padded * padded)).backward();
    return std::vector<Tensor>{joined, padded, a_last.grad(), b_leaf.grad()};
  };
  const std::vector<Tensor> cpu = run(a, b), gpu = run(a_gpu, b_gpu);
  for (std::size_t i = 0; i < cpu.size(); ++i) {
    INFO("result ", i);
    REQUIRE(gpu[i].device() == Device::cuda());
    const auto report = testing::matches_reference(gpu[i].to(Device::cpu()), cpu[i], Tolerance::float32());
    CHECK_MESSAGE(report.ok, report.message);
  }
}

TEST_CASE("cuda: raw::binary, unary, cast and contiguous on bfloat16 CUDA tensors equal the CPU's") {
  if (!testing::have_gpu()) return;
  const auto [x, x_gpu] = cpu_and_gpu<bfloat16>(Shape{4, 6, 5, 7}, 51);
  const auto [bias, bias_gpu] = cpu_and_gpu<bfloat16>(Shape{1, 6, 1, 1}, 52);
  const auto as_float = [](const Tensor& t) { return t.to(Device::cpu()).to_vector<float>(); };

  std::string difference =
      first_difference(as_float(raw::binary(BinaryOp::AddRelu, x_gpu, bias_gpu, "add_relu")),
                       as_float(raw::binary(BinaryOp::AddRelu, x, bias, "add_relu")));
  CHECK_MESSAGE(difference.empty(), difference);
  const Tensor x_t = x.transpose(1, 3), x_t_gpu = x_gpu.transpose(1, 3);
  difference = first_difference(as_float(raw::binary(BinaryOp::Mul, x_t_gpu, x_t_gpu, "mul")),
                                as_float(raw::binary(BinaryOp::Mul, x_t, x_t, "mul")));
  CHECK_MESSAGE(difference.empty(), difference);
  difference = first_difference(as_float(raw::contiguous(x_t_gpu)), as_float(raw::contiguous(x_t)));
  CHECK_MESSAGE(difference.empty(), difference);
  // Casts on the device, both ways: float -> bfloat16 rounds as the CPU does, bfloat16 -> float is exact.
  const Tensor wide = Tensor::from_vector(test_values<float>(1031, 53), Shape{1031});
  difference = first_difference(as_float(raw::cast(wide.to(Device::cuda()), DType::BFloat16)),
                                as_float(raw::cast(wide, DType::BFloat16)));
  CHECK_MESSAGE(difference.empty(), difference);
  difference = first_difference(as_float(raw::cast(x_t_gpu, DType::Float32)),
                                as_float(raw::cast(x_t, DType::Float32)));
  CHECK_MESSAGE(difference.empty(), difference);

  const Tensor y_gpu = raw::unary(UnaryOp::Gelu, {}, x_t_gpu), y = raw::unary(UnaryOp::Gelu, {}, x_t);
  CHECK(y_gpu.dtype() == DType::BFloat16);
  auto report = testing::matches_reference(y_gpu.to(Device::cpu()), y, transcendental_tolerance<bfloat16>());
  CHECK_MESSAGE(report.ok, report.message);
  const Tensor gy = Tensor::from_vector(test_values<bfloat16>(y.numel(), 54), y.shape());
  const Tensor gx_gpu = raw::unary_backward(UnaryOp::Gelu, {}, x_t_gpu, y_gpu, gy.to(Device::cuda()));
  report =
      testing::matches_reference(gx_gpu.to(Device::cpu()), raw::unary_backward(UnaryOp::Gelu, {}, x_t, y, gy),
                                 transcendental_tolerance<bfloat16>());
  CHECK_MESSAGE(report.ok, report.message);
}

TEST_CASE("cuda: flip on CUDA tensors equals the CPU's, every dtype, NCHW and channels-last, any axes") {
  if (!testing::have_gpu()) return;
  const auto [x, x_gpu] = cpu_and_gpu<float>(Shape{2, 5, 6, 7}, 44);
  for (const DType dtype : {DType::Float32, DType::Float64, DType::BFloat16}) {
    for (const std::vector<int>& axes : std::vector<std::vector<int>>{{3}, {2}, {2, 3}, {0, 1, 2, 3}}) {
      for (const bool channels_last : {false, true}) {
        CAPTURE(dtype_name(dtype));
        CAPTURE(axes.size());
        CAPTURE(channels_last);
        const Tensor in = channels_last ? x.to(dtype).channels_last() : x.to(dtype);
        const Tensor in_gpu = channels_last ? x_gpu.to(dtype).channels_last() : x_gpu.to(dtype);
        const Tensor out_gpu = flip(in_gpu, axes);
        CHECK(out_gpu.device() == Device::cuda());
        CHECK(out_gpu.is_channels_last() == channels_last);
        const std::string difference =
            first_difference(out_gpu.to(Device::cpu()).to(DType::Float64).contiguous().to_vector<double>(),
                             flip(in, axes).to(DType::Float64).contiguous().to_vector<double>());
        CHECK_MESSAGE(difference.empty(), difference);
      }
    }
  }
}

}  // namespace

}  // namespace cuda_elementwise_cuda_test
