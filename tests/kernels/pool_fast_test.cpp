// Tests of the threaded / vectorized pooling kernels (kernels/pool/avx512.cpp, avx2.cpp) against the
// reference kernels, at every dispatch level this CPU has, with 1 and 2 threads (which must agree
// bitwise): the vectorized 2x2 stride-2 max pool (odd widths and heights, rows wider than a register, ties
// and NaN), padded and ceil-mode max and average pools (run per plane through the reference), and global
// average pooling over 1x1 planes, planes not a multiple of the vector width and planes over one chunk.
//
// Tolerances: max pooling values, argmax and gradients, and every average-pool result (the reference per
// plane) must be bitwise equal; global average within float32 atol 1e-6 + rtol 1e-6 (float lanes summed
// over chunks, then double, against an all-double reference).
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include "kernels/cpu_level.hpp"
#include "kernels/parallel.hpp"
#include "kernels/pool/pool.hpp"
#include "tests/support/fast_kernel_testing.hpp"
#include "tests/support/matches_reference.hpp"

namespace {

using kiln::Device;
using kiln::kernels::CpuLevel;
using kiln::kernels::Pool2dGeometry;
using kiln::testing::at_each_fast_level;
using kiln::testing::bitwise_equal;
namespace kk = kiln::kernels;

// Values on a coarse grid (so windows hold ties), with a NaN every 97 elements when with_nan.
std::vector<float> grid_values(std::int64_t n, std::uint64_t seed, bool with_nan) {
  std::mt19937_64 engine(seed);
  std::uniform_int_distribution<int> step(-4, 4);
  std::vector<float> v(static_cast<std::size_t>(n));
  for (std::size_t i = 0; i < v.size(); ++i) {
    v[i] = with_nan && i % 97 == 13 ? std::numeric_limits<float>::quiet_NaN()
                                    : 0.5f * static_cast<float>(step(engine));
  }
  return v;
}

std::vector<Pool2dGeometry> geometries() {
  return {
      // 2x2 stride 2, the vectorized path
      {.batch = 2,
       .channels = 3,
       .in_height = 8,
       .in_width = 8,
       .kernel_h = 2,
       .kernel_w = 2,
       .stride_h = 2,
       .stride_w = 2},
      {.batch = 1,
       .channels = 5,
       .in_height = 7,
       .in_width = 9,
       .kernel_h = 2,
       .kernel_w = 2,
       .stride_h = 2,
       .stride_w = 2},
      {.batch = 3,
       .channels = 17,
       .in_height = 6,
       .in_width = 70,
       .kernel_h = 2,
       .kernel_w = 2,
       .stride_h = 2,
       .stride_w = 2},
      {.batch = 16,
       .channels = 16,
       .in_height = 32,
       .in_width = 33,
       .kernel_h = 2,
       .kernel_w = 2,
       .stride_h = 2,
       .stride_w = 2},
      // padding, ceil mode, count_include_pad off: the reference per plane
      {.batch = 2,
       .channels = 3,
       .in_height = 7,
       .in_width = 7,
       .kernel_h = 3,
       .kernel_w = 3,
       .stride_h = 2,
       .stride_w = 2,
       .pad_h = 1,
       .pad_w = 1},
      {.batch = 1,
       .channels = 5,
       .in_height = 6,
       .in_width = 9,
       .kernel_h = 3,
       .kernel_w = 2,
       .stride_h = 2,
       .stride_w = 2,
       .pad_h = 1,
       .pad_w = 1,
       .ceil_mode = true,
       .count_include_pad = false},
      {.batch = 8,
       .channels = 16,
       .in_height = 32,
       .in_width = 32,
       .kernel_h = 2,
       .kernel_w = 2,
       .stride_h = 2,
       .stride_w = 2,
       .ceil_mode = true},
  };
}

std::int64_t in_size(const Pool2dGeometry& g) { return g.batch * g.channels * g.in_height * g.in_width; }
std::int64_t out_size(const Pool2dGeometry& g) {
  return g.batch * g.channels * g.out_height() * g.out_width();
}

}  // namespace

