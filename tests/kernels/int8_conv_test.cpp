// Tests of the int8 convolutions (kernels/int8/): the packed-weight reference against a direct sum over
// unpacked weights (so the packing and the reference are checked by something independent of both), and
// the AVX-512 kernels (VNNI, depthwise) against the reference, bit for bit, over odd shapes: 1x1 and 5x5
// kernels, stride 2, dilation 2, channels that fill no vector (3, 5, 17 input; 10, 40 output), batch 1, pixel
// counts that leave a partial tile, a residual input, ReLU, float output; and 1 and 2 threads, which must
// agree bitwise. Integer sums are exact and both epilogues perform the same float operations, so every
// comparison here is exact.
#include "kernels/int8/int8_conv.hpp"

#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "core/error.hpp"
#include "kernels/cpu_level.hpp"
#include "kernels/parallel.hpp"
#include "tests/support/fast_kernel_testing.hpp"

namespace kernels_int8_conv_test {

namespace {

namespace kk = kiln::kernels;
using kk::Int8ConvGeometry;
using kk::Int8Epilogue;

struct Case {
  std::int64_t batch, height, width, in_channels, out_channels, kernel, stride, dilation, pad;
};

std::vector<Case> cases() {
  return {
      {1, 5, 5, 3, 16, 3, 1, 1, 1},   // the first layer's shape: 3 channels padded to a stride of 4
      {2, 7, 6, 17, 40, 3, 1, 1, 1},  // channels that fill no vector; 40 outputs pad to 48 (3 blocks)
      {1, 9, 9, 16, 32, 3, 2, 1, 1},  // stride 2, two blocks
      {3, 8, 8, 32, 64, 3, 1, 1, 1},  // four blocks, 64 pixels per image
      {1, 6, 7, 8, 16, 1, 1, 1, 0},   // 1x1
      {2, 9, 10, 5, 10, 5, 1, 2, 4},  // 5x5 dilated, 10 outputs pad to 16
      {1, 1, 1, 64, 16, 1, 1, 1, 0},  // a linear layer: one pixel
      {5, 1, 1, 36, 26, 1, 1, 1, 0},  // a batch of linear rows, fewer than a tile
  };
}

struct Problem {
  Int8ConvGeometry g;
  std::int64_t real_in, real_out;
  std::vector<std::int8_t> weights;  // [real_out][K][K][real_in]
  std::vector<std::int8_t> packed;
  std::vector<std::uint8_t> x;  // padded input [N][PH][PW][CS]
  std::vector<std::uint8_t> residual;
  std::vector<float> multiplier, offset;
};

Problem make_problem(const Case& c, std::uint64_t seed) {
  std::mt19937_64 engine(seed);
  Problem p;
  p.real_in = c.in_channels;
  p.real_out = c.out_channels;
  p.g = Int8ConvGeometry{.batch = c.batch,
                         .padded_height = c.height + 2 * c.pad,
                         .padded_width = c.width + 2 * c.pad,
                         .in_channel_stride = kk::round_up_to_multiple(c.in_channels, kk::kInt8ChannelQuad),
                         .out_channels = kk::round_up_to_multiple(c.out_channels, kk::kInt8ChannelBlock),
                         .kernel_h = c.kernel,
                         .kernel_w = c.kernel,
                         .stride = c.stride,
                         .dilation = c.dilation};
  std::uniform_int_distribution<int> weight(-127, 127), byte(0, 255);
  p.weights.resize(static_cast<std::size_t>(c.out_channels * c.kernel * c.kernel * c.in_channels));
  for (auto& w : p.weights) w = static_cast<std::int8_t>(weight(engine));
  p.packed.resize(
      static_cast<std::size_t>(p.g.out_channels / kk::kInt8ChannelBlock * p.g.packed_block_bytes()));
  kk::pack_int8_conv_weights(p.g, p.real_out, p.real_in, p.weights.data(), p.packed.data());
  std::vector<std::uint8_t> unpadded(
      static_cast<std::size_t>(c.batch * c.height * c.width * p.g.in_channel_stride));
  for (auto& v : unpadded) v = static_cast<std::uint8_t>(byte(engine));
  p.x.resize(
      static_cast<std::size_t>(c.batch * p.g.padded_height * p.g.padded_width * p.g.in_channel_stride));
  kk::pad_nhwc_u8(c.batch, c.height, c.width, p.g.in_channel_stride, c.pad, 7, unpadded.data(), p.x.data());
  p.residual.resize(static_cast<std::size_t>(p.g.out_pixels() * p.g.out_channels));
  for (auto& v : p.residual) v = static_cast<std::uint8_t>(byte(engine));
  // Multipliers that map the sums onto roughly [0, 255], so the clamps and rounding are all exercised.
  std::uniform_real_distribution<float> unit(0.5f, 1.5f), shift(50.0f, 200.0f);
  const float sum_scale = 1.0f / static_cast<float>(c.kernel * c.kernel * c.in_channels * 200);
  for (std::int64_t co = 0; co < p.g.out_channels; ++co) {
    p.multiplier.push_back(unit(engine) * sum_scale);
    p.offset.push_back(shift(engine));
  }
  return p;
}

template <class T>
std::vector<T> run(const Problem& p, Int8Epilogue e, bool depthwise = false,
                   const std::vector<std::int8_t>* depthwise_weights = nullptr) {
  e.multiplier = p.multiplier.data();
  e.offset = p.offset.data();
  std::vector<T> y(static_cast<std::size_t>(p.g.out_pixels() * p.g.out_channels));
  if (depthwise) {
    kk::int8_depthwise_conv2d(p.g, p.x.data(), depthwise_weights->data(), e, y.data());
  } else {
    kk::int8_conv2d(p.g, p.x.data(), p.packed.data(), e, y.data());
  }
  return y;
}

std::vector<Int8Epilogue> epilogues(const Problem& p) {
  Int8Epilogue plain = kk::int8_bounds_u8(0, false);
  Int8Epilogue relu = kk::int8_bounds_u8(37, true);
  Int8Epilogue with_residual = kk::int8_bounds_u8(12, true);
  with_residual.residual = p.residual.data();
  with_residual.residual_multiplier = 0.7f;
  return {plain, relu, with_residual};
}

TEST_CASE("int8 conv2d: the reference over packed weights equals a direct sum over the unpacked weights") {
  kiln::testing::DispatchGuard guard;
  kk::set_cpu_level(kk::CpuLevel::Reference);
  for (const Case& c : cases()) {
    INFO("case ", c.batch, "x", c.height, "x", c.width, " ", c.in_channels, "->", c.out_channels, " k",
         c.kernel, " s", c.stride, " d", c.dilation, " p", c.pad);
    Problem p = make_problem(c, 1);
    std::vector<float> ones(static_cast<std::size_t>(p.g.out_channels), 1.0f), zeros(ones.size(), 0.0f);
    p.multiplier = ones;
    p.offset = zeros;
    const std::vector<float> y = run<float>(p, kk::int8_bounds_float(false));
    const Int8ConvGeometry& g = p.g;
    bool all_equal = true;
    for (std::int64_t n = 0; n < g.batch; ++n) {
      for (std::int64_t oh = 0; oh < g.out_height(); ++oh) {
        for (std::int64_t ow = 0; ow < g.out_width(); ++ow) {
          for (std::int64_t co = 0; co < g.out_channels; ++co) {
            std::int64_t sum = 0;
            for (std::int64_t kh = 0; co < p.real_out && kh < g.kernel_h; ++kh) {
              for (std::int64_t kw = 0; kw < g.kernel_w; ++kw) {
                for (std::int64_t ci = 0; ci < p.real_in; ++ci) {
                  const std::int64_t ih = oh * g.stride + kh * g.dilation,
                                     iw = ow * g.stride + kw * g.dilation;
                  sum +=
                      std::int64_t{
                          p.x[((n * g.padded_height + ih) * g.padded_width + iw) * g.in_channel_stride +
                              ci]} *
                      p.weights[((co * g.kernel_h + kh) * g.kernel_w + kw) * p.real_in + ci];
                }
              }
            }
            const std::int64_t pixel = (n * g.out_height() + oh) * g.out_width() + ow;
            if (y[pixel * g.out_channels + co] != static_cast<float>(sum)) all_equal = false;
          }
        }
      }
    }
    CHECK(all_equal);
  }
}

TEST_CASE("int8 conv2d: the VNNI kernel equals the reference bit for bit, on 1 and 2 threads") {
  kiln::testing::DispatchGuard guard;
  kk::set_cpu_level(kk::CpuLevel::Avx512);
  if (!kk::int8_conv2d_uses_vnni()) {
    MESSAGE("skipping: this CPU lacks AVX-512 VNNI");
    return;
  }
  for (const Case& c : cases()) {
    INFO("case ", c.batch, "x", c.height, "x", c.width, " ", c.in_channels, "->", c.out_channels, " k",
         c.kernel, " s", c.stride, " d", c.dilation, " p", c.pad);
    const Problem p = make_problem(c, 2);
    for (const Int8Epilogue& e : epilogues(p)) {
      kk::set_cpu_level(kk::CpuLevel::Reference);
      const std::vector<std::uint8_t> expected = run<std::uint8_t>(p, e);
      kk::set_cpu_level(kk::CpuLevel::Avx512);
      kk::set_compute_threads(1);
      const std::vector<std::uint8_t> one_thread = run<std::uint8_t>(p, e);
      kk::set_compute_threads(2);
      const std::vector<std::uint8_t> two_threads = run<std::uint8_t>(p, e);
      CHECK(one_thread == expected);
      CHECK(two_threads == expected);
    }
    Int8Epilogue logits = kk::int8_bounds_float(false);
    kk::set_cpu_level(kk::CpuLevel::Reference);
    const std::vector<float> expected = run<float>(p, logits);
    kk::set_cpu_level(kk::CpuLevel::Avx512);
    CHECK(kiln::testing::bitwise_equal(run<float>(p, logits), expected));
  }
}

TEST_CASE("int8 conv2d: the epilogue clamps to the bounds and rounds half to even") {
  // One pixel, one input channel of value 1 and weight 1 for output channel 0: acc = 1, so
  // v = multiplier + offset. Offsets 2.5 and 3.5 round to 2 and 4; -9 clamps to the ReLU floor 5; 300
  // clamps to 255.
  Int8ConvGeometry g{
      .batch = 1, .padded_height = 1, .padded_width = 1, .in_channel_stride = 4, .out_channels = 16};
  std::vector<std::int8_t> weights(16 * 4, 0), packed(static_cast<std::size_t>(g.packed_block_bytes()));
  for (int co = 0; co < 16; ++co) weights[static_cast<std::size_t>(co * 4)] = 1;
  kk::pack_int8_conv_weights(g, 16, 4, weights.data(), packed.data());
  const std::vector<std::uint8_t> x{1, 0, 0, 0};
  std::vector<float> multiplier(16, 0.0f), offset(16, 0.0f);
  offset[0] = 2.5f, offset[1] = 3.5f, offset[2] = -9.0f, offset[3] = 300.0f, offset[4] = 6.49f;
  Int8Epilogue e = kk::int8_bounds_u8(5, true);
  e.multiplier = multiplier.data();
  e.offset = offset.data();
  kiln::testing::DispatchGuard guard;
  for (const kk::CpuLevel level : {kk::CpuLevel::Reference, kk::CpuLevel::Avx512}) {
    kk::set_cpu_level(level);
    std::vector<std::uint8_t> y(16);
    kk::int8_conv2d(g, x.data(), packed.data(), e, y.data());
    CHECK(y[0] == 5);  // 2.5 rounds to 2, below the floor 5
    CHECK(y[1] == 5);  // 3.5 rounds to 4, below the floor
    CHECK(y[2] == 5);
    CHECK(y[3] == 255);
    CHECK(y[4] == 6);
  }
  e = kk::int8_bounds_u8(0, false);
  e.multiplier = multiplier.data();
  e.offset = offset.data();
  for (const kk::CpuLevel level : {kk::CpuLevel::Reference, kk::CpuLevel::Avx512}) {
    kk::set_cpu_level(level);
    std::vector<std::uint8_t> y(16);
    kk::int8_conv2d(g, x.data(), packed.data(), e, y.data());
    CHECK(y[0] == 2);
    CHECK(y[1] == 4);
    CHECK(y[2] == 0);
  }
}

TEST_CASE("int8 depthwise conv2d: equals a direct sum at every level, on 1 and 2 threads, bit for bit") {
  kiln::testing::DispatchGuard guard;
  for (const Case& c : std::vector<Case>{
           {3, 7, 9, 32, 32, 3, 1, 1, 1}, {2, 8, 8, 16, 16, 3, 2, 1, 1}, {1, 5, 6, 48, 48, 3, 1, 2, 2}}) {
    INFO("case ", c.batch, "x", c.height, "x", c.width, " ", c.in_channels, " s", c.stride, " d", c.dilation);
    Problem p = make_problem(c, 3);
    const Int8ConvGeometry& g = p.g;
    std::mt19937_64 engine(4);
    std::uniform_int_distribution<int> weight(-127, 127);
    std::vector<std::int8_t> w(static_cast<std::size_t>(g.kernel_h * g.kernel_w * g.out_channels));
    for (auto& v : w) v = static_cast<std::int8_t>(weight(engine));

    // The requantizing epilogues: the AVX-512 kernel against the reference, 1 and 2 threads.
    for (const Int8Epilogue& e : epilogues(p)) {
      kk::set_cpu_level(kk::CpuLevel::Reference);
      const std::vector<std::uint8_t> expected = run<std::uint8_t>(p, e, true, &w);
      kk::set_cpu_level(kk::CpuLevel::Avx512);
      kk::set_compute_threads(1);
      CHECK(run<std::uint8_t>(p, e, true, &w) == expected);
      kk::set_compute_threads(2);
      CHECK(run<std::uint8_t>(p, e, true, &w) == expected);
    }

    // The sums themselves, against a direct computation, at both levels.
    std::vector<float> ones(static_cast<std::size_t>(g.out_channels), 1.0f), zeros(ones.size(), 0.0f);
    p.multiplier = ones;
    p.offset = zeros;
    for (const kk::CpuLevel level : {kk::CpuLevel::Reference, kk::CpuLevel::Avx512}) {
      kk::set_cpu_level(level);
      const std::vector<float> y = run<float>(p, kk::int8_bounds_float(false), true, &w);
      bool all_equal = true;
      for (std::int64_t n = 0; n < g.batch; ++n) {
        for (std::int64_t oh = 0; oh < g.out_height(); ++oh) {
          for (std::int64_t ow = 0; ow < g.out_width(); ++ow) {
            for (std::int64_t ch = 0; ch < g.out_channels; ++ch) {
              std::int64_t sum = 0;
              for (std::int64_t kh = 0; kh < g.kernel_h; ++kh) {
                for (std::int64_t kw = 0; kw < g.kernel_w; ++kw) {
                  const std::int64_t ih = oh * g.stride + kh * g.dilation,
                                     iw = ow * g.stride + kw * g.dilation;
                  sum +=
                      std::int64_t{
                          p.x[((n * g.padded_height + ih) * g.padded_width + iw) * g.out_channels + ch]} *
                      w[(kh * g.kernel_w + kw) * g.out_channels + ch];
                }
              }
              const std::int64_t pixel = (n * g.out_height() + oh) * g.out_width() + ow;
              if (y[pixel * g.out_channels + ch] != static_cast<float>(sum)) all_equal = false;
            }
          }
        }
      }
      CHECK(all_equal);
    }
  }
}

TEST_CASE("int8 layout: padding fills the border with the zero point and keeps the image") {
  const std::vector<std::uint8_t> x{1, 2, 3, 4, 5, 6, 7, 8};  // [1][1][2][4]
  std::vector<std::uint8_t> padded(3 * 4 * 4);
  kk::pad_nhwc_u8(1, 1, 2, 4, 1, 9, x.data(), padded.data());
  for (std::size_t i = 0; i < padded.size(); ++i) {
    const std::size_t pixel = i / 4, row = pixel / 4, column = pixel % 4;
    const bool inside = row == 1 && (column == 1 || column == 2);
    CHECK(padded[i] == (inside ? x[(column - 1) * 4 + i % 4] : 9));
  }
}

TEST_CASE("int8 conv2d: a geometry whose s32 sums could overflow is refused") {
  // 3x3 taps of 8192 channels: 73,728 inputs per output, over the 65,791 whose sums always fit in s32.
  const Int8ConvGeometry g{.padded_height = 3, .padded_width = 3, .in_channel_stride = 8192, .kernel_h = 3,
                           .kernel_w = 3};
  std::vector<std::uint8_t> x(static_cast<std::size_t>(9 * 8192));
  std::vector<std::int8_t> w(static_cast<std::size_t>(g.packed_block_bytes()));
  std::vector<float> y(16), ones(16, 1.0f);
  Int8Epilogue e = kk::int8_bounds_float(false);
  e.multiplier = e.offset = ones.data();
  CHECK_THROWS_WITH_AS(kk::int8_conv2d(g, x.data(), w.data(), e, y.data()),
                       doctest::Contains("could overflow the s32 sums"), kiln::Error);
}

}  // namespace

}  // namespace kernels_int8_conv_test
