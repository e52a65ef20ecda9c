// Tests of the threaded / vectorized pooling kernels (kernels/pool/avx512.cpp, avx2.cpp) against the
// reference kernels, at every dispatch level this CPU has, with 1 and 2 threads (which must agree
// bitwise), for float and bfloat16, in both layouts: the NCHW 2x2 stride-2 max pool (odd widths and
// heights, rows wider than a register, ties and NaN), channels-last max pooling of every geometry (channels
// not a multiple of the vector width, fewer channels than one vector), the max backward with disjoint
// windows (channels-last: written densely) and overlapping ones (scattered; bfloat16 adds overlapping shares
// in double), over gradients with NaNs and negative zeros, padded and ceil-mode max and average pools, and
// global average pooling over 1x1 planes, planes not a multiple of the vector width and planes over one
// chunk.
//
// Average pooling runs on values off the grid (over 61 binades), where a sum added in another order than
// the reference's rounds elsewhere.
//
// Tolerances: max pooling values, argmax and gradients, every average-pool result and the global backward
// must be bitwise equal. Global average forward: float within atol 1e-6 + rtol 1e-6
// (float lanes summed over chunks, then double, against an all-double reference); bfloat16 within
// Tolerance::bfloat16() (the same float sums, then one rounding to 8 bits, may land 1 ulp from the
// reference's).
#include <doctest/doctest.h>

#include <array>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

#include "core/bfloat16.hpp"
#include "kernels/cpu_level.hpp"
#include "kernels/parallel.hpp"
#include "kernels/pool/pool.hpp"
#include "tests/support/fast_kernel_testing.hpp"
#include "tests/support/matches_reference.hpp"