TEST_CASE("pool fast: max pooling forward and backward equal the reference at every level") {
  at_each_fast_level([] {
    for (const Pool2dGeometry& g : geometries()) {
      INFO("[", g.batch, ",", g.channels, ",", g.in_height, ",", g.in_width, "] kernel ", g.kernel_h, "x",
           g.kernel_w, " pad ", g.pad_h, " ceil ", g.ceil_mode);
      const auto in = static_cast<std::size_t>(in_size(g)), out = static_cast<std::size_t>(out_size(g));
      const std::vector<float> x = grid_values(in_size(g), 1, true), gy = grid_values(out_size(g), 2, false);
      std::vector<float> y_ref(out), gx_ref(in);
      std::vector<std::int64_t> argmax_ref(out);
      kk::reference::max_pool2d_forward(g, x.data(), y_ref.data(), argmax_ref.data());
      kk::reference::max_pool2d_backward(g, gy.data(), argmax_ref.data(), gx_ref.data());
      for (const int threads : {1, 2}) {
        kk::set_compute_threads(threads);
        std::vector<float> y(out), gx(in);
        std::vector<std::int64_t> argmax(out);
        kk::max_pool2d_forward(Device::cpu(), g, x.data(), y.data(), argmax.data());
        kk::max_pool2d_backward(Device::cpu(), g, gy.data(), argmax_ref.data(), gx.data());
        CHECK(bitwise_equal(y, y_ref));
        CHECK(argmax == argmax_ref);
        CHECK(bitwise_equal(gx, gx_ref));
      }
    }
  });
}

TEST_CASE("pool fast: average pooling forward and backward equal the reference at every level") {
  at_each_fast_level([] {
    for (Pool2dGeometry g : geometries()) {
      for (const bool include_pad : {true, false}) {
        g.count_include_pad = include_pad;
        INFO("[", g.batch, ",", g.channels, ",", g.in_height, ",", g.in_width, "] kernel ", g.kernel_h, "x",
             g.kernel_w, " pad ", g.pad_h, " ceil ", g.ceil_mode, " include_pad ", include_pad);
        const auto in = static_cast<std::size_t>(in_size(g)), out = static_cast<std::size_t>(out_size(g));
        const std::vector<float> x = grid_values(in_size(g), 3, false),
                                 gy = grid_values(out_size(g), 4, false);
        std::vector<float> y_ref(out), gx_ref(in);
        kk::reference::avg_pool2d_forward(g, x.data(), y_ref.data());
        kk::reference::avg_pool2d_backward(g, gy.data(), gx_ref.data());
        for (const int threads : {1, 2}) {
          kk::set_compute_threads(threads);
          std::vector<float> y(out), gx(in);
          kk::avg_pool2d_forward(Device::cpu(), g, x.data(), y.data());
          kk::avg_pool2d_backward(Device::cpu(), g, gy.data(), gx.data());
          CHECK(bitwise_equal(y, y_ref));
          CHECK(bitwise_equal(gx, gx_ref));
        }
      }
    }
  });
}

TEST_CASE("pool fast: global average pooling matches the reference at every level") {
  at_each_fast_level([] {
    for (const auto& [planes, plane_size] : std::vector<std::pair<std::int64_t, std::int64_t>>{
             {5, 1}, {3, 7}, {17, 64}, {4, 1025}, {128 * 64, 64}, {2, 5000}}) {
      INFO("planes ", planes, " plane_size ", plane_size);
      std::mt19937_64 engine(5);
      std::uniform_real_distribution<float> uniform(-1.0f, 3.0f);
      std::vector<float> x(static_cast<std::size_t>(planes * plane_size)),
          gy(static_cast<std::size_t>(planes));
      for (float& v : x) v = uniform(engine);
      for (float& v : gy) v = uniform(engine);
      std::vector<float> y_ref(gy.size()), gx_ref(x.size());
      kk::reference::global_avg_pool2d_forward(planes, plane_size, x.data(), y_ref.data());
      kk::reference::global_avg_pool2d_backward(planes, plane_size, gy.data(), gx_ref.data());
      std::vector<float> y_one(gy.size()), y_two(gy.size()), gx_one(x.size()), gx_two(x.size());
      kk::set_compute_threads(1);
      kk::global_avg_pool2d_forward(Device::cpu(), planes, plane_size, x.data(), y_one.data());
      kk::global_avg_pool2d_backward(Device::cpu(), planes, plane_size, gy.data(), gx_one.data());
      kk::set_compute_threads(2);
      kk::global_avg_pool2d_forward(Device::cpu(), planes, plane_size, x.data(), y_two.data());
      kk::global_avg_pool2d_backward(Device::cpu(), planes, plane_size, gy.data(), gx_two.data());
      const auto report = kiln::testing::matches_reference(y_one.data(), y_ref.data(), planes, {1e-6, 1e-6});
      CHECK_MESSAGE(report.ok, report.message);
      CHECK(bitwise_equal(gx_one, gx_ref));
      CHECK(bitwise_equal(y_one, y_two));
      CHECK(bitwise_equal(gx_one, gx_two));
    }
  });
}
