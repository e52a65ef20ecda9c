// The vectorized kernels on bfloat16 storage (`--precision bf16` on the CPU): the vector traits' bfloat16
// loads and stores (kernels/simd/), through the elementwise conversions, and the batch-norm kernels
// instantiated for bfloat16 activations, at every dispatch level this CPU has.
//
// The claim is exact, so the checks are: a bfloat16 kernel is its float kernel with the loads widened and
// the stores rounded. Conversions equal bfloat16's own, lane by lane, over the values where rounding is
// delicate (ties both ways, the largest float, NaN payloads that the rounding's carry would corrupt,
// subnormals) and over every one of the 65,536 bfloat16 patterns widened. Batch norm run on bfloat16
// activations gives, bit for bit, the float kernels' results on the same values rounded once to bfloat16,
// and the float kernels' statistics and parameter gradients themselves; with 1 and with 2 threads.
#include <doctest/doctest.h>

#include <bit>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

#include "core/bfloat16.hpp"
#include "kernels/batchnorm/batchnorm.hpp"
#include "kernels/elementwise/elementwise.hpp"
#include "kernels/parallel.hpp"
#include "tests/support/bfloat16_testing.hpp"
#include "tests/support/fast_kernel_testing.hpp"

namespace kernels_bfloat16_vectorized_test {

namespace {

using namespace kiln;
namespace kk = kiln::kernels;
using testing::at_each_fast_level;
using testing::bfloat16_difference;
using testing::converted;

constexpr Device kCpu = Device::cpu();

// A dense copy of n elements through the dispatcher (rank 1, stride 1: the vectorized conversions).
template <typename Src, typename Dst>
std::vector<Dst> converted(const std::vector<Src>& from) {
  std::vector<Dst> to(from.size());
  const auto n = static_cast<std::int64_t>(from.size());
  const std::int64_t dense = 1;
  kk::copy_strided<Src, Dst>(kCpu, 1, &n, from.data(), &dense, to.data(), &dense);
  return to;
}

float from_bits(std::uint32_t bits) { return std::bit_cast<float>(bits); }
std::string hex(std::uint32_t bits) {
  char text[16];
  std::snprintf(text, sizeof text, "0x%x", bits);
  return text;
}

// Floats whose rounding to bfloat16 is delicate, then ordinary ones: 1031 in all, so the vector loops'
// tails (1031 = 64 x 16 + 7) run too.
std::vector<float> delicate_floats() {
  std::vector<float> values;
  for (const std::uint32_t kept : {0x3f80u, 0x3f81u, 0xbf80u, 0xbf81u, 0x0001u, 0x7f7fu}) {
    for (const std::uint32_t dropped : {0x0000u, 0x0001u, 0x7fffu, 0x8000u, 0x8001u, 0xffffu})
      values.push_back(from_bits(kept << 16 | dropped));  // ties to even both ways, and either side of them
  }
  for (const std::uint32_t special : {0x7f800000u, 0xff800000u,   // infinities
                                      0x7f7fffffu, 0xff7fffffu,   // the largest floats: round to infinity
                                      0x7fc00000u, 0xffc00000u,   // quiet NaNs
                                      0x7f800001u, 0x7f80ffffu,   // signalling NaNs whose payload is all low
                                      0x7fbfffffu, 0xffffffffu,   // NaNs the carry would corrupt
                                      0x00000001u, 0x007fffffu,   // subnormals
                                      0x80000000u, 0x00000000u})  // signed zeros
    values.push_back(from_bits(special));
  for (std::uint32_t i = 0; values.size() < 1031; ++i)
    values.push_back(from_bits(0x9e3779b9u * i + 0x3f000000u));
  return values;
}

TEST_CASE("bfloat16 vectorized conversions round and widen bit for bit as bfloat16's own") {
  const std::vector<float> floats = delicate_floats();
  std::vector<bfloat16> every_pattern(65536);
  for (std::uint32_t bits = 0; bits < 65536; ++bits)
    every_pattern[bits] = bfloat16::from_bits(static_cast<std::uint16_t>(bits));
  at_each_fast_level([&] {
    const std::vector<bfloat16> rounded = converted<float, bfloat16>(floats);
    int wrong = 0;
    for (std::size_t i = 0; i < floats.size(); ++i) {
      if (rounded[i].bits != bfloat16(floats[i]).bits) {
        if (wrong++ < 5)
          FAIL_CHECK("float bits ", hex(std::bit_cast<std::uint32_t>(floats[i])), " rounded to ",
                     hex(rounded[i].bits), ", bfloat16 gives ", hex(bfloat16(floats[i]).bits));
      }
    }
    CHECK(wrong == 0);
    const std::vector<float> widened = converted<bfloat16, float>(every_pattern);
    int wrong_widened = 0;
    for (std::uint32_t bits = 0; bits < 65536; ++bits)
      wrong_widened += std::bit_cast<std::uint32_t>(widened[bits]) != bits << 16;
    CHECK(wrong_widened == 0);
  });
}

// values rounded once to bfloat16, as floats again.
std::vector<float> rounded_to_bfloat16(const std::vector<float>& values) {
  return converted<float>(converted<bfloat16>(values));
}

// Values spread over [-2, 2) plus offset, exactly representable in bfloat16.
std::vector<float> bfloat16_values(std::int64_t count, std::uint32_t seed, float offset) {
  std::vector<float> values;
  for (std::int64_t i = 0; i < count; ++i) {
    const std::uint32_t hash = (static_cast<std::uint32_t>(i) + 1u) * 2654435761u ^ seed * 40503u;
    values.push_back(offset + static_cast<float>(hash % 4096u) / 1024.0f - 2.0f);
  }
  return rounded_to_bfloat16(values);
}

struct BatchNormCase {
  kk::BatchNorm2dGeometry g;
  float offset;
};

TEST_CASE(
    "bfloat16 vectorized batch norm: the float kernels' results rounded once, and their statistics, bit for "
    "bit, at 1 and 2 threads, either batch-norm walk") {
  const BatchNormCase cases[] = {
      {{.batch = 3, .channels = 17, .height = 5, .width = 7}, 3.0f},                         // a scalar tail
      {{.batch = 16, .channels = 16, .height = 32, .width = 32, .fused_relu = true}, 0.0f},  // threaded
      {{.batch = 32, .channels = 257, .height = 2, .width = 2}, 5.0f},                       // planes as rows
      {{.batch = 2, .channels = 130, .height = 9, .width = 15, .fused_relu = true, .channels_last = true},
       1.0f},
      // The hard swish: a scalar tail, planes as rows, channels-last (no residual with it).
      {{.batch = 3, .channels = 17, .height = 5, .width = 7, .fused_hardswish = true}, 3.0f},
      {{.batch = 32, .channels = 257, .height = 2, .width = 2, .fused_hardswish = true}, 5.0f},
      {{.batch = 2,
        .channels = 130,
        .height = 9,
        .width = 15,
        .fused_hardswish = true,
        .channels_last = true},
       1.0f},
  };
  for (const BatchNormCase& c : cases) {
    const kk::BatchNorm2dGeometry& g = c.g;
    INFO("[", g.batch, ",", g.channels, ",", g.height, ",", g.width, "]", g.fused_relu ? " fused relu" : "",
         g.fused_hardswish ? " fused hardswish" : "", g.channels_last ? " channels-last" : "");
    const std::int64_t n = g.batch * g.channels * g.height * g.width;
    const auto channels = static_cast<std::size_t>(g.channels), count = static_cast<std::size_t>(n);
    const std::vector<float> x = bfloat16_values(n, 1, c.offset), gy = bfloat16_values(n, 2, 0.0f);
    const std::vector<float> gamma = bfloat16_values(g.channels, 3, 1.0f),
                             beta = bfloat16_values(g.channels, 4, 0.0f);
    const std::vector<bfloat16> x16 = converted<bfloat16>(x), gy16 = converted<bfloat16>(gy);
    // A residual block's tail adds a residual before the ReLU (batchnorm.hpp): every other run has one.
    const std::vector<float> residual = bfloat16_values(n, 5, 0.0f);
    const std::vector<bfloat16> residual16 = converted<bfloat16>(residual);
    int run = 0;
    at_each_fast_level([&] {
      // The detected L2, then 256 KiB, with which the [16, 16, 32, 32] case takes the channel-group walk
      // (kernels/batchnorm/channel_groups.hpp) in both precisions, in groups of 1 (float) and 2 channels.
      for (const auto& [threads, l2_bytes] :
           {std::pair{1, 0}, std::pair{2, 0}, std::pair{1, 256 << 10}, std::pair{2, 256 << 10}}) {
        INFO(threads, " threads, L2 ", l2_bytes == 0 ? "detected" : std::to_string(l2_bytes));
        kk::set_compute_threads(threads);
        const testing::L2SizeGuard l2(l2_bytes);
        const bool added = run++ % 2 == 1 && !g.fused_hardswish;
        INFO((added ? "with a residual" : "no residual"));
        const float* r = added ? residual.data() : nullptr;
        const bfloat16* r16 = added ? residual16.data() : nullptr;
        // Train forward, float and bfloat16.
        std::vector<float> y(count), mean(channels), invstd(channels), rm(channels, 0.5f), rv(channels, 2.0f);
        kk::batchnorm2d_forward_train(kCpu, g, x.data(), gamma.data(), beta.data(), 1e-5f, 0.1f, rm.data(),
                                      rv.data(), y.data(), mean.data(), invstd.data(), r);
        std::vector<bfloat16> y16(count);
        std::vector<float> mean16(channels), invstd16(channels), rm16(channels, 0.5f), rv16(channels, 2.0f);
        kk::batchnorm2d_forward_train(kCpu, g, x16.data(), gamma.data(), beta.data(), 1e-5f, 0.1f,
                                      rm16.data(), rv16.data(), y16.data(), mean16.data(), invstd16.data(),
                                      r16);
        CHECK(bfloat16_difference(y16, converted<bfloat16>(y), 0) == "");
        CHECK(mean16 == mean);
        CHECK(invstd16 == invstd);
        CHECK(rm16 == rm);
        CHECK(rv16 == rv);
        // Train backward. After a residual, the fused ReLU's mask is read from y (the same rounded y in both
        // types) and the gradient through the ReLU kept (the residual's); without one, the mask is recomputed
        // from x, in either type that of the y it stored.
        const std::vector<float> y_rounded = rounded_to_bfloat16(y);
        std::vector<float> gx(count), ggamma(channels), gbeta(channels), through(added ? count : 0);
        kk::batchnorm2d_backward_train(kCpu, g, x.data(), gy.data(), y_rounded.data(), gamma.data(),
                                       beta.data(), mean.data(), invstd.data(), gx.data(), ggamma.data(),
                                       gbeta.data(), added ? through.data() : nullptr);
        std::vector<bfloat16> gx16(count), through16(added ? count : 0);
        std::vector<float> ggamma16(channels), gbeta16(channels);
        kk::batchnorm2d_backward_train(kCpu, g, x16.data(), gy16.data(), y16.data(), gamma.data(),
                                       beta.data(), mean.data(), invstd.data(), gx16.data(), ggamma16.data(),
                                       gbeta16.data(), added ? through16.data() : nullptr);
        CHECK(bfloat16_difference(gx16, converted<bfloat16>(gx), 0) == "");
        CHECK(bfloat16_difference(through16, converted<bfloat16>(through), 0) == "");
        CHECK(ggamma16 == ggamma);
        CHECK(gbeta16 == gbeta);
        // Eval forward and backward with the running statistics.
        std::vector<float> ey(count);
        std::vector<bfloat16> ey16(count);
        kk::batchnorm2d_forward_eval(kCpu, g, x.data(), gamma.data(), beta.data(), rm.data(), rv.data(),
                                     1e-5f, ey.data(), r);
        kk::batchnorm2d_forward_eval(kCpu, g, x16.data(), gamma.data(), beta.data(), rm.data(), rv.data(),
                                     1e-5f, ey16.data(), r16);
        CHECK(bfloat16_difference(ey16, converted<bfloat16>(ey), 0) == "");
        const std::vector<float> ey_rounded = rounded_to_bfloat16(ey);
        std::vector<float> egx(count), eggamma(channels), egbeta(channels);
        std::vector<bfloat16> egx16(count);
        std::vector<float> eggamma16(channels), egbeta16(channels);
        kk::batchnorm2d_backward_eval(kCpu, g, x.data(), gy.data(), ey_rounded.data(), gamma.data(),
                                      beta.data(), rm.data(), rv.data(), 1e-5f, egx.data(), eggamma.data(),
                                      egbeta.data());
        kk::batchnorm2d_backward_eval(kCpu, g, x16.data(), gy16.data(), ey16.data(), gamma.data(),
                                      beta.data(), rm.data(), rv.data(), 1e-5f, egx16.data(),
                                      eggamma16.data(), egbeta16.data());
        CHECK(bfloat16_difference(egx16, converted<bfloat16>(egx), 0) == "");
        CHECK(eggamma16 == eggamma);
        CHECK(egbeta16 == egbeta);
      }
    });
  }
}

}  // namespace

}  // namespace kernels_bfloat16_vectorized_test
