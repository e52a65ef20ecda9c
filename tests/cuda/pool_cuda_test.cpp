// Tests of the CUDA pooling kernels (kernels/pool/cuda_pool.cu), called through the dispatch functions with
// Device::cuda(), against the reference kernels on the same host data, float, double and bfloat16: odd
// geometries (batch 1, a 1x1 input, channels 3/17/33, planes that are not multiples of 32, 2x2 and 3x3
// windows with stride 2 and padding, overlapping windows, strides that skip inputs, ceil mode, both
// average-pool divisors), ties and NaNs in max pooling, sizes that need several grid-stride iterations, and
// the Tensor-level ops (raw::) on CUDA tensors against the same ops on the CPU; every geometry in both
// layouts, NCHW and channels-last (the reference reads either). Each test skips without a GPU.
//
// Tolerances. Max pooling is compared bitwise (and argmax exactly): the forward only selects values, and the
// backward gathers each input's gradient in the reference's order and precision. Average pooling runs the
// reference's own arithmetic (window sums in double, in its order; shares rounded to T and added in its
// order), so it is expected to match exactly as well; it is held to Tolerance::float32() / float64() all the
// same, the precision's own rounding and no more. Global average pooling sums an NCHW plane in another order
// (32 lane sums, then a shuffle tree), in double, then rounds to T: the same tolerances cover it (a
// channels-last plane is summed in the reference's order).
// bfloat16: max pooling and both backward passes bitwise as above (the gathers add in double, as the
// reference does); the average forward runs the reference's double arithmetic, rounded once; the global
// average's double sum in another order can land on the other side of a rounding boundary only when the
// double results differ, so 1 bfloat16 ulp at most: Tolerance::bfloat16() ({1e-2, 1e-2}) covers it.
#include <doctest/doctest.h>

#include <array>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <sstream>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "core/generator.hpp"
#include "core/raw.hpp"
#include "core/tensor.hpp"
#include "kernels/cuda_grid.hpp"
#include "kernels/pool/pool.hpp"
#include "tests/support/cuda_testing.hpp"
#include "tests/support/fast_kernel_testing.hpp"
#include "tests/support/matches_reference.hpp"

