// Tests of the bfloat16 pooling kernels (kernels/pool): the bfloat16 reference against the double and float
// references run on the same values widened, over odd geometries (batch 1, a 1x1 input, ceil mode, both
// average-pool divisors, overlapping and skipping windows, 17 and 33 channels), ties and NaNs in max
// pooling; and the Tensor-level ops (raw::) on bfloat16 tensors against the same ops on float32 tensors.
//
// Exactness. Every input is a bfloat16, so each wider reference reads exactly the same values. Max pooling
// only selects; the average pooling forward sums in double; the bfloat16 backward passes add in double
// (pool_gradient_sum_t) in the order the double reference adds. So the double reference's result, rounded
// once to bfloat16, is the bfloat16 reference's bit for bit, and is compared so. The float reference rounds
// its shares and sums to float before the final rounding to bfloat16: within 1 bfloat16 ulp.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <random>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "core/bfloat16.hpp"
#include "core/raw.hpp"
#include "core/tensor.hpp"
#include "kernels/pool/pool.hpp"
#include "tests/support/bfloat16_testing.hpp"
#include "tests/support/fast_kernel_testing.hpp"
#include "tests/support/matches_reference.hpp"

namespace kernels_pool_bf16_test {

namespace {

using namespace kiln;
using kernels::Pool2dGeometry;
using testing::bfloat16_difference;
using testing::check_bfloat16_against_wider;
using testing::converted;
using testing::matches_reference;
using testing::random_values;
using testing::Tolerance;
namespace ref = kernels::reference;

std::int64_t input_size(const Pool2dGeometry& g) { return g.batch * g.channels * g.in_height * g.in_width; }
std::int64_t output_size(const Pool2dGeometry& g) {
  return g.batch * g.channels * g.out_height() * g.out_width();
}

std::string describe(const Pool2dGeometry& g) {
  std::ostringstream out;
  out << "[" << g.batch << ", " << g.channels << ", " << g.in_height << ", " << g.in_width << "] kernel "
      << g.kernel_h << "x" << g.kernel_w << " stride " << g.stride_h << "x" << g.stride_w << " pad "
      << g.pad_h << "x" << g.pad_w << (g.ceil_mode ? " ceil" : "")
      << (g.count_include_pad ? "" : " excluding pad");
  return out.str();
}

Pool2dGeometry pool(std::int64_t n, std::int64_t c, std::int64_t h, std::int64_t w, std::int64_t kernel,
                    std::int64_t stride, std::int64_t pad, bool ceil_mode = false,
                    bool count_include_pad = true) {
  return {.batch = n,
          .channels = c,
          .in_height = h,
          .in_width = w,
          .kernel_h = kernel,
          .kernel_w = kernel,
          .stride_h = stride,
          .stride_w = stride,
          .pad_h = pad,
          .pad_w = pad,
          .ceil_mode = ceil_mode,
          .count_include_pad = count_include_pad};
}

std::vector<Pool2dGeometry> odd_geometries() {
  Pool2dGeometry rectangular = pool(2, 3, 9, 7, 3, 3, 1, true, false);
  rectangular.kernel_w = 2;
  rectangular.stride_w = 1;
  rectangular.pad_w = 0;
  return {
      pool(1, 1, 1, 1, 1, 1, 0),                // 1x1 input, batch 1
      pool(2, 3, 8, 8, 2, 2, 0),                // the common 2x2 stride 2
      pool(1, 17, 7, 9, 2, 2, 0, true),         // odd sides, ceil mode adds a clipped window
      pool(3, 5, 7, 9, 3, 2, 1),                // ResNet's stem pool
      pool(3, 5, 8, 10, 3, 2, 1, true, false),  // ceil mode with padding, padding not counted
      pool(2, 3, 6, 6, 3, 1, 1),                // overlapping windows: an input feeds up to 9 outputs
      pool(2, 3, 9, 7, 1, 2, 0),                // stride past the kernel: some inputs feed no output
      rectangular,                              // 3x2 kernel, 3x1 stride
      pool(2, 33, 11, 13, 4, 3, 2, true),       // 33 channels
  };
}

// Values from {-1, -0.5, 0, 0.5, 1}, so most windows hold ties, with a NaN every 7 to 19 elements.
std::vector<bfloat16> tied_values_with_nans(std::int64_t count, std::uint64_t seed) {
  std::mt19937_64 engine(seed);
  std::vector<bfloat16> values(static_cast<std::size_t>(count));
  for (bfloat16& v : values) v = bfloat16(static_cast<float>(static_cast<int>(engine() % 5) - 2) / 2.0f);
  for (std::int64_t i = 0; i < count; i += 7 + static_cast<std::int64_t>(engine() % 13)) {
    values[static_cast<std::size_t>(i)] = bfloat16(std::numeric_limits<float>::quiet_NaN());
  }
  return values;
}

template <typename T>
std::vector<T> sized(std::int64_t count) {
  return std::vector<T>(static_cast<std::size_t>(count));
}

}  // namespace

TEST_CASE("bfloat16 max_pool2d reference: forward and backward equal the wider references, ties and NaNs") {
  std::uint64_t seed = 1;
  for (const Pool2dGeometry& g : odd_geometries()) {
    for (const bool with_ties : {false, true}) {
      INFO(describe(g), with_ties ? ", ties and NaNs" : ", random values");
      const std::int64_t in = input_size(g), out = output_size(g);
      const std::vector<bfloat16> x =
          with_ties ? tied_values_with_nans(in, seed) : random_values<bfloat16>(in, seed);
      const std::vector<bfloat16> gy = random_values<bfloat16>(out, seed + 1);
      seed += 2;

      auto y = sized<bfloat16>(out);
      auto argmax = sized<std::int32_t>(out);
      ref::max_pool2d_forward(g, x.data(), y.data(), argmax.data());
      auto y_double = sized<double>(out);
      auto argmax_double = sized<std::int32_t>(out);
      ref::max_pool2d_forward(g, converted<double>(x).data(), y_double.data(), argmax_double.data());
      auto y_float = sized<float>(out);
      auto argmax_float = sized<std::int32_t>(out);
      ref::max_pool2d_forward(g, converted<float>(x).data(), y_float.data(), argmax_float.data());
      check_bfloat16_against_wider(y, y_double, y_float, "y");
      CHECK(argmax == argmax_double);
      CHECK(argmax == argmax_float);

      auto gx = sized<bfloat16>(in);
      ref::max_pool2d_backward(g, gy.data(), argmax.data(), gx.data());
      auto gx_double = sized<double>(in);
      ref::max_pool2d_backward(g, converted<double>(gy).data(), argmax.data(), gx_double.data());
      auto gx_float = sized<float>(in);
      ref::max_pool2d_backward(g, converted<float>(gy).data(), argmax.data(), gx_float.data());
      check_bfloat16_against_wider(gx, gx_double, gx_float, "gx");
    }
  }
}

TEST_CASE("bfloat16 avg_pool2d reference: forward and backward equal the wider references, both divisors") {
  std::uint64_t seed = 100;
  for (Pool2dGeometry g : odd_geometries()) {
    for (const bool count_include_pad : {true, false}) {
      g.count_include_pad = count_include_pad;
      INFO(describe(g));
      const std::int64_t in = input_size(g), out = output_size(g);
      // Inputs around 2, so a window's mean is far from zero and a lost or doubled element would show.
      const std::vector<bfloat16> x = random_values<bfloat16>(in, seed, 1.0f, 3.0f);
      const std::vector<bfloat16> gy = random_values<bfloat16>(out, seed + 1);
      seed += 2;

      auto y = sized<bfloat16>(out);
      ref::avg_pool2d_forward(g, x.data(), y.data());
      auto y_double = sized<double>(out);
      ref::avg_pool2d_forward(g, converted<double>(x).data(), y_double.data());
      auto y_float = sized<float>(out);
      ref::avg_pool2d_forward(g, converted<float>(x).data(), y_float.data());
      check_bfloat16_against_wider(y, y_double, y_float, "y");

      auto gx = sized<bfloat16>(in);
      ref::avg_pool2d_backward(g, gy.data(), gx.data());
      auto gx_double = sized<double>(in);
      ref::avg_pool2d_backward(g, converted<double>(gy).data(), gx_double.data());
      auto gx_float = sized<float>(in);
      ref::avg_pool2d_backward(g, converted<float>(gy).data(), gx_float.data());
      check_bfloat16_against_wider(gx, gx_double, gx_float, "gx");
    }
  }
}

TEST_CASE("bfloat16 global_avg_pool2d reference: forward and backward equal the wider references") {
  std::uint64_t seed = 200;
  // planes x plane size: 1x1 planes, planes shorter and longer than a warp, a 224x224 plane + 3.
  for (const auto& [planes, plane_size] : std::vector<std::pair<std::int64_t, std::int64_t>>{
           {1, 1}, {3, 1}, {17, 7 * 7}, {33, 8 * 8}, {2, 224 * 224 + 3}}) {
    INFO(planes, " planes of ", plane_size);
    const kernels::GlobalPool2dGeometry g{.channels = planes, .plane_size = plane_size};
    const std::vector<bfloat16> x = random_values<bfloat16>(planes * plane_size, seed, 1.0f, 3.0f);
    const std::vector<bfloat16> gy = random_values<bfloat16>(planes, seed + 1);
    seed += 2;

    auto y = sized<bfloat16>(planes);
    ref::global_avg_pool2d_forward(g, x.data(), y.data());
    auto y_double = sized<double>(planes);
    ref::global_avg_pool2d_forward(g, converted<double>(x).data(), y_double.data());
    auto y_float = sized<float>(planes);
    ref::global_avg_pool2d_forward(g, converted<float>(x).data(), y_float.data());
    check_bfloat16_against_wider(y, y_double, y_float, "y");

    auto gx = sized<bfloat16>(planes * plane_size);
    ref::global_avg_pool2d_backward(g, gy.data(), gx.data());
    auto gx_double = sized<double>(planes * plane_size);
    ref::global_avg_pool2d_backward(g, converted<double>(gy).data(), gx_double.data());
    auto gx_float = sized<float>(planes * plane_size);
    ref::global_avg_pool2d_backward(g, converted<float>(gy).data(), gx_float.data());
    check_bfloat16_against_wider(gx, gx_double, gx_float, "gx");
  }
}

TEST_CASE("bfloat16 Tensor-level pooling ops match the float32 ops on the same values") {
  // The float32 ops run the AVX kernels where the CPU has them. Max pooling selects, so its output and argmax
  // are exact; the sums differ from the bfloat16 path's double sums by float rounding, then bfloat16's own
  // rounding: Tolerance::bfloat16() covers 1 bfloat16 ulp (2^-8 relative) with room to spare.
  const Shape shape{3, 17, 13, 11};
  const std::vector<bfloat16> x_values = random_values<bfloat16>(shape.numel(), 7, -2.0f, 2.0f);
  const Tensor x = Tensor::from_vector(x_values, shape),
               x_float = Tensor::from_vector(converted<float>(x_values), shape);
  auto as_double = [](const Tensor& t) {
    REQUIRE(t.dtype() == DType::BFloat16);
    return converted<double>(t.to_vector<bfloat16>());
  };
  auto expect_close = [&](const Tensor& actual, const Tensor& expected_float, const char* what) {
    const std::vector<double> a = as_double(actual), e = expected_float.to_vector<double>();
    REQUIRE(actual.shape() == expected_float.shape());
    const auto report = matches_reference(a.data(), e.data(), actual.numel(), Tolerance::bfloat16());
    CHECK_MESSAGE(report.ok, what, ": ", report.message);
  };
  std::uint64_t seed = 300;
  for (const Pool2dOptions& options :
       {Pool2dOptions{.kernel = {2, 2}}, Pool2dOptions{.kernel = {3, 3}, .stride = {2, 2}, .padding = {1, 1}},
        Pool2dOptions{.kernel = {3, 3},
        .stride = {2, 2},
        .padding = {1, 1},
        .ceil_mode = true,
        .count_include_pad = false}}) {
    INFO("kernel ", options.kernel[0], " padding ", options.padding[0], (options.ceil_mode ? " ceil" : ""));
    const raw::MaxPoolResult max = raw::max_pool2d_forward(x, options);
    const raw::MaxPoolResult max_float = raw::max_pool2d_forward(x_float, options);
    REQUIRE(max.output.shape() == max_float.output.shape());
    CHECK(as_double(max.output) == max_float.output.to_vector<double>());
    CHECK(max.argmax.to_vector<std::int32_t>() == max_float.argmax.to_vector<std::int32_t>());

    const std::vector<bfloat16> gy_values = random_values<bfloat16>(max.output.numel(), seed++);
    const Tensor gy = Tensor::from_vector(gy_values, max.output.shape());
    const Tensor gy_float = Tensor::from_vector(converted<float>(gy_values), max.output.shape());
    expect_close(raw::max_pool2d_backward(gy, max.argmax, shape, options, false),
                 raw::max_pool2d_backward(gy_float, max_float.argmax, shape, options, false),
                 "max_pool2d backward");
    expect_close(raw::avg_pool2d_forward(x, options), raw::avg_pool2d_forward(x_float, options),
                 "avg_pool2d");
    expect_close(raw::avg_pool2d_backward(gy, shape, options, false),
                 raw::avg_pool2d_backward(gy_float, shape, options, false), "avg_pool2d backward");
  }
  expect_close(raw::global_avg_pool2d_forward(x), raw::global_avg_pool2d_forward(x_float),
               "global_avg_pool2d");
  const std::vector<bfloat16> gy_values = random_values<bfloat16>(3 * 17, seed);
  expect_close(raw::global_avg_pool2d_backward(Tensor::from_vector(gy_values, {3, 17}), shape, false),
               raw::global_avg_pool2d_backward(Tensor::from_vector(converted<float>(gy_values), {3, 17}),
                                               shape, false),
               "global_avg_pool2d backward");
}

}  // namespace kernels_pool_bf16_test
