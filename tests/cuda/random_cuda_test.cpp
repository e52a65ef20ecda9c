// The CUDA random fills (kernels/random/cuda_random.cu) and dropout (kernels/dropout/cuda_dropout.cu),
// called through the dispatch functions with Device::cuda(): for the same Philox state they must draw the
// CPU's numbers. Uniform draws and dropout masks are compared bit for bit; normal draws within a few ulps,
// because CUDA's double log, sin and cos differ from glibc's in the last bits. Plus raw::dropout_forward on
// a CUDA tensor against the CPU. Skipped, with a message, without a GPU.
#include <doctest/doctest.h>

#include <cstdint>
#include <cstring>
#include <random>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

#include "core/generator.hpp"
#include "core/raw.hpp"
#include "core/tensor.hpp"
#include "kernels/cuda_grid.hpp"
#include "kernels/dropout/dropout.hpp"
#include "kernels/random/random.hpp"
#include "tests/support/cuda_testing.hpp"
#include "tests/support/matches_reference.hpp"

namespace cuda_random_cuda_test {

namespace {

using namespace kiln;
using kernels::PhiloxState;
using testing::Tolerance;

// Normal draws: z is computed in double on both sides; a few-ulp difference there moves a float result by
// at most one float ulp of std * z, then of the sum with the mean (|result| <= ~15 here: 2e-6 absolute),
// and a double result by ~1e-15.
template <typename T>
Tolerance normal_tolerance() {
  return std::is_same_v<T, float> ? Tolerance{1e-5, 1e-6} : Tolerance{1e-12, 1e-12};
}

// "" when the two hold the same bit patterns, else the first element that differs.
template <typename T>
std::string first_bit_difference(const std::vector<T>& actual, const std::vector<T>& expected) {
  if (actual.size() != expected.size()) return "sizes differ";
  for (std::size_t i = 0; i < actual.size(); ++i) {
    if (std::memcmp(&actual[i], &expected[i], sizeof(T)) != 0) {
      std::ostringstream message;
      message.precision(17);
      message << "element " << i << " of " << actual.size() << ": got " << actual[i] << ", reference "
              << expected[i];
      return message.str();
    }
  }
  return "";
}

// States that start mid-stream: offset 0; an odd offset; one whose block counter carries from the low
// 32-bit word into the high one a few blocks in.
std::vector<PhiloxState> states() {
  return {{0, 0, 0}, {12345, 7, 3}, {0x9E3779B97F4A7C15ull, 0xFFFFFFFFull + 2, 0xFFFFFFFFull - 5}};
}

template <typename T>
void check_uniform(std::int64_t n, const PhiloxState& state) {
  const T low = T(-2.5), high = T(3.0);
  std::vector<T> expected(static_cast<std::size_t>(n));
  kernels::reference::random_uniform(n, state, low, high, expected.data());
  const Tensor out_gpu = testing::empty_gpu<T>(n);
  kernels::random_uniform(Device::cuda(), n, state, low, high, out_gpu.data<T>());
  const std::string difference = first_bit_difference(testing::to_host<T>(out_gpu), expected);
  CHECK_MESSAGE(difference.empty(), difference);
}

template <typename T>
void check_normal(std::int64_t n, const PhiloxState& state) {
  const T mean = T(0.5), deviation = T(2.0);
  std::vector<T> expected(static_cast<std::size_t>(n));
  kernels::reference::random_normal(n, state, mean, deviation, expected.data());
  const Tensor out_gpu = testing::empty_gpu<T>(n);
  kernels::random_normal(Device::cuda(), n, state, mean, deviation, out_gpu.data<T>());
  const std::vector<T> actual = testing::to_host<T>(out_gpu);
  const auto report = testing::matches_reference(actual.data(), expected.data(), n, normal_tolerance<T>());
  CHECK_MESSAGE(report.ok, report.message);
}

TEST_CASE("cuda: uniform draws equal the CPU's bit for bit, normal draws within ulps") {
  if (!testing::have_gpu()) return;
  for (const PhiloxState& state : states()) {
    for (const std::int64_t n : {0, 1, 3, 5, 31, 257, 100003}) {
      INFO("seed ", state.seed, ", stream ", state.stream, ", offset ", state.offset, ", n = ", n);
      check_uniform<float>(n, state);
      check_uniform<double>(n, state);
      check_normal<float>(n, state);
      check_normal<double>(n, state);
    }
  }
}

// More elements than one pass of the grid covers: a thread takes one Philox block of 4 elements, so a pass
// of kMaxGridBlocks blocks covers 67,107,840 on a GPU (65535 blocks of 256 threads), far fewer emulated.
constexpr std::int64_t kBeyondOneGridPass = testing::kOneGridPass * 4 + 4 * 1000 + 3;

TEST_CASE("cuda: a uniform draw over more elements than one pass of the grid covers") {
  if (!testing::have_gpu()) return;
  check_uniform<float>(kBeyondOneGridPass, {5, 1, 0});
}

// For bfloat16 too the device must equal the CPU bit for bit: p, u and the scale are float on both, and y is
// the product rounded once to bfloat16 by the same kiln::bfloat16 rounding.
template <typename T>
void check_dropout(std::int64_t n, opmath_t<T> p, const PhiloxState& state) {
  INFO("n = ", n, ", p = ", p, ", ", dtype_name(dtype_of_v<T>));
  std::mt19937_64 engine(n);
  std::uniform_real_distribution<double> uniform(-3.0, 3.0);
  std::vector<T> x(static_cast<std::size_t>(n));
  for (T& v : x) v = static_cast<T>(uniform(engine));
  std::vector<T> y(x.size()), mask(x.size());
  kernels::reference::dropout_forward(n, p, state, x.data(), y.data(), mask.data());
  const Tensor x_gpu = testing::to_gpu(x), y_gpu = testing::empty_gpu<T>(n),
               mask_gpu = testing::empty_gpu<T>(n);
  kernels::dropout_forward(Device::cuda(), n, p, state, x_gpu.data<T>(), y_gpu.data<T>(), mask_gpu.data<T>());
  std::string difference = first_bit_difference(testing::to_host<T>(mask_gpu), mask);
  CHECK_MESSAGE(difference.empty(), ("mask: " + difference));
  difference = first_bit_difference(testing::to_host<T>(y_gpu), y);
  CHECK_MESSAGE(difference.empty(), ("output: " + difference));
}

TEST_CASE("cuda: dropout's mask and output equal the CPU's bit for bit, float, double and bfloat16") {
  if (!testing::have_gpu()) return;
  for (const PhiloxState& state : states()) {
    INFO("seed ", state.seed, ", offset ", state.offset);
    for (const std::int64_t n : {0, 1, 5, 31, 257, 100003}) {
      for (const double p : {0.0, 0.3, 0.5, 1.0}) {
        check_dropout<float>(n, static_cast<float>(p), state);
        check_dropout<double>(n, p, state);
        check_dropout<bfloat16>(n, static_cast<float>(p), state);
      }
    }
  }
  check_dropout<float>(kBeyondOneGridPass, 0.25f, {9, 0, 0});
  check_dropout<bfloat16>(1001, 0.1f, {9, 0, 0});                   // a scale that is not a bfloat16 (1/0.9f)
}

TEST_CASE("cuda: dropout in place (output over the input)") {
  if (!testing::have_gpu()) return;
  const std::int64_t n = 1001;
  const PhiloxState state{3, 0, 0};
  std::vector<float> x(static_cast<std::size_t>(n));
  for (std::int64_t i = 0; i < n; ++i) x[static_cast<std::size_t>(i)] = static_cast<float>(i) - 500.0f;
  std::vector<float> y(x.size()), mask(x.size());
  kernels::reference::dropout_forward(n, 0.4f, state, x.data(), y.data(), mask.data());
  const Tensor buffer = testing::to_gpu(x), mask_gpu = testing::empty_gpu<float>(n);
  kernels::dropout_forward(Device::cuda(), n, 0.4f, state, buffer.data<float>(), buffer.data<float>(),
                           mask_gpu.data<float>());
  const std::string difference = first_bit_difference(testing::to_host<float>(buffer), y);
  CHECK_MESSAGE(difference.empty(), difference);
}

// ---- Tensor level ------------------------------------------------------------------------------------

TEST_CASE("cuda: raw::dropout_forward on a CUDA tensor equals the CPU's, and advances the generator alike") {
  if (!testing::have_gpu()) return;
  const Shape shape{8, 3, 17, 5};
  const Tensor x = Tensor::randn(shape, DType::Float32);
  const Tensor x_gpu = x.to(Device::cuda());
  Generator on_cpu(42, 1), on_gpu(42, 1);
  for (int step = 0; step < 2; ++step) {  // the second draw starts where the first ended
    INFO("draw ", step);
    const raw::DropoutResult expected = raw::dropout_forward(x, 0.3, on_cpu);
    const raw::DropoutResult actual = raw::dropout_forward(x_gpu, 0.3, on_gpu);
    CHECK(actual.output.device() == Device::cuda());
    CHECK(on_gpu.offset() == on_cpu.offset());
    std::string difference = first_bit_difference(actual.mask.to(Device::cpu()).to_vector<float>(),
                                                  expected.mask.to_vector<float>());
    CHECK_MESSAGE(difference.empty(), ("mask: " + difference));
    difference = first_bit_difference(actual.output.to(Device::cpu()).to_vector<float>(),
                                      expected.output.to_vector<float>());
    CHECK_MESSAGE(difference.empty(), ("output: " + difference));
  }
}

TEST_CASE("cuda: raw::dropout_forward on a bfloat16 CUDA tensor equals the CPU's bit for bit") {
  if (!testing::have_gpu()) return;
  const Shape shape{8, 3, 17, 5};
  const Tensor x = raw::cast(Tensor::randn(shape, DType::Float32), DType::BFloat16);
  Generator on_cpu(42, 1), on_gpu(42, 1);
  const raw::DropoutResult expected = raw::dropout_forward(x, 0.3, on_cpu);
  const raw::DropoutResult actual = raw::dropout_forward(x.to(Device::cuda()), 0.3, on_gpu);
  CHECK(actual.output.dtype() == DType::BFloat16);
  CHECK(actual.output.device() == Device::cuda());
  std::string difference = first_bit_difference(actual.mask.to(Device::cpu()).to_vector<bfloat16>(),
                                                expected.mask.to_vector<bfloat16>());
  CHECK_MESSAGE(difference.empty(), ("mask: " + difference));
  difference = first_bit_difference(actual.output.to(Device::cpu()).to_vector<bfloat16>(),
                                    expected.output.to_vector<bfloat16>());
  CHECK_MESSAGE(difference.empty(), ("output: " + difference));
}

}  // namespace

}  // namespace cuda_random_cuda_test