namespace cuda_pool_cuda_test {

namespace {

using namespace kiln;
using kernels::GlobalPool2dGeometry;
using kernels::Pool2dGeometry;
using testing::bitwise_equal;
using testing::empty_gpu;
using testing::have_gpu;
using testing::matches_reference;
using testing::to_gpu;
using testing::to_host;
using testing::Tolerance;
namespace ref = kernels::reference;

template <typename T>
const char* type_name() {
  if constexpr (std::is_same_v<T, bfloat16>) return " bfloat16";
  return sizeof(T) == sizeof(float) ? " float" : " double";
}

// Tolerance::of<T>() for float and double, Tolerance::bfloat16() for bfloat16 (see the top).
template <typename T>
Tolerance tolerance() {
  if constexpr (std::is_same_v<T, bfloat16>) return Tolerance::bfloat16();
  return Tolerance::of<T>();
}

std::int64_t input_size(const Pool2dGeometry& g) { return g.batch * g.channels * g.in_height * g.in_width; }
std::int64_t output_size(const Pool2dGeometry& g) {
  return g.batch * g.channels * g.out_height() * g.out_width();
}

std::string describe(const Pool2dGeometry& g) {
  std::ostringstream out;
  out << "[" << g.batch << ", " << g.channels << ", " << g.in_height << ", " << g.in_width << "] kernel "
      << g.kernel_h << "x" << g.kernel_w << " stride " << g.stride_h << "x" << g.stride_w << " pad "
      << g.pad_h << "x" << g.pad_w << (g.ceil_mode ? " ceil" : "")
      << (g.count_include_pad ? "" : " excluding pad") << (g.channels_last ? " channels-last" : "");
  return out.str();
}

Pool2dGeometry pool(std::int64_t n, std::int64_t c, std::int64_t h, std::int64_t w, std::int64_t kernel_h,
                    std::int64_t kernel_w, std::int64_t stride_h, std::int64_t stride_w, std::int64_t pad_h,
                    std::int64_t pad_w, bool ceil_mode = false, bool count_include_pad = true) {
  return {.batch = n,
          .channels = c,
          .in_height = h,
          .in_width = w,
          .kernel_h = kernel_h,
          .kernel_w = kernel_w,
          .stride_h = stride_h,
          .stride_w = stride_w,
          .pad_h = pad_h,
          .pad_w = pad_w,
          .ceil_mode = ceil_mode,
          .count_include_pad = count_include_pad};
}

// Valid geometries (padding at most half the kernel, as raw:: requires) with the shapes the kernels' index
// arithmetic could get wrong, each in both layouts.
std::vector<Pool2dGeometry> odd_geometries() {
  std::vector<Pool2dGeometry> geometries = {
      pool(1, 1, 1, 1, 1, 1, 1, 1, 0, 0),                // 1x1 input, batch 1
      pool(2, 3, 8, 8, 2, 2, 2, 2, 0, 0),                // the common 2x2 stride 2
      pool(1, 17, 7, 9, 2, 2, 2, 2, 0, 0, true),         // odd sides, ceil mode adds a clipped window
      pool(3, 5, 7, 9, 3, 3, 2, 2, 1, 1),                // ResNet's stem pool
      pool(3, 5, 7, 9, 3, 3, 2, 2, 1, 1, false, false),  // the same, padding not counted
      pool(3, 5, 8, 10, 3, 3, 2, 2, 1, 1, true),         // ceil mode with padding
      pool(3, 5, 8, 10, 3, 3, 2, 2, 1, 1, true, false),
      pool(2, 3, 6, 6, 3, 3, 1, 1, 1, 1),               // overlapping windows: an input feeds up to 9 outputs
      pool(2, 3, 9, 7, 1, 1, 2, 2, 0, 0),               // stride past the kernel: some inputs feed no output
      pool(2, 3, 9, 7, 3, 2, 3, 1, 1, 0, true, false),  // rectangular everything
      pool(1, 2, 5, 5, 5, 5, 1, 1, 2, 2, true),         // windows wider than half the input
      pool(2, 33, 11, 13, 4, 4, 3, 3, 2, 2, true),      // 33 channels
      pool(4, 16, 33, 35, 2, 2, 2, 2, 0, 0),            // 1155-value planes, several blocks
  };
  for (std::size_t i = 0, nchw = geometries.size(); i < nchw; ++i) {
    geometries.push_back(geometries[i]);
    geometries.back().channels_last = true;
  }
  return geometries;
}

Pool2dGeometry channels_last(Pool2dGeometry g) {
  g.channels_last = true;
  return g;
}

template <typename T>
std::vector<T> uniform_values(std::int64_t count, std::uint64_t seed) {
  std::mt19937_64 engine(seed);
  std::uniform_real_distribution<double> uniform(-1.0, 1.0);
  std::vector<T> values(static_cast<std::size_t>(count));
  for (T& v : values) v = static_cast<T>(uniform(engine));
  return values;
}

// Values from {-1, -0.5, 0, 0.5, 1}, so most windows hold ties, with a NaN every 7 to 19 elements, so some
// windows hold one NaN, some two, and most none.
template <typename T>
std::vector<T> tied_values_with_nans(std::int64_t count, std::uint64_t seed) {
  std::mt19937_64 engine(seed);
  std::vector<T> values(static_cast<std::size_t>(count));
  for (T& v : values) v = static_cast<T>(static_cast<double>(static_cast<int>(engine() % 5) - 2) / 2.0);
  for (std::int64_t i = 0; i < count; i += 7 + static_cast<std::int64_t>(engine() % 13)) {
    values[static_cast<std::size_t>(i)] = static_cast<T>(std::numeric_limits<double>::quiet_NaN());
  }
  return values;
}

template <typename T>
void check_max_pool(const Pool2dGeometry& g, std::uint64_t seed) {
  INFO(describe(g), type_name<T>());
  const std::int64_t in = input_size(g), out = output_size(g);
  const std::vector<T> x = tied_values_with_nans<T>(in, seed), gy = uniform_values<T>(out, seed + 1);

  std::vector<T> expected_y(static_cast<std::size_t>(out));
  std::vector<std::int32_t> expected_argmax(static_cast<std::size_t>(out));
  ref::max_pool2d_forward(g, x.data(), expected_y.data(), expected_argmax.data());
  const Tensor x_gpu = to_gpu(x), y_gpu = empty_gpu<T>(out), argmax_gpu = empty_gpu<std::int32_t>(out);
  kernels::max_pool2d_forward(Device::cuda(), g, x_gpu.data<T>(), y_gpu.data<T>(),
                              argmax_gpu.data<std::int32_t>());
  CHECK(bitwise_equal(to_host<T>(y_gpu), expected_y));
  CHECK(to_host<std::int32_t>(argmax_gpu) == expected_argmax);

  // The backward reads the reference's argmax, so its check isolates the backward kernel.
  std::vector<T> expected_gx(static_cast<std::size_t>(in));
  ref::max_pool2d_backward(g, gy.data(), expected_argmax.data(), expected_gx.data());
  const Tensor gy_gpu = to_gpu(gy), expected_argmax_gpu = to_gpu(expected_argmax), gx_gpu = empty_gpu<T>(in);
  kernels::max_pool2d_backward(Device::cuda(), g, gy_gpu.data<T>(), expected_argmax_gpu.data<std::int32_t>(),
                               gx_gpu.data<T>());
  CHECK(bitwise_equal(to_host<T>(gx_gpu), expected_gx));
}

template <typename T>
void check_avg_pool(const Pool2dGeometry& g, std::uint64_t seed) {
  INFO(describe(g), type_name<T>());
  const std::int64_t in = input_size(g), out = output_size(g);
  const std::vector<T> x = uniform_values<T>(in, seed), gy = uniform_values<T>(out, seed + 1);

  std::vector<T> expected_y(static_cast<std::size_t>(out));
  ref::avg_pool2d_forward(g, x.data(), expected_y.data());
  const Tensor x_gpu = to_gpu(x), y_gpu = empty_gpu<T>(out);
  kernels::avg_pool2d_forward(Device::cuda(), g, x_gpu.data<T>(), y_gpu.data<T>());
  const auto forward = matches_reference(to_host<T>(y_gpu).data(), expected_y.data(), out, tolerance<T>());
  CHECK_MESSAGE(forward.ok, "forward: ", forward.message);

  std::vector<T> expected_gx(static_cast<std::size_t>(in));
  ref::avg_pool2d_backward(g, gy.data(), expected_gx.data());
  const Tensor gy_gpu = to_gpu(gy), gx_gpu = empty_gpu<T>(in);
  kernels::avg_pool2d_backward(Device::cuda(), g, gy_gpu.data<T>(), gx_gpu.data<T>());
  const auto backward = matches_reference(to_host<T>(gx_gpu).data(), expected_gx.data(), in, tolerance<T>());
  CHECK_MESSAGE(backward.ok, "backward: ", backward.message);
}

template <typename T>
void check_global_avg_pool(const GlobalPool2dGeometry& g, std::uint64_t seed) {
  const std::int64_t planes = g.planes(), plane_size = g.plane_size;
  INFO(g.batch, " x ", g.channels, " planes of ", plane_size, type_name<T>(),
       (g.channels_last ? " channels-last" : ""));
  // Values around 3, so a plane's mean is far from zero and a lost or doubled element would show.
  std::vector<T> x = uniform_values<T>(planes * plane_size, seed);
  for (T& v : x) v = static_cast<T>(v + 3.0);
  const std::vector<T> gy = uniform_values<T>(planes, seed + 1);

  std::vector<T> expected_y(static_cast<std::size_t>(planes));
  ref::global_avg_pool2d_forward(g, x.data(), expected_y.data());
  const Tensor x_gpu = to_gpu(x), y_gpu = empty_gpu<T>(planes);
  kernels::global_avg_pool2d_forward(Device::cuda(), g, x_gpu.data<T>(), y_gpu.data<T>());
  const auto forward = matches_reference(to_host<T>(y_gpu).data(), expected_y.data(), planes, tolerance<T>());
  CHECK_MESSAGE(forward.ok, "forward: ", forward.message);

  std::vector<T> expected_gx(static_cast<std::size_t>(planes * plane_size));
  ref::global_avg_pool2d_backward(g, gy.data(), expected_gx.data());
  const Tensor gy_gpu = to_gpu(gy), gx_gpu = empty_gpu<T>(planes * plane_size);
  kernels::global_avg_pool2d_backward(Device::cuda(), g, gy_gpu.data<T>(), gx_gpu.data<T>());
  const auto backward =
      matches_reference(to_host<T>(gx_gpu).data(), expected_gx.data(), planes * plane_size, tolerance<T>());
  CHECK_MESSAGE(backward.ok, "backward: ", backward.message);

  // Added into a gradient so far: the reference's accumulating pass (a double sum, rounded once).
  const std::vector<T> sum_so_far = uniform_values<T>(planes * plane_size, seed + 2);
  std::vector<T> expected_sum = sum_so_far;
  ref::global_avg_pool2d_backward(g, gy.data(), expected_sum.data(), true);
  const Tensor sum_gpu = to_gpu(sum_so_far);
  kernels::global_avg_pool2d_backward(Device::cuda(), g, gy_gpu.data<T>(), sum_gpu.data<T>(), true);
  const auto added =
      matches_reference(to_host<T>(sum_gpu).data(), expected_sum.data(), planes * plane_size, tolerance<T>());
  CHECK_MESSAGE(added.ok, "backward, accumulating: ", added.message);
}

}  // namespace

TEST_CASE("cuda: max_pool2d forward and backward are bitwise the reference's, with ties and NaNs") {
  if (!have_gpu()) return;
  std::uint64_t seed = 1;
  for (const Pool2dGeometry& g : odd_geometries()) {
    check_max_pool<float>(g, seed++);
    check_max_pool<double>(g, seed++);
  }
}

TEST_CASE("cuda: max_pool2d on a batch large enough for several grid-stride iterations") {
  if (!have_gpu()) return;
  // More inputs than one grid pass covers (17 million on a GPU: 16 x 64 planes of 129 x 129), so some of
  // the backward's threads (one per input) take a second element.
  const std::int64_t side = testing::side_past_one_grid_pass(16 * 64);
  check_max_pool<float>(pool(16, 64, side, side, 2, 2, 2, 2, 0, 0), 101);
  check_max_pool<float>(pool(128, 16, 32, 32, 3, 3, 2, 2, 1, 1), 102);
  check_max_pool<double>(pool(128, 16, 32, 32, 2, 2, 2, 2, 0, 0), 103);
  check_max_pool<float>(channels_last(pool(16, 64, side, side, 2, 2, 2, 2, 0, 0)), 104);
}

TEST_CASE("cuda: avg_pool2d forward and backward match the reference, both divisors, ceil mode") {
  if (!have_gpu()) return;
  std::uint64_t seed = 200;
  for (const Pool2dGeometry& g : odd_geometries()) {
    check_avg_pool<float>(g, seed++);
    check_avg_pool<double>(g, seed++);
  }
  const std::int64_t side = testing::side_past_one_grid_pass(16 * 64);  // more inputs than one grid pass
  check_avg_pool<float>(pool(16, 64, side, side, 3, 3, 2, 2, 1, 1, false, false), seed++);
  check_avg_pool<double>(pool(128, 16, 32, 32, 2, 2, 2, 2, 0, 0), seed++);
  check_avg_pool<float>(channels_last(pool(16, 64, side, side, 3, 3, 2, 2, 1, 1, false, false)), seed++);
}

// Global average pooling takes a warp per plane: more planes than a grid of kMaxGridBlocks blocks of 8 warps
// covers (524,280 on a GPU, far fewer emulated) make warps take several.
constexpr std::int64_t kPlanesBeyondOneGridPass =
    kernels::cuda::kMaxGridBlocks * kernels::cuda::kWarpsPerBlock + 37;

// Batch x channels x plane size, each in both layouts: 1x1 planes, planes shorter and longer than a warp, not
// multiples of 32, channels not multiples of 32, and more planes than one grid pass covers, so warps take
// several.
std::vector<GlobalPool2dGeometry> global_geometries() {
  std::vector<GlobalPool2dGeometry> geometries;
  for (const bool channels_last : {false, true}) {
    for (const auto [batch, channels, plane_size] :
         std::vector<std::array<std::int64_t, 3>>{{1, 1, 1},
                                                  {1, 3, 1},
                                                  {1, 17, 7 * 7},
                                                  {3, 11, 8 * 8},
                                                  {2, 32, 33},
                                                  {1, 5, 224 * 224 + 3},
                                                  {128, 16, 32 * 32},
                                                  {1, kPlanesBeyondOneGridPass, 1}}) {
      geometries.push_back(
          {.batch = batch, .channels = channels, .plane_size = plane_size, .channels_last = channels_last});
    }
  }
  return geometries;
}

TEST_CASE("cuda: global_avg_pool2d forward and backward match the reference") {
  if (!have_gpu()) return;
  std::uint64_t seed = 300;
  for (const GlobalPool2dGeometry& g : global_geometries()) {
    check_global_avg_pool<float>(g, seed++);
    check_global_avg_pool<double>(g, seed++);
  }
}

namespace {

// An NCHW tensor in the given layout on the CPU and on the GPU (Tensor::to copies densely, so each device's
// copy is brought to the layout where it lies).
std::pair<Tensor, Tensor> on_both_devices(const Tensor& nchw, bool channels_last) {
  const Tensor gpu = nchw.to(Device::cuda());
  if (!channels_last) return {nchw, gpu};
  return {raw::to_channels_last(nchw), raw::to_channels_last(gpu)};
}

// The Tensor-level cases' windows: 2x2, 3x3 stride 2 padded, and the same in ceil mode without the padding
// in the divisor.
std::vector<Pool2dOptions> tensor_level_options() {
  return {Pool2dOptions{.kernel = {2, 2}},
          Pool2dOptions{.kernel = {3, 3}, .stride = {2, 2}, .padding = {1, 1}},
          Pool2dOptions{.kernel = {3, 3},
                        .stride = {2, 2},
                        .padding = {1, 1},
                        .ceil_mode = true,
                        .count_include_pad = false}};
}

}  // namespace

TEST_CASE("cuda: the Tensor-level pooling ops on CUDA tensors match the same ops on the CPU") {
  if (!have_gpu()) return;
  Generator generator(7);
  for (const bool channels_last : {false, true}) {
    INFO((channels_last ? "channels-last" : "nchw"));
    const auto [x, x_gpu] =
        on_both_devices(Tensor::randn({3, 17, 13, 11}, DType::Float32, &generator), channels_last);
    for (const Pool2dOptions& options : tensor_level_options()) {
      INFO("kernel ", options.kernel[0], " padding ", options.padding[0], (options.ceil_mode ? " ceil" : ""));
      const raw::MaxPoolResult cpu = raw::max_pool2d_forward(x, options);
      const raw::MaxPoolResult gpu = raw::max_pool2d_forward(x_gpu, options);
      CHECK(gpu.output.device() == Device::cuda());
      CHECK(gpu.output.shape() == cpu.output.shape());
      CHECK(gpu.output.is_channels_last() == channels_last);
      CHECK(bitwise_equal(gpu.output.to(Device::cpu()).to_vector<float>(), cpu.output.to_vector<float>()));
      CHECK(gpu.argmax.to(Device::cpu()).to_vector<std::int32_t>() == cpu.argmax.to_vector<std::int32_t>());

      const Tensor gy = Tensor::randn(cpu.output.shape(), DType::Float32, &generator);
      const Tensor gx_cpu = raw::max_pool2d_backward(gy, cpu.argmax, x.shape(), options, channels_last);
      const Tensor gx_gpu =
          raw::max_pool2d_backward(gy.to(Device::cuda()), gpu.argmax, x.shape(), options, channels_last);
      CHECK(gx_gpu.is_channels_last() == channels_last);
      CHECK(bitwise_equal(gx_gpu.to(Device::cpu()).to_vector<float>(), gx_cpu.to_vector<float>()));

      const auto avg = matches_reference(raw::avg_pool2d_forward(x_gpu, options).to(Device::cpu()),
                                         raw::avg_pool2d_forward(x, options), Tolerance::float32());
      CHECK_MESSAGE(avg.ok, "avg_pool2d: ", avg.message);
      const auto avg_backward = matches_reference(
          raw::avg_pool2d_backward(gy.to(Device::cuda()), x.shape(), options, channels_last)
              .to(Device::cpu()),
          raw::avg_pool2d_backward(gy, x.shape(), options, channels_last), Tolerance::float32());
      CHECK_MESSAGE(avg_backward.ok, "avg_pool2d backward: ", avg_backward.message);
    }
    const auto global = matches_reference(raw::global_avg_pool2d_forward(x_gpu).to(Device::cpu()),
                                          raw::global_avg_pool2d_forward(x), Tolerance::float32());
    CHECK_MESSAGE(global.ok, "global_avg_pool2d: ", global.message);
  }
}

TEST_CASE("cuda: bfloat16 max_pool2d and avg_pool2d forward and backward match the bfloat16 reference") {
  if (!have_gpu()) return;
  std::uint64_t seed = 400;
  for (const Pool2dGeometry& g : odd_geometries()) {
    check_max_pool<bfloat16>(g, seed++);
    check_avg_pool<bfloat16>(g, seed++);
  }
  // More inputs than one grid pass of the backward covers.
  const std::int64_t side = testing::side_past_one_grid_pass(16 * 64);
  check_max_pool<bfloat16>(pool(16, 64, side, side, 2, 2, 2, 2, 0, 0), seed++);
  check_max_pool<bfloat16>(channels_last(pool(16, 64, side, side, 2, 2, 2, 2, 0, 0)), seed++);
  check_avg_pool<bfloat16>(pool(16, 64, side, side, 3, 3, 2, 2, 1, 1, false, false), seed++);
}

TEST_CASE("cuda: bfloat16 global_avg_pool2d forward and backward match the bfloat16 reference") {
  if (!have_gpu()) return;
  std::uint64_t seed = 500;
  for (const GlobalPool2dGeometry& g : global_geometries()) check_global_avg_pool<bfloat16>(g, seed++);
}

TEST_CASE("cuda: the Tensor-level pooling ops on bfloat16 CUDA tensors match the same ops on the CPU") {
  if (!have_gpu()) return;
  // The CPU runs its bfloat16 kernels (the reference's bits for max pooling); tolerances as for the kernels
  // above.
  const Shape shape{3, 17, 13, 11};
  auto host_values = [](const Tensor& t) {
    REQUIRE(t.dtype() == DType::BFloat16);
    return t.to(Device::cpu()).to_vector<bfloat16>();
  };
  auto expect_close = [&](const Tensor& gpu, const Tensor& cpu, const char* what) {
    REQUIRE(gpu.device() == Device::cuda());
    const std::vector<bfloat16> actual = host_values(gpu), expected = host_values(cpu);
    REQUIRE(actual.size() == expected.size());
    const auto report = matches_reference(actual.data(), expected.data(),
                                          static_cast<std::int64_t>(actual.size()), Tolerance::bfloat16());
    CHECK_MESSAGE(report.ok, what, ": ", report.message);
  };
  std::uint64_t seed = 600;
  for (const bool channels_last : {false, true}) {
    INFO((channels_last ? "channels-last" : "nchw"));
    const auto [x, x_gpu] = on_both_devices(
        Tensor::from_vector(uniform_values<bfloat16>(shape.numel(), 9), shape), channels_last);
    for (const Pool2dOptions& options : tensor_level_options()) {
      INFO("kernel ", options.kernel[0], " padding ", options.padding[0], (options.ceil_mode ? " ceil" : ""));
      const raw::MaxPoolResult cpu = raw::max_pool2d_forward(x, options);
      const raw::MaxPoolResult gpu = raw::max_pool2d_forward(x_gpu, options);
      CHECK(bitwise_equal(host_values(gpu.output), host_values(cpu.output)));
      CHECK(gpu.argmax.to(Device::cpu()).to_vector<std::int32_t>() == cpu.argmax.to_vector<std::int32_t>());

      const Tensor gy =
          Tensor::from_vector(uniform_values<bfloat16>(cpu.output.numel(), seed++), cpu.output.shape());
      const Tensor gy_gpu = gy.to(Device::cuda());
      CHECK(bitwise_equal(
          host_values(raw::max_pool2d_backward(gy_gpu, gpu.argmax, shape, options, channels_last)),
          host_values(raw::max_pool2d_backward(gy, cpu.argmax, shape, options, channels_last))));
      expect_close(raw::avg_pool2d_forward(x_gpu, options), raw::avg_pool2d_forward(x, options),
                   "avg_pool2d");
      expect_close(raw::avg_pool2d_backward(gy_gpu, shape, options, channels_last),
                   raw::avg_pool2d_backward(gy, shape, options, channels_last), "avg_pool2d backward");
    }
    expect_close(raw::global_avg_pool2d_forward(x_gpu), raw::global_avg_pool2d_forward(x),
                 "global_avg_pool2d");
  }
}

}  // namespace cuda_pool_cuda_test