namespace kernels_pool_fast_test {

namespace {

using kiln::bfloat16;
using kiln::Device;
using kiln::kernels::GlobalPool2dGeometry;
using kiln::kernels::Pool2dGeometry;
using kiln::testing::at_each_fast_level;
using kiln::testing::bitwise_equal;
using kiln::testing::Tolerance;
namespace kk = kiln::kernels;

// Values on a coarse grid (so windows hold ties; every value exact in bfloat16), with a NaN every 97
// elements when with_nan.
template <typename T>
std::vector<T> grid_values(std::int64_t n, std::uint64_t seed, bool with_nan) {
  std::mt19937_64 engine(seed);
  std::uniform_int_distribution<int> step(-4, 4);
  std::vector<T> v(static_cast<std::size_t>(n));
  for (std::size_t i = 0; i < v.size(); ++i) {
    v[i] = static_cast<T>(with_nan && i % 97 == 13 ? std::numeric_limits<float>::quiet_NaN()
                                                   : 0.5f * static_cast<float>(step(engine)));
  }
  return v;
}

// Values spread over 61 binades, each rounded to T, negative zeros among them: sums of these round, even
// in double (the forward's sums, exact for values a few binades apart), so one added in another order than
// the reference's lands elsewhere.
template <typename T>
std::vector<T> spread_values(std::int64_t n, std::uint64_t seed) {
  std::mt19937_64 engine(seed);
  std::uniform_real_distribution<float> mantissa(-1.0f, 1.0f);
  std::uniform_int_distribution<int> exponent(-30, 30);
  std::vector<T> v(static_cast<std::size_t>(n));
  for (std::size_t i = 0; i < v.size(); ++i) {
    v[i] = static_cast<T>(i % 53 == 7 ? -0.0f : std::ldexp(mantissa(engine), exponent(engine)));
  }
  return v;
}

Pool2dGeometry pool(std::int64_t n, std::int64_t c, std::int64_t h, std::int64_t w, std::int64_t kernel_h,
                    std::int64_t kernel_w, std::int64_t stride, std::int64_t pad, bool ceil_mode = false) {
  return {.batch = n,
          .channels = c,
          .in_height = h,
          .in_width = w,
          .kernel_h = kernel_h,
          .kernel_w = kernel_w,
          .stride_h = stride,
          .stride_w = stride,
          .pad_h = pad,
          .pad_w = pad,
          .ceil_mode = ceil_mode};
}

// Each geometry in both layouts.
std::vector<Pool2dGeometry> geometries() {
  std::vector<Pool2dGeometry> nchw = {
      // 2x2 stride 2: NCHW's vectorized rows, channels-last's commonest window
      pool(2, 3, 8, 8, 2, 2, 2, 0),
      pool(1, 5, 7, 9, 2, 2, 2, 0),
      pool(3, 17, 6, 70, 2, 2, 2, 0),
      pool(16, 16, 32, 33, 2, 2, 2, 0),
      pool(2, 33, 9, 8, 2, 2, 2, 0),  // 33 channels: two full vectors and one lane channels-last
      // padding, ceil mode, overlapping windows (3x3 stride 1 and 2), windows skipping inputs, 1x1
      pool(2, 3, 7, 7, 3, 3, 2, 1),
      pool(1, 5, 6, 9, 3, 2, 2, 1, true),
      pool(8, 16, 32, 32, 2, 2, 2, 0, true),
      pool(2, 20, 6, 6, 3, 3, 1, 1),
      pool(2, 7, 9, 7, 2, 2, 3, 0),
      pool(1, 1, 1, 1, 1, 1, 1, 0),
      // NCHW's rows of any window at column stride 1 or 2, wide enough for several vectors and a partial
      // one between the edge columns: ResNet's 3x3 stride-2 stem pool, 3x3 stride 1, even and odd windows
      // wider than the stride, ceil mode's last window in the right padding, windows that fit the row exactly
      pool(2, 3, 32, 32, 3, 3, 2, 1),
      pool(1, 2, 11, 45, 3, 3, 2, 1),
      pool(1, 3, 9, 37, 3, 3, 1, 1),
      pool(2, 2, 12, 53, 5, 5, 2, 2),
      pool(1, 2, 10, 50, 4, 4, 2, 1),
      pool(1, 2, 7, 35, 3, 3, 2, 0, true),
      pool(1, 2, 8, 36, 2, 3, 1, 0, true),
      pool(1, 1, 5, 6, 6, 6, 2, 3),
      // column strides past 2 on rows of 8 columns and more: the forward's rows take the reference, the float
      // NCHW average backward its gather of spread shares (overlapping 5x5 windows at stride 3, ceil mode)
      pool(2, 3, 10, 29, 3, 3, 3, 1),
      pool(1, 2, 12, 31, 5, 5, 3, 2),
      pool(1, 2, 9, 33, 4, 4, 4, 1, true),
  };
  Pool2dGeometry rows_apart = pool(1, 3, 13, 40, 3, 3, 2, 1);  // stride 3 down the rows, 2 along them
  rows_apart.stride_h = 3;
  nchw.push_back(rows_apart);
  std::vector<Pool2dGeometry> both = nchw;
  for (Pool2dGeometry g : nchw) {
    g.channels_last = true;
    both.push_back(g);
  }
  return both;
}

std::string describe(const Pool2dGeometry& g) {
  std::ostringstream out;
  out << "[" << g.batch << ", " << g.channels << ", " << g.in_height << ", " << g.in_width << "] kernel "
      << g.kernel_h << "x" << g.kernel_w << " stride " << g.stride_h << " pad " << g.pad_h
      << (g.ceil_mode ? " ceil" : "") << (g.count_include_pad ? "" : " excluding pad")
      << (g.channels_last ? " channels-last" : " nchw");
  return out.str();
}

std::size_t in_size(const Pool2dGeometry& g) {
  return static_cast<std::size_t>(g.batch * g.channels * g.in_height * g.in_width);
}
std::size_t out_size(const Pool2dGeometry& g) {
  return static_cast<std::size_t>(g.batch * g.channels * g.out_height() * g.out_width());
}

}  // namespace

TEST_CASE_TEMPLATE("pool fast: max pooling forward and backward equal the reference at every level", T, float,
                   bfloat16) {
  at_each_fast_level([] {
    for (const Pool2dGeometry& g : geometries()) {
      INFO(describe(g));
      const std::vector<T> x = grid_values<T>(static_cast<std::int64_t>(in_size(g)), 1, true);
      // Gradients with NaNs and negative zeros: an input gets 0 + gy, so -0 arrives as +0.
      std::vector<T> gy = grid_values<T>(static_cast<std::int64_t>(out_size(g)), 2, true);
      for (T& v : gy)
        if (static_cast<float>(v) == 0.0f) v = static_cast<T>(-0.0f);
      std::vector<T> y_ref(out_size(g)), gx_ref(in_size(g));
      std::vector<std::int32_t> argmax_ref(out_size(g));
      kk::reference::max_pool2d_forward(g, x.data(), y_ref.data(), argmax_ref.data());
      kk::reference::max_pool2d_backward(g, gy.data(), argmax_ref.data(), gx_ref.data());
      for (const int threads : {1, 2}) {
        kk::set_compute_threads(threads);
        // Outputs start as NaN bits, so an element a kernel leaves unwritten shows.
        std::vector<T> y(out_size(g), static_cast<T>(NAN)), gx(in_size(g), static_cast<T>(NAN));
        std::vector<std::int32_t> argmax(out_size(g), -7);
        kk::max_pool2d_forward(Device::cpu(), g, x.data(), y.data(), argmax.data());
        kk::max_pool2d_backward(Device::cpu(), g, gy.data(), argmax_ref.data(), gx.data());
        CHECK(bitwise_equal(y, y_ref));
        CHECK(argmax == argmax_ref);
        CHECK(bitwise_equal(gx, gx_ref));
      }
    }
  });
}

// Overlapping windows add an input's shares in double and round the sum once into bfloat16; the fast kernels
// round a register of sums at a time through floats rounded "to odd". Four 3x3 stride-2 windows share input
// (1, 1) of a 5x5 plane: each channel's four shares there make a sum that float would round wrongly on its
// way to bfloat16 (1 + 2^-8 + 2^-40 lands on a bfloat16 tie in float, above it in double), or that
// overflows, or is subnormal, or NaN; 19 channels, so both layouts end in a partial register.
TEST_CASE("pool fast: bfloat16 max-pool gradients of overlapping windows round their double sums once") {
  const float max_bf16 = std::ldexp(255.0f / 128.0f, 127);  // the largest finite bfloat16
  const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
  const std::vector<std::vector<float>> shares = {
      {1.0f, 0x1p-8f, 0x1p-40f, 0.0f},           // the tie trap: 1 + 2^-7, not 1
      {-1.0f, -0x1p-8f, -0x1p-40f, 0.0f},        // the same below zero
      {1.0f, 0x1p-8f, -0x1p-40f, 0.0f},          // just under the tie: 1
      {3.0f, 0x1p-7f, 0x1p-30f, 0x1p-60f},       // odd mantissa, dropped bits
      {max_bf16, max_bf16, 0.0f, 0.0f},          // past float's range: infinity
      {-max_bf16, 0x1p-120f, 0.0f, -max_bf16},   // negative infinity
      {0x1p-126f, 0x1p-133f, 0x1p-133f, 0.0f},   // subnormal bits
      {0x1p-133f, -0x1p-133f, 0x1p-133f, 0.0f},  // the smallest subnormal
      {nan, 1.0f, 0.0f, 0.0f},
      {inf, -inf, 0.0f, 0.0f},      // NaN from infinities
      {-0.0f, -0.0f, 0.0f, -0.0f},  // zeros: +0
  };
  for (const bool channels_last : {false, true}) {
    Pool2dGeometry g = pool(1, 19, 5, 5, 3, 3, 2, 1);
    g.channels_last = channels_last;
    INFO(describe(g));
    const std::int64_t C = g.channels, out_plane = g.out_height() * g.out_width();
    // Each window's argmax as the forward would write it, then (1, 1) for the four windows holding it.
    const std::vector<bfloat16> x = grid_values<bfloat16>(static_cast<std::int64_t>(in_size(g)), 3, false);
    std::vector<bfloat16> y(out_size(g));
    std::vector<std::int32_t> argmax(out_size(g));
    kk::reference::max_pool2d_forward(g, x.data(), y.data(), argmax.data());
    std::vector<bfloat16> gy = grid_values<bfloat16>(static_cast<std::int64_t>(out_size(g)), 4, false);
    const std::int64_t shared_input = 1 * g.in_width + 1, windows[] = {0, 1, 3, 4};  // outputs (0..1, 0..1)
    for (std::int64_t c = 0; c < C; ++c) {
      for (std::int64_t k = 0; k < 4; ++k) {
        const std::int64_t out = channels_last ? windows[k] * C + c : c * out_plane + windows[k];
        argmax[static_cast<std::size_t>(out)] = static_cast<std::int32_t>(shared_input);
        gy[static_cast<std::size_t>(out)] = bfloat16(shares[static_cast<std::size_t>(c) % shares.size()][k]);
      }
    }
    std::vector<bfloat16> gx_ref(in_size(g));
    kk::reference::max_pool2d_backward(g, gy.data(), argmax.data(), gx_ref.data());
    const std::int64_t trap = channels_last ? shared_input * C : shared_input;  // channel 0's (1, 1)
    CHECK(gx_ref[static_cast<std::size_t>(trap)].bits == bfloat16(1.0f + 0x1p-7f).bits);
    at_each_fast_level([&] {
      std::vector<bfloat16> gx(in_size(g), bfloat16(nan));
      kk::max_pool2d_backward(Device::cpu(), g, gy.data(), argmax.data(), gx.data());
      CHECK(bitwise_equal(gx, gx_ref));
    });
  }
}

// Where windows overlap, an input that is the maximum of several windows sums their gradients, and the sum
// of shares spread over 61 binades rounds differently in another order, in float and even in double
// (bfloat16's sums): a peak in the middle of each plane wins every window that holds it (4 at 3x3 stride 2, 9
// at stride 1), so a kernel that adds them out of the reference's output order shows.
TEST_CASE_TEMPLATE("pool fast: max-pool gradients of overlapping windows add in output order", T, float,
                   bfloat16) {
  for (const std::int64_t stride : {2, 1}) {
    for (const bool channels_last : {false, true}) {
      Pool2dGeometry g = pool(2, 19, 9, 9, 3, 3, stride, 1);
      g.channels_last = channels_last;
      INFO(describe(g));
      std::vector<T> x = grid_values<T>(static_cast<std::int64_t>(in_size(g)), 5, false);
      const std::int64_t plane = g.in_height * g.in_width, middle = 4 * g.in_width + 4;
      for (std::int64_t p = 0; p < g.batch * g.channels; ++p) {  // plane p = n * C + c
        const std::int64_t n = p / g.channels, c = p % g.channels;
        const std::int64_t at = channels_last ? (n * plane + middle) * g.channels + c : p * plane + middle;
        x[static_cast<std::size_t>(at)] = static_cast<T>(1e6f);
      }
      std::vector<T> y(out_size(g)), gx_ref(in_size(g));
      std::vector<std::int32_t> argmax(out_size(g));
      kk::reference::max_pool2d_forward(g, x.data(), y.data(), argmax.data());
      const std::vector<T> gy = spread_values<T>(static_cast<std::int64_t>(out_size(g)), 6);
      kk::reference::max_pool2d_backward(g, gy.data(), argmax.data(), gx_ref.data());
      at_each_fast_level([&] {
        std::vector<T> gx(in_size(g), static_cast<T>(NAN));
        kk::max_pool2d_backward(Device::cpu(), g, gy.data(), argmax.data(), gx.data());
        CHECK(bitwise_equal(gx, gx_ref));
      });
    }
  }
}

TEST_CASE_TEMPLATE("pool fast: average pooling forward and backward equal the reference at every level", T,
                   float, bfloat16) {
  at_each_fast_level([] {
    for (Pool2dGeometry g : geometries()) {
      for (const bool include_pad : {true, false}) {
        g.count_include_pad = include_pad;
        INFO(describe(g));
        // Values off the grid, so that the sums' rounding depends on their order.
        const std::vector<T> x = spread_values<T>(static_cast<std::int64_t>(in_size(g)), 3),
                             gy = spread_values<T>(static_cast<std::int64_t>(out_size(g)), 4);
        std::vector<T> y_ref(out_size(g)), gx_ref(in_size(g));
        kk::reference::avg_pool2d_forward(g, x.data(), y_ref.data());
        kk::reference::avg_pool2d_backward(g, gy.data(), gx_ref.data());
        for (const int threads : {1, 2}) {
          kk::set_compute_threads(threads);
          std::vector<T> y(out_size(g), static_cast<T>(NAN)), gx(in_size(g), static_cast<T>(NAN));
          kk::avg_pool2d_forward(Device::cpu(), g, x.data(), y.data());
          kk::avg_pool2d_backward(Device::cpu(), g, gy.data(), gx.data());
          CHECK(bitwise_equal(y, y_ref));
          CHECK(bitwise_equal(gx, gx_ref));
        }
      }
    }
  });
}

TEST_CASE_TEMPLATE("pool fast: global average pooling matches the reference at every level", T, float,
                   bfloat16) {
  const Tolerance tolerance = std::is_same_v<T, float> ? Tolerance{1e-6, 1e-6} : Tolerance::bfloat16();
  at_each_fast_level([&] {
    for (const bool channels_last : {false, true}) {
      // batch x channels x plane size
      for (const auto [batch, channels, plane_size] : std::vector<std::array<std::int64_t, 3>>{
               {5, 1, 1}, {1, 3, 7}, {1, 17, 64}, {4, 1, 1025}, {128, 64, 64}, {2, 33, 1500}, {3, 5, 9}}) {
        const GlobalPool2dGeometry g{
            .batch = batch, .channels = channels, .plane_size = plane_size, .channels_last = channels_last};
        INFO("[", batch, ", ", channels, "] planes of ", plane_size,
             (channels_last ? " channels-last" : " nchw"));
        std::mt19937_64 engine(5);
        std::uniform_real_distribution<float> uniform(-1.0f, 3.0f);
        std::vector<T> x(static_cast<std::size_t>(g.planes() * plane_size)),
            gy(static_cast<std::size_t>(g.planes()));
        for (T& v : x) v = static_cast<T>(uniform(engine));
        for (T& v : gy) v = static_cast<T>(uniform(engine));
        std::vector<T> y_ref(gy.size()), gx_ref(x.size());
        kk::reference::global_avg_pool2d_forward(g, x.data(), y_ref.data());
        kk::reference::global_avg_pool2d_backward(g, gy.data(), gx_ref.data(), false);
        std::vector<T> y_one(gy.size()), y_two(gy.size(), static_cast<T>(NAN)), gx_one(x.size()),
            gx_two(x.size(), static_cast<T>(NAN));
        kk::set_compute_threads(1);
        kk::global_avg_pool2d_forward(Device::cpu(), g, x.data(), y_one.data());
        kk::global_avg_pool2d_backward(Device::cpu(), g, gy.data(), gx_one.data());
        kk::set_compute_threads(2);
        kk::global_avg_pool2d_forward(Device::cpu(), g, x.data(), y_two.data());
        kk::global_avg_pool2d_backward(Device::cpu(), g, gy.data(), gx_two.data());
        const auto report =
            kiln::testing::matches_reference(y_one.data(), y_ref.data(), g.planes(), tolerance);
        CHECK_MESSAGE(report.ok, report.message);
        CHECK(bitwise_equal(gx_one, gx_ref));
        CHECK(bitwise_equal(y_one, y_two));
        CHECK(bitwise_equal(gx_one, gx_two));
        // Accumulating into a gradient so far: the bits of the fresh gradient then added, as the vectorized
        // add adds (float lanes, rounded once), and as the reference add adds (double, rounded once).
        std::vector<T> sum_so_far(x.size());
        for (T& v : sum_so_far) v = static_cast<T>(uniform(engine));
        std::vector<T> added(x.size()), reference_added(x.size());
        for (std::size_t i = 0; i < x.size(); ++i) {
          added[i] = static_cast<T>(static_cast<float>(sum_so_far[i]) + static_cast<float>(gx_ref[i]));
          reference_added[i] =
              static_cast<T>(static_cast<double>(sum_so_far[i]) + static_cast<double>(gx_ref[i]));
        }
        std::vector<T> into = sum_so_far, reference_into = sum_so_far;
        kk::global_avg_pool2d_backward(Device::cpu(), g, gy.data(), into.data(), true);
        kk::reference::global_avg_pool2d_backward(g, gy.data(), reference_into.data(), true);
        CHECK(bitwise_equal(into, added));
        CHECK(bitwise_equal(reference_into, reference_added));
      }
    }
  });
}

}  // namespace kernels_pool_fast_test
