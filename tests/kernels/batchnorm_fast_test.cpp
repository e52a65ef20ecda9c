// Tests of the vectorized batch-normalization kernels (kernels/batchnorm/avx512.cpp, avx2.cpp) against the
// reference kernels, plain and with the fused ReLU, NCHW and channels-last, at every dispatch level this CPU
// has, over odd shapes (batch 1, 1x1 planes, channels 3/5/17, planes that are not a multiple of the vector
// width, planes longer than one summation chunk, a channel mean far from zero), and with 1 and 2 threads,
// which must agree bitwise.
//
// Tolerances (float32): y and gx within atol 1e-5 + rtol 1e-4 of the reference, which rounds from double
// once. The per-channel sums (ggamma, gbeta) and the saved statistics within atol 1e-4 + rtol 1e-4: the fast
// kernels add float partials of up to 1024 values before going to double.
#include <doctest/doctest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "core/bfloat16.hpp"
#include "kernels/batchnorm/batchnorm.hpp"
#include "kernels/batchnorm/batchnorm_vector_ops.hpp"
#include "kernels/batchnorm/channel_groups.hpp"
#include "kernels/cpu_level.hpp"
#include "kernels/elementwise/elementwise.hpp"
#include "kernels/parallel.hpp"
#include "tests/support/fast_kernel_testing.hpp"
#include "tests/support/matches_reference.hpp"

namespace kernels_batchnorm_fast_test {

namespace {

using kiln::Device;
using kiln::kernels::BatchNorm2dGeometry;
using kiln::kernels::CpuLevel;
using kiln::testing::DispatchGuard;
using kiln::testing::fast_levels;
using kiln::testing::L2SizeGuard;
using kiln::testing::matches_reference;
using kiln::testing::random_floats;
using kiln::testing::Tolerance;
namespace kk = kiln::kernels;

constexpr Tolerance kElementwise{1e-5, 1e-4};
constexpr Tolerance kSums{1e-4, 1e-4};

// Values uniform in [-1, 1), plus offset.
std::vector<float> floats_around(std::int64_t count, std::uint64_t seed, float offset = 0.0f) {
  std::vector<float> values = random_floats(count, seed);
  for (float& v : values) v = offset + v;
  return values;
}

struct Case {
  BatchNorm2dGeometry g;
  float offset;  // added to x: a channel mean far from zero tests the shifted one-pass variance
};

std::vector<Case> plain_cases() {
  return {
      {{.batch = 1, .channels = 3, .height = 2, .width = 3}, 0.0f},      // batch 1, plane < width
      {{.batch = 2, .channels = 5, .height = 1, .width = 1}, 0.0f},      // 1x1 planes
      {{.batch = 1, .channels = 5, .height = 1, .width = 1}, 0.0f},      // one value per channel
      {{.batch = 3, .channels = 17, .height = 5, .width = 7}, 3.0f},     // 35-value planes: a scalar tail
      {{.batch = 4, .channels = 16, .height = 8, .width = 8}, 0.0f},     // ResNet stage 3 plane
      {{.batch = 3, .channels = 3, .height = 33, .width = 35}, 10.0f},   // 1155 > one 1024-value chunk
      {{.batch = 16, .channels = 16, .height = 32, .width = 32}, 0.0f},  // threaded (m = 16384)
      // Planes shorter than a vector go as rows of C * H * W floats (vectorized_batchnorm.hpp, as_rows): 2x2
      // planes of 257 channels are rows of 1028, a partial vector at the end, threaded (32896 values).
      {{.batch = 32, .channels = 257, .height = 2, .width = 2}, 5.0f},
  };
}

// The fused ReLU's cap in the capped cases: low enough that a good share of y is clamped to it (the values
// are about N(beta, gamma)), and exact in bfloat16, as a cap must be (ReLU6's 6 is the layers').
constexpr float kTestCap = 0.5f;

// Each plain case, then each again with the ReLU fused (about half of y is then clamped to zero, so the
// backward's mask matters), again with the ReLU capped at kTestCap, and again with the hard swish fused
// (beta about N(0, 1), gamma about 1: values on both sides of its kink at -3 and its knee at 3 are rare, the
// three pieces in between common); then all of those channels-last,
// with two more whose rows are wider than the channels-last walk's group of 4 vectors (64 channels on AVX2;
// 130, with a partial vector, on both), and rows of 2 and 3 whole AVX-512 vectors, whose coefficients the
// elementwise passes hold in registers.
std::vector<Case> odd_cases() {
  std::vector<Case> cases = plain_cases();
  for (const float cap : {std::numeric_limits<float>::infinity(), kTestCap}) {
    for (Case c : plain_cases()) {
      c.g.fused_relu = true;
      c.g.relu_upper = cap;
      cases.push_back(c);
    }
  }
  for (Case c : plain_cases()) {
    c.g.fused_hardswish = true;
    cases.push_back(c);
  }
  cases.push_back({{.batch = 8, .channels = 64, .height = 8, .width = 8}, 0.0f});
  cases.push_back({{.batch = 2, .channels = 130, .height = 9, .width = 15, .fused_relu = true}, 1.0f});
  cases.push_back({{.batch = 4, .channels = 32, .height = 6, .width = 5, .fused_relu = true}, 2.0f});
  cases.push_back({{.batch = 3, .channels = 48, .height = 7, .width = 5}, 0.0f});
  const std::size_t nchw = cases.size();
  for (std::size_t i = 0; i < nchw; ++i) {
    Case c = cases[i];
    c.g.channels_last = true;
    cases.push_back(c);
  }
  return cases;
}

std::int64_t numel(const BatchNorm2dGeometry& g) { return g.batch * g.channels * g.height * g.width; }

// The fused activation, for INFO: "", " fused relu", " fused relu capped at 0.5" or " fused hardswish".
std::string relu_label(const BatchNorm2dGeometry& g) {
  if (g.fused_hardswish) return " fused hardswish";
  if (!g.fused_relu) return "";
  if (std::isinf(g.relu_upper)) return " fused relu";
  return " fused relu capped at " + std::to_string(g.relu_upper);
}

// The elementwise relu (capped at g.relu_upper) of v when g fuses it: the separate op's value.
float fused_relu_of(const BatchNorm2dGeometry& g, float v) {
  if (!g.fused_relu) return v;
  return v < 0 ? 0.0f : v > g.relu_upper ? g.relu_upper : v;
}
// Its rule for the gradient at output y: relu's, and the clamp's below a cap.
bool passes_gradient(const BatchNorm2dGeometry& g, float y) {
  return y > 0 && (std::isinf(g.relu_upper) || y < g.relu_upper);
}

struct TrainOutputs {
  std::vector<float> y, save_mean, save_invstd, running_mean, running_var, gx, ggamma, gbeta;
};

// Forward then backward in train mode, through the dispatcher at the current level or the reference. Either
// backward takes the dispatched forward's y and saved statistics, so its check isolates the backward kernel:
// the vectorized one recomputes the fused ReLU's mask from them (batchnorm.hpp), the mask of that y, which a
// reference forward's y may differ from where a value lies within a rounding of zero.
TrainOutputs run_train(const Case& c, bool use_reference) {
  const auto& g = c.g;
  const auto n = static_cast<std::size_t>(numel(g)), channels = static_cast<std::size_t>(g.channels);
  const std::vector<float> x = floats_around(numel(g), 1, c.offset), gy = floats_around(numel(g), 2);
  const std::vector<float> gamma = floats_around(g.channels, 3, 1.0f), beta = floats_around(g.channels, 4);
  TrainOutputs o{std::vector<float>(n),
                 std::vector<float>(channels),
                 std::vector<float>(channels),
                 std::vector<float>(channels, 0.5f),
                 std::vector<float>(channels, 2.0f),
                 std::vector<float>(n),
                 std::vector<float>(channels),
                 std::vector<float>(channels)};
  kk::batchnorm2d_forward_train(Device::cpu(), g, x.data(), gamma.data(), beta.data(), 1e-5f, 0.1f,
                                o.running_mean.data(), o.running_var.data(), o.y.data(), o.save_mean.data(),
                                o.save_invstd.data());
  if (!use_reference) {
    kk::batchnorm2d_backward_train(Device::cpu(), g, x.data(), gy.data(), o.y.data(), gamma.data(),
                                   beta.data(), o.save_mean.data(), o.save_invstd.data(), o.gx.data(),
                                   o.ggamma.data(), o.gbeta.data());
    return o;
  }
  kk::reference::batchnorm2d_backward_train(g, x.data(), gy.data(), o.y.data(), gamma.data(), beta.data(),
                                            o.save_mean.data(), o.save_invstd.data(), o.gx.data(),
                                            o.ggamma.data(), o.gbeta.data());
  // The forward's outputs, the reference's.
  std::fill(o.running_mean.begin(), o.running_mean.end(), 0.5f);
  std::fill(o.running_var.begin(), o.running_var.end(), 2.0f);
  kk::reference::batchnorm2d_forward_train(g, x.data(), gamma.data(), beta.data(), 1e-5f, 0.1f,
                                           o.running_mean.data(), o.running_var.data(), o.y.data(),
                                           o.save_mean.data(), o.save_invstd.data());
  return o;
}

struct EvalOutputs {
  std::vector<float> y, gx, ggamma, gbeta;
};

EvalOutputs run_eval(const Case& c, bool use_reference) {
  const auto& g = c.g;
  const auto n = static_cast<std::size_t>(numel(g)), channels = static_cast<std::size_t>(g.channels);
  const std::vector<float> x = floats_around(numel(g), 5, c.offset), gy = floats_around(numel(g), 6);
  const std::vector<float> gamma = floats_around(g.channels, 7, 1.0f), beta = floats_around(g.channels, 8);
  const std::vector<float> running_mean = floats_around(g.channels, 9, c.offset);
  const std::vector<float> running_var = floats_around(g.channels, 10, 2.0f);
  EvalOutputs o{std::vector<float>(n), std::vector<float>(n), std::vector<float>(channels),
                std::vector<float>(channels)};
  if (use_reference) {
    kk::reference::batchnorm2d_forward_eval(g, x.data(), gamma.data(), beta.data(), running_mean.data(),
                                            running_var.data(), 1e-5f, o.y.data());
    kk::reference::batchnorm2d_backward_eval(g, x.data(), gy.data(), o.y.data(), gamma.data(), beta.data(),
                                             running_mean.data(), running_var.data(), 1e-5f, o.gx.data(),
                                             o.ggamma.data(), o.gbeta.data());
  } else {
    kk::batchnorm2d_forward_eval(Device::cpu(), g, x.data(), gamma.data(), beta.data(), running_mean.data(),
                                 running_var.data(), 1e-5f, o.y.data());
    std::vector<float> y(n);  // the reference's, as in run_train
    kk::reference::batchnorm2d_forward_eval(g, x.data(), gamma.data(), beta.data(), running_mean.data(),
                                            running_var.data(), 1e-5f, y.data());
    kk::batchnorm2d_backward_eval(Device::cpu(), g, x.data(), gy.data(), y.data(), gamma.data(), beta.data(),
                                  running_mean.data(), running_var.data(), 1e-5f, o.gx.data(),
                                  o.ggamma.data(), o.gbeta.data());
  }
  return o;
}

void check_close(const std::vector<float>& actual, const std::vector<float>& expected, Tolerance t,
                 const char* what) {
  const auto report =
      matches_reference(actual.data(), expected.data(), static_cast<std::int64_t>(actual.size()), t);
  CHECK_MESSAGE(report.ok, what, ": ", report.message);
}

// Every output of two train runs, bit for bit.
void check_same_bits(const TrainOutputs& a, const TrainOutputs& b, const char* which) {
  INFO(which);
  CHECK(a.y == b.y);
  CHECK(a.save_mean == b.save_mean);
  CHECK(a.save_invstd == b.save_invstd);
  CHECK(a.running_mean == b.running_mean);
  CHECK(a.running_var == b.running_var);
  CHECK(a.gx == b.gx);
  CHECK(a.ggamma == b.ggamma);
  CHECK(a.gbeta == b.gbeta);
}

}  // namespace

TEST_CASE("batchnorm fast: train forward and backward match the reference at every level, 1 and 2 threads") {
  DispatchGuard guard;
  for (const CpuLevel level : fast_levels()) {
    kk::set_cpu_level(level);
    for (const Case& c : odd_cases()) {
      INFO(kk::cpu_level_name(level), " [", c.g.batch, ",", c.g.channels, ",", c.g.height, ",", c.g.width,
           "]", relu_label(c.g), c.g.channels_last ? " channels-last" : "");
      kk::set_compute_threads(1);
      const TrainOutputs one = run_train(c, false);
      kk::set_compute_threads(2);
      const TrainOutputs two = run_train(c, false);
      const TrainOutputs expected = run_train(c, true);
      check_close(one.y, expected.y, kElementwise, "y");
      check_close(one.save_mean, expected.save_mean, kSums, "save_mean");
      check_close(one.save_invstd, expected.save_invstd, kSums, "save_invstd");
      check_close(one.running_mean, expected.running_mean, kSums, "running_mean");
      check_close(one.running_var, expected.running_var, kSums, "running_var");
      check_close(one.gx, expected.gx, kElementwise, "gx");
      check_close(one.ggamma, expected.ggamma, kSums, "ggamma");
      check_close(one.gbeta, expected.gbeta, kSums, "gbeta");
      check_same_bits(one, two, "1 and 2 threads");
    }
  }
}

TEST_CASE("batchnorm fast: eval forward and backward match the reference at every level, 1 and 2 threads") {
  DispatchGuard guard;
  for (const CpuLevel level : fast_levels()) {
    kk::set_cpu_level(level);
    for (const Case& c : odd_cases()) {
      INFO(kk::cpu_level_name(level), " [", c.g.batch, ",", c.g.channels, ",", c.g.height, ",", c.g.width,
           "]", relu_label(c.g), c.g.channels_last ? " channels-last" : "");
      kk::set_compute_threads(1);
      const EvalOutputs one = run_eval(c, false);
      kk::set_compute_threads(2);
      const EvalOutputs two = run_eval(c, false);
      const EvalOutputs expected = run_eval(c, true);
      check_close(one.y, expected.y, kElementwise, "y");
      check_close(one.gx, expected.gx, kElementwise, "gx");
      check_close(one.ggamma, expected.ggamma, kSums, "ggamma");
      check_close(one.gbeta, expected.gbeta, kSums, "gbeta");
      CHECK(one.y == two.y);
      CHECK(one.gx == two.gx);
      CHECK(one.ggamma == two.ggamma);
      CHECK(one.gbeta == two.gbeta);
    }
  }
}

// The policy of kernels/batchnorm/channel_groups.hpp on ResNet-20's shapes at batch 128, float, 2 threads of
// 2 MiB L2 cores (the machine it was measured on), and each of its ways out.
TEST_CASE("batchnorm channel groups: large NCHW tensors group by whole pages, the rest walk in order") {
  constexpr std::int64_t kL2 = 2 << 20;
  const BatchNorm2dGeometry stage1{.batch = 128, .channels = 16, .height = 32, .width = 32};
  const BatchNorm2dGeometry stage2{.batch = 128, .channels = 32, .height = 16, .width = 16};
  const BatchNorm2dGeometry stage3{.batch = 128, .channels = 64, .height = 8, .width = 8};
  CHECK(kk::channel_group(stage1, 4, 1, kL2, 2) == 1);      // a 4 KiB plane is a page
  CHECK(kk::channel_group(stage1, 4, 2, kL2, 2) == 1);      // 2 read + 1 written x 512 KiB fit in 1.5 MiB
  CHECK(kk::channel_group(stage1, 4, 3, kL2, 2) == 0);      // 3 read + 1 written do not
  CHECK(kk::channel_group(stage2, 4, 1, kL2, 2) == 4);      // 1 KiB planes, 4 to a page
  CHECK(kk::channel_group(stage2, 2, 2, kL2, 2) == 8);      // bfloat16 backward: 8 to a page
  CHECK(kk::channel_group(stage3, 4, 1, kL2, 2) == 0);      // 1 MiB a thread: in L2 already
  CHECK(kk::channel_group(stage3, 4, 2, kL2, 2) == 16);     // 2 MiB a thread is not
  CHECK(kk::channel_group(stage1, 4, 1, 1 << 20, 2) == 0);  // 512 KiB in + 512 out: not in 1 MiB (Zen 5)
  CHECK(kk::channel_group(stage1, 4, 1, kL2, 32) == 0);     // 16 groups cannot busy 32 threads
  BatchNorm2dGeometry channels_last = stage1;
  channels_last.channels_last = true;
  CHECK(kk::channel_group(channels_last, 4, 1, kL2, 2) == 0);
}

// With a small L2 to plan for, every case below takes the channel-group walk (checked first through the
// policy), and gives the walk in memory order's bits, which an L2 larger than any tensor forces: the
// groups partial at the end (29 channels in groups of 4, 80 in groups of 12) and planes of 81 values
// (a vector tail) included.
TEST_CASE("batchnorm fast: the channel-group walk gives the walk in order's bits, 1 and 2 threads") {
  struct GroupedCase {
    Case c;
    std::int64_t l2_bytes;
  };
  std::vector<GroupedCase> cases;
  for (const bool relu : {false, true}) {
    cases.push_back(
        {{{.batch = 16, .channels = 16, .height = 32, .width = 32, .fused_relu = relu}, 0.0f}, 256 << 10});
    cases.push_back(
        {{{.batch = 8, .channels = 29, .height = 16, .width = 16, .fused_relu = relu}, 3.0f}, 144 << 10});
    cases.push_back(
        {{{.batch = 4, .channels = 80, .height = 9, .width = 9, .fused_relu = relu}, 1.0f}, 66 << 10});
  }
  cases.push_back(
      {{{.batch = 8, .channels = 29, .height = 16, .width = 16, .fused_hardswish = true}, 2.0f}, 144 << 10});
  DispatchGuard guard;
  for (const CpuLevel level : fast_levels()) {
    kk::set_cpu_level(level);
    for (const auto& [c, l2_bytes] : cases) {
      for (const int threads : {1, 2}) {
        INFO(kk::cpu_level_name(level), " [", c.g.batch, ",", c.g.channels, ",", c.g.height, ",", c.g.width,
             "]", relu_label(c.g), ", ", threads, " threads");
        REQUIRE(kk::channel_group(c.g, sizeof(float), 1, l2_bytes, threads) > 0);
        // (The backward's first pass reads gy and x, the ReLU's mask recomputed from x.)
        REQUIRE(kk::channel_group(c.g, sizeof(float), 2, l2_bytes, threads) > 0);
        kk::set_compute_threads(threads);
        TrainOutputs grouped, in_order;
        {
          const L2SizeGuard small(l2_bytes);
          grouped = run_train(c, false);
        }
        {
          const L2SizeGuard larger_than_any_tensor(std::int64_t{1} << 40);
          in_order = run_train(c, false);
        }
        check_same_bits(grouped, in_order, "grouped and in order");
        const TrainOutputs expected = run_train(c, true);
        check_close(grouped.y, expected.y, kElementwise, "y");
        check_close(grouped.gx, expected.gx, kElementwise, "gx");
        check_close(grouped.ggamma, expected.ggamma, kSums, "ggamma");
      }
    }
  }
}

// The channel-group walk's case of the tests below, [8, 29, 16, 16] (groups of 4 channels, the last of 1).
constexpr BatchNorm2dGeometry kGroupedGeometry{.batch = 8, .channels = 29, .height = 16, .width = 16};

// Every odd case but the hard swish's (those with the ReLU fused only, when fused_only), then
// kGroupedGeometry planned for grouped_l2_bytes of L2, at each fast level: body(case), the level and the L2
// set, an INFO naming them. first_pass_tensors: what the kernel under test reads (and keeps) in its first
// pass, for the check that the grouped case does take the channel-group walk, on 1 and 2 threads.
template <class Body>
void at_each_level_and_walk(bool fused_only, std::int64_t grouped_l2_bytes, int first_pass_tensors,
                            Body&& body) {
  std::vector<std::pair<Case, std::int64_t>> cases;  // (case, L2 bytes to plan for; 0: the detected size)
  for (const Case& c : odd_cases())
    if (!c.g.fused_hardswish && (c.g.fused_relu || !fused_only)) cases.push_back({c, 0});
  for (const float cap : {0.0f, std::numeric_limits<float>::infinity(), kTestCap}) {  // 0: no ReLU
    if (cap == 0 && fused_only) continue;
    BatchNorm2dGeometry grouped = kGroupedGeometry;
    grouped.fused_relu = cap != 0;
    if (grouped.fused_relu) grouped.relu_upper = cap;
    for (const int threads : {1, 2})
      REQUIRE(kk::channel_group(grouped, sizeof(float), first_pass_tensors, grouped_l2_bytes, threads) > 0);
    cases.push_back({{grouped, 3.0f}, grouped_l2_bytes});
  }
  DispatchGuard guard;
  for (const CpuLevel level : fast_levels()) {
    kk::set_cpu_level(level);
    for (const auto& [c, l2_bytes] : cases) {
      const L2SizeGuard l2(l2_bytes);
      const auto& g = c.g;
      INFO(kk::cpu_level_name(level), " [", g.batch, ",", g.channels, ",", g.height, ",", g.width, "]",
           relu_label(g), (g.channels_last ? " channels-last" : ""), (l2_bytes ? " grouped" : ""));
      body(c);
    }
  }
}

// A residual added before the ReLU (the forward kernels' last argument), train and eval mode, over every odd
// case and, with a small L2 to plan for, the channel-group walk's: the reference's values, the same bits on
// 1 and 2 threads, and in float the bits of the two ops it replaces, batch norm without the ReLU and then
// relu(y + residual) (the same float sum, rounded once either way). The cases without a ReLU are an inverted
// residual block's tail, y + residual.
TEST_CASE("batchnorm fast: a residual added before the ReLU, train and eval, at every level") {
  at_each_level_and_walk(false, 144 << 10, 1, [](const Case& c) {  // the forward reads x
    const auto& g = c.g;
    const auto n = static_cast<std::size_t>(numel(g)), channels = static_cast<std::size_t>(g.channels);
    const std::vector<float> x = floats_around(numel(g), 11, c.offset),
                             residual = floats_around(numel(g), 12);
    const std::vector<float> gamma = floats_around(g.channels, 13, 1.0f),
                             beta = floats_around(g.channels, 14);
    const std::vector<float> running_mean = floats_around(g.channels, 15, c.offset);
    const std::vector<float> running_var = floats_around(g.channels, 16, 2.0f);
    BatchNorm2dGeometry plain = g;
    plain.fused_relu = false;
    for (const bool training : {true, false}) {
      INFO((training ? "train" : "eval"));
      // y through the dispatcher (fast) or the reference, with the residual or (plain) without it and the
      // ReLU.
      const auto forward = [&](const BatchNorm2dGeometry& geometry, bool use_reference, const float* added) {
        std::vector<float> y(n), mean(channels), invstd(channels);
        if (training && use_reference) {
          kk::reference::batchnorm2d_forward_train(geometry, x.data(), gamma.data(), beta.data(), 1e-5f, 0.1f,
                                                   nullptr, nullptr, y.data(), mean.data(), invstd.data(),
                                                   added);
        } else if (training) {
          kk::batchnorm2d_forward_train(Device::cpu(), geometry, x.data(), gamma.data(), beta.data(), 1e-5f,
                                        0.1f, nullptr, nullptr, y.data(), mean.data(), invstd.data(), added);
        } else if (use_reference) {
          kk::reference::batchnorm2d_forward_eval(geometry, x.data(), gamma.data(), beta.data(),
                                                  running_mean.data(), running_var.data(), 1e-5f, y.data(),
                                                  added);
        } else {
          kk::batchnorm2d_forward_eval(Device::cpu(), geometry, x.data(), gamma.data(), beta.data(),
                                       running_mean.data(), running_var.data(), 1e-5f, y.data(), added);
        }
        return y;
      };
      kk::set_compute_threads(1);
      const std::vector<float> one = forward(g, false, residual.data());
      kk::set_compute_threads(2);
      const std::vector<float> two = forward(g, false, residual.data());
      CHECK(one == two);
      check_close(one, forward(g, true, residual.data()), kElementwise, "y");
      std::vector<float> separate = forward(plain, false, nullptr);
      for (std::size_t i = 0; i < n; ++i) {
        separate[i] = fused_relu_of(g, separate[i] + residual[i]);
      }
      CHECK(one == separate);
    }
  });
}

// The fused backward asked to keep gy through the ReLU (the residual's gradient in a residual block's tail):
// it keeps gy * (y > 0 ? 1 : 0), the reference's, bit for bit, and its own gradients are the bits it gives
// without keeping it (its second pass then reads the kept gradient instead of gy and y; in train mode, the
// backward without it recomputes the mask from x, so these equal bits say that mask is y's) and the bits of
// the two ops it replaces, train and eval, over every fused odd case and, with a small L2 to plan for, the
// channel-group walk's.
TEST_CASE("batchnorm fast: the fused backward keeps gy through the ReLU, its gradients unchanged") {
  at_each_level_and_walk(true, 256 << 10, 4, [](const Case& c) {  // gy, x, y, and the kept gradient
    const auto& g = c.g;
    const auto n = static_cast<std::size_t>(numel(g)), channels = static_cast<std::size_t>(g.channels);
    const std::vector<float> x = floats_around(numel(g), 21, c.offset), gy = floats_around(numel(g), 22);
    const std::vector<float> gamma = floats_around(g.channels, 23, 1.0f),
                             beta = floats_around(g.channels, 24);
    // The dispatched forward's: the backward without a kept gradient recomputes its mask.
    std::vector<float> y(n), mean(channels), invstd(channels);
    kk::batchnorm2d_forward_train(Device::cpu(), g, x.data(), gamma.data(), beta.data(), 1e-5f, 0.1f, nullptr,
                                  nullptr, y.data(), mean.data(), invstd.data());
    std::vector<float> expected_through(n);
    for (std::size_t i = 0; i < n; ++i)
      expected_through[i] = gy[i] * (passes_gradient(g, y[i]) ? 1.0f : 0.0f);
    const std::vector<float> running_var = floats_around(g.channels, 25, 2.0f);
    for (const bool training : {true, false}) {
      INFO((training ? "train" : "eval"));
      // The backward of geometry `geometry` from gradient `from`, keeping the gradient through the ReLU in
      // `through` when that is not null.
      const auto backward = [&](const BatchNorm2dGeometry& geometry, const std::vector<float>& from,
                                float* through) {
        TrainOutputs o;
        o.gx.assign(n, -7.0f);
        o.ggamma.resize(channels);
        o.gbeta.resize(channels);
        if (training) {
          kk::batchnorm2d_backward_train(Device::cpu(), geometry, x.data(), from.data(), y.data(),
                                         gamma.data(), beta.data(), mean.data(), invstd.data(), o.gx.data(),
                                         o.ggamma.data(), o.gbeta.data(), through);
        } else {
          kk::batchnorm2d_backward_eval(Device::cpu(), geometry, x.data(), from.data(), y.data(),
                                        gamma.data(), beta.data(), mean.data(), running_var.data(), 1e-5f,
                                        o.gx.data(), o.ggamma.data(), o.gbeta.data(), through);
        }
        return o;
      };
      BatchNorm2dGeometry unfused = g;
      unfused.fused_relu = false;
      for (const int threads : {1, 2}) {
        kk::set_compute_threads(threads);
        std::vector<float> through(n, -9.0f);
        const TrainOutputs kept = backward(g, gy, through.data()), plain = backward(g, gy, nullptr);
        CHECK(through == expected_through);
        CHECK(kept.gx == plain.gx);
        CHECK(kept.ggamma == plain.ggamma);
        CHECK(kept.gbeta == plain.gbeta);
        // And the two ops it replaces, relu's backward and then batch norm's without the ReLU: the same bits.
        const TrainOutputs separate = backward(unfused, expected_through, nullptr);
        CHECK(kept.gx == separate.gx);
        CHECK(kept.ggamma == separate.ggamma);
        CHECK(kept.gbeta == separate.gbeta);
      }
    }
  });
}

// The vectorized train backward of g twice from the same forward: keeping the gradient through the ReLU
// (which makes it read y for the mask) and not (which makes it recompute the mask from x): the same gx,
// ggamma and gbeta, bit for bit. Returns the kept gradient.
template <typename T>
std::vector<T> check_recomputed_mask_is_read(const BatchNorm2dGeometry& g, const std::vector<T>& x,
                                             const std::vector<T>& gy, const std::vector<T>& y,
                                             const std::vector<float>& gamma, const std::vector<float>& beta,
                                             const std::vector<float>& mean,
                                             const std::vector<float>& invstd) {
  const std::size_t n = x.size(), channels = gamma.size();
  std::vector<T> gx_read(n), gx_recomputed(n), through(n);
  std::vector<float> ggamma_read(channels), gbeta_read(channels), ggamma(channels), gbeta(channels);
  kk::batchnorm2d_backward_train(Device::cpu(), g, x.data(), gy.data(), y.data(), gamma.data(), beta.data(),
                                 mean.data(), invstd.data(), gx_read.data(), ggamma_read.data(),
                                 gbeta_read.data(), through.data());
  kk::batchnorm2d_backward_train(Device::cpu(), g, x.data(), gy.data(), y.data(), gamma.data(), beta.data(),
                                 mean.data(), invstd.data(), gx_recomputed.data(), ggamma.data(),
                                 gbeta.data());
  const auto widened = [](const std::vector<T>& v) {
    std::vector<float> floats(v.size());
    for (std::size_t i = 0; i < v.size(); ++i) floats[i] = static_cast<float>(v[i]);
    return floats;
  };
  CHECK(widened(gx_recomputed) == widened(gx_read));
  CHECK(ggamma == ggamma_read);
  CHECK(gbeta == gbeta_read);
  return through;
}

// The recomputed mask's threshold: a float v is stored as a positive T exactly when v > it, checked over
// every float from 0 to 2^-125 (past the bfloat16 subnormals) and a few larger ones.
TEST_CASE("batchnorm fast: largest_stored_as_zero is where rounding to T stops giving zero") {
  int wrong = 0;
  for (std::uint32_t bits = 0; bits <= 0x01000000u; bits += bits < 0x00020000u ? 1 : 0x1000) {
    const float v = std::bit_cast<float>(bits);
    wrong += (static_cast<float>(kiln::bfloat16(v)) > 0) !=
             (v > kk::vectorized::largest_stored_as_zero<kiln::bfloat16>);
    wrong += (v > 0) != (v > kk::vectorized::largest_stored_as_zero<float>);
  }
  CHECK(wrong == 0);
}

// The vectorized train backward recomputes the fused ReLU's mask from x (batchnorm.hpp); here it must be the
// mask of the y the forward stored where that is hardest, values within a rounding of zero. Six channels hold
// one value each (x - mean is 0, so v = beta): betas on either side of what T stores as zero (2^-134 and
// the float above it for bfloat16; the smallest float; signed zeros). The others hold three values each, and
// beta cancels the first one's normalized value to its product's rounding error, v = fma(d, scale, -(d *
// scale)): a tiny number of either sign, which a scale one ulp off (computed other than the forward's) moves.
// Backward keeping the gradient through the ReLU reads y for the mask; without, it recomputes it: the same
// bits, over the plane walk (a scalar tail), the rows walk and channels-last, at every level.
TEST_CASE_TEMPLATE("batchnorm fast: the recomputed ReLU mask is the stored y's at the edge of zero", T, float,
                   kiln::bfloat16) {
  const float edge_betas[] = {0x1p-134f, std::nextafter(0x1p-134f, 1.0f), 0x1p-149f, 0x1p-133f, 0.0f, -0.0f};
  constexpr std::int64_t kConstantChannels = 6;
  DispatchGuard guard;
  for (const CpuLevel level : fast_levels()) {
    kk::set_cpu_level(level);
    for (BatchNorm2dGeometry g :
         {BatchNorm2dGeometry{.batch = 2, .channels = 16, .height = 5, .width = 7},
          BatchNorm2dGeometry{.batch = 8, .channels = 20, .height = 2, .width = 2},
          BatchNorm2dGeometry{.batch = 2, .channels = 16, .height = 5, .width = 7, .channels_last = true}}) {
      g.fused_relu = true;
      INFO(kk::cpu_level_name(level), " [", g.batch, ",", g.channels, ",", g.height, ",", g.width, "]",
           (g.channels_last ? " channels-last" : ""));
      const std::int64_t plane = g.height * g.width, count = numel(g);
      const auto n = static_cast<std::size_t>(count), channels = static_cast<std::size_t>(g.channels);
      const std::vector<float> values = floats_around(3 * g.channels, 31),
                               gy_floats = floats_around(count, 32);
      const std::vector<float> gamma = floats_around(g.channels, 33, 1.0f);
      const auto at = [&](std::int64_t image, std::int64_t c, std::int64_t i) {
        return static_cast<std::size_t>(g.channels_last ? (image * plane + i) * g.channels + c
                                                        : (image * g.channels + c) * plane + i);
      };
      std::vector<T> x(n), gy(n);
      for (std::int64_t image = 0; image < g.batch; ++image)
        for (std::int64_t c = 0; c < g.channels; ++c)
          for (std::int64_t i = 0; i < plane; ++i) {
            const std::int64_t which = c < kConstantChannels ? 0 : (image * plane + i) % 3;
            x[at(image, c, i)] = T(values[static_cast<std::size_t>(3 * c + which)]);
            gy[at(image, c, i)] = T(gy_floats[at(image, c, i)]);
          }
      // The statistics do not depend on beta: a first forward gives the mean and the scale to cancel.
      std::vector<float> beta(channels, 0.0f), mean(channels), invstd(channels);
      std::vector<T> y(n);
      kk::batchnorm2d_forward_train(Device::cpu(), g, x.data(), gamma.data(), beta.data(), 1e-5f, 0.1f,
                                    nullptr, nullptr, y.data(), mean.data(), invstd.data());
      for (std::size_t c = 0; c < channels; ++c) {
        const float d = static_cast<float>(T(values[3 * c])) - mean[c], scale = invstd[c] * gamma[c];
        beta[c] = c < kConstantChannels ? edge_betas[c] : -(d * scale);
      }
      kk::batchnorm2d_forward_train(Device::cpu(), g, x.data(), gamma.data(), beta.data(), 1e-5f, 0.1f,
                                    nullptr, nullptr, y.data(), mean.data(), invstd.data());
      int tiny_positive = 0, zero = 0;  // the cancelled values' y: both kinds, or the test tests nothing
      for (std::size_t i = 0; i < n; ++i) {
        const float v = static_cast<float>(y[i]);
        tiny_positive += v > 0 && v < 1e-5f;
        zero += v == 0;
      }
      CHECK(tiny_positive > 0);
      CHECK(zero > 0);
      check_recomputed_mask_is_read(g, x, gy, y, gamma, beta, mean, invstd);
    }
  }
}

TEST_CASE_TEMPLATE("batchnorm fast: highest_stored_below is where rounding to T reaches the cap", T, float,
                   kiln::bfloat16) {
  for (const float cap : {6.0f, 0.5f, 5.96875f, 1.0f}) {
    INFO("cap ", cap);
    const float highest = kk::vectorized::highest_stored_below<T>(cap);
    CHECK(highest < cap);
    const std::uint32_t top = std::bit_cast<std::uint32_t>(cap);
    int wrong = 0;
    for (std::uint32_t bits = top - 0x30000u; bits <= top + 0x100u; ++bits) {
      const float v = std::bit_cast<float>(bits);
      wrong += (static_cast<float>(T(v)) < cap) != (v <= highest);
    }
    CHECK(wrong == 0);
  }
  CHECK(std::isinf(kk::vectorized::highest_stored_below<T>(std::numeric_limits<float>::infinity())));
}

// The vectorized train backward's recomputed mask at the cap's edge (as the test above at zero's): channels
// of one value each, so that x - mean is 0 and v = beta exactly, with betas on either side of the float
// highest_stored_below gives, at the cap, around it, and below zero and well inside. The mask read from y
// (the backward keeping its gradient through the ReLU) and the recomputed one give the same bits, and the
// kept gradient is the clamp's rule on the stored y, over the plane walk, the rows walk and channels-last.
TEST_CASE_TEMPLATE("batchnorm fast: the recomputed capped ReLU mask is the stored y's at the edge of the cap",
                   T, float, kiln::bfloat16) {
  const float highest = kk::vectorized::highest_stored_below<T>(kTestCap);
  const std::vector<float> edge_betas = {highest,
                                         std::nextafter(highest, 1.0f),
                                         std::nextafter(highest, 0.0f),
                                         kTestCap,
                                         std::nextafter(kTestCap, 0.0f),
                                         std::nextafter(kTestCap, 1.0f),
                                         2 * kTestCap,
                                         kTestCap / 2,
                                         -kTestCap};
  const auto channels = static_cast<std::int64_t>(edge_betas.size());
  DispatchGuard guard;
  for (const CpuLevel level : fast_levels()) {
    kk::set_cpu_level(level);
    for (BatchNorm2dGeometry g :
         {BatchNorm2dGeometry{.batch = 2, .channels = channels, .height = 5, .width = 7},
          BatchNorm2dGeometry{.batch = 8, .channels = channels, .height = 2, .width = 2},
          BatchNorm2dGeometry{
              .batch = 2, .channels = channels, .height = 5, .width = 7, .channels_last = true}}) {
      g.fused_relu = true;
      g.relu_upper = kTestCap;
      INFO(kk::cpu_level_name(level), " [", g.batch, ",", g.channels, ",", g.height, ",", g.width, "]",
           (g.channels_last ? " channels-last" : ""));
      const std::int64_t count = numel(g);
      const auto n = static_cast<std::size_t>(count), per_channel = static_cast<std::size_t>(channels);
      const std::vector<float> gy_floats = floats_around(count, 41),
                               gamma = floats_around(channels, 42, 1.0f);
      std::vector<T> x(n), gy(n);
      for (std::size_t i = 0; i < n; ++i) {
        const std::size_t c = g.channels_last
                                  ? i % per_channel
                                  : i / static_cast<std::size_t>(g.height * g.width) % per_channel;
        x[i] = T(0.25f * static_cast<float>(c));  // one value a channel
        gy[i] = T(gy_floats[i]);
      }
      std::vector<float> mean(per_channel), invstd(per_channel);
      std::vector<T> y(n);
      kk::batchnorm2d_forward_train(Device::cpu(), g, x.data(), gamma.data(), edge_betas.data(), 1e-5f, 0.1f,
                                    nullptr, nullptr, y.data(), mean.data(), invstd.data());
      int below = 0, at_cap = 0;  // the stored y of the edge betas: both sides, or the test tests nothing
      for (std::size_t i = 0; i < n; ++i) {
        below += static_cast<float>(y[i]) > 0 && static_cast<float>(y[i]) < kTestCap;
        at_cap += static_cast<float>(y[i]) == kTestCap;
      }
      CHECK(below > 0);
      CHECK(at_cap > 0);
      const std::vector<T> through =
          check_recomputed_mask_is_read(g, x, gy, y, gamma, edge_betas, mean, invstd);
      int wrong_through = 0;
      for (std::size_t i = 0; i < n; ++i) {
        const float expected =
            static_cast<float>(gy[i]) * (passes_gradient(g, static_cast<float>(y[i])) ? 1.0f : 0.0f);
        wrong_through += static_cast<float>(through[i]) != expected;
      }
      CHECK(wrong_through == 0);
    }
  }
}

// The fused hard swish on float against the two ops it replaces, run by the same dispatcher: batch norm
// alone, then the elementwise hard swish (simd/hard_activations.hpp, the same float operations on the same
// fma'd value); backward, the hard swish's backward on batch norm's output, then batch norm's plain backward.
// y is their bits. The gradients are within a rounding: GCC contracts a product and the subtraction after it
// into one fma wherever it sees both (intrinsics included: its default is -ffp-contract=fast), and the fused
// backward's slope product meets gx's subtraction in registers where the separate ops stored it between
// them. Train and eval mode, every plain case's shape in both layouts (NCHW planes, planes walked as rows,
// channels-last rows held in registers) and the channel-group walk's, at every level.
TEST_CASE(
    "batchnorm fast: the fused hard swish gives the separate ops' values, train and eval, every level") {
  std::vector<std::pair<Case, std::int64_t>> cases;  // (case, L2 bytes to plan for; 0: the detected size)
  for (Case c : plain_cases()) {
    for (const bool channels_last : {false, true}) {
      c.g.channels_last = channels_last;
      cases.push_back({c, 0});
    }
  }
  cases.push_back({{kGroupedGeometry, 3.0f}, 144 << 10});
  std::int64_t below = 0, above = 0;  // batch norm's outputs at or past each kink
  DispatchGuard guard;
  const std::vector<CpuLevel> levels = fast_levels();
  for (const CpuLevel level : levels) {
    kk::set_cpu_level(level);
    for (const auto& [c, l2_bytes] : cases) {
      const L2SizeGuard l2(l2_bytes);
      BatchNorm2dGeometry fused = c.g, plain = c.g;
      fused.fused_hardswish = true;
      INFO(kk::cpu_level_name(level), " [", plain.batch, ",", plain.channels, ",", plain.height, ",",
           plain.width, "]", (plain.channels_last ? " channels-last" : ""), (l2_bytes ? " grouped" : ""));
      const std::int64_t count = numel(plain);
      const auto n = static_cast<std::size_t>(count), channels = static_cast<std::size_t>(plain.channels);
      // beta about N(0, 2) and gamma about 2: every piece of the hard swish, the kinks' outsides included.
      std::vector<float> x = floats_around(count, 51, c.offset), gy = floats_around(count, 52);
      std::vector<float> gamma = floats_around(plain.channels, 53, 2.0f),
                         beta = floats_around(plain.channels, 54);
      for (float& b : beta) b *= 2.0f;
      const std::vector<float> running_mean = floats_around(plain.channels, 55, c.offset),
                               running_var = floats_around(plain.channels, 56, 2.0f);
      for (const bool training : {true, false}) {
        INFO((training ? "train" : "eval"));
        // Batch norm with geometry g: y, then gx, ggamma, gbeta from gradient `from`.
        struct Run {
          std::vector<float> y, gx, ggamma, gbeta;
        };
        const auto run = [&](const BatchNorm2dGeometry& g, const std::vector<float>& from, Run& r) {
          std::vector<float> mean(channels), invstd(channels);
          r.gx.assign(n, 0.0f);
          r.ggamma.assign(channels, 0.0f);
          r.gbeta.assign(channels, 0.0f);
          if (training) {
            r.y.assign(n, 0.0f);
            kk::batchnorm2d_forward_train(Device::cpu(), g, x.data(), gamma.data(), beta.data(), 1e-5f, 0.1f,
                                          nullptr, nullptr, r.y.data(), mean.data(), invstd.data());
            if (from.empty()) return;
            kk::batchnorm2d_backward_train(Device::cpu(), g, x.data(), from.data(), r.y.data(), gamma.data(),
                                           beta.data(), mean.data(), invstd.data(), r.gx.data(),
                                           r.ggamma.data(), r.gbeta.data());
          } else {
            r.y.assign(n, 0.0f);
            kk::batchnorm2d_forward_eval(Device::cpu(), g, x.data(), gamma.data(), beta.data(),
                                         running_mean.data(), running_var.data(), 1e-5f, r.y.data());
            if (from.empty()) return;
            kk::batchnorm2d_backward_eval(Device::cpu(), g, x.data(), from.data(), r.y.data(), gamma.data(),
                                          beta.data(), running_mean.data(), running_var.data(), 1e-5f,
                                          r.gx.data(), r.ggamma.data(), r.gbeta.data());
          }
        };
        Run one, two, separate;
        kk::set_compute_threads(1);
        run(fused, gy, one);
        kk::set_compute_threads(2);
        run(fused, gy, two);
        CHECK(one.y == two.y);
        CHECK(one.gx == two.gx);
        CHECK(one.ggamma == two.ggamma);
        // The separate ops: batch norm's output v, its hard swish, the hard swish's backward, batch norm's.
        run(plain, {}, separate);
        const std::vector<float> v = separate.y;
        std::vector<float> y(n), through(n);
        kk::unary_forward(Device::cpu(), kk::UnaryOp::Hardswish, {}, count, v.data(), y.data());
        kk::unary_backward(Device::cpu(), kk::UnaryOp::Hardswish, {}, count, v.data(), y.data(), gy.data(),
                           through.data());
        run(plain, through, separate);
        CHECK(one.y == y);
        check_close(one.gx, separate.gx, kElementwise, "gx");
        check_close(one.ggamma, separate.ggamma, kSums, "ggamma");
        check_close(one.gbeta, separate.gbeta, kSums, "gbeta");
        below += std::count_if(v.begin(), v.end(), [](float value) { return value <= -3.0f; });
        above += std::count_if(v.begin(), v.end(), [](float value) { return value >= 3.0f; });
      }
    }
  }
  if (!levels.empty()) {  // (none under KILN_CPU_LEVEL=reference)
    CHECK(below > 0);     // every piece of the hard swish was reached: below -3, the middle, above 3
    CHECK(above > 0);
  }
}

// The channels-last reference visits every channel's values in the NCHW reference's order, so it gives
// the same bits, moved.
TEST_CASE("batchnorm reference: channels-last gives the NCHW bits, moved") {
  for (const Case& c : odd_cases()) {
    if (c.g.channels_last) continue;
    Case last = c;
    last.g.channels_last = true;
    const auto move = [&](const std::vector<float>& nchw) {
      const std::int64_t plane = c.g.height * c.g.width;
      std::vector<float> nhwc(nchw.size());
      for (std::int64_t n = 0; n < c.g.batch; ++n)
        for (std::int64_t ch = 0; ch < c.g.channels; ++ch)
          for (std::int64_t i = 0; i < plane; ++i)
            nhwc[static_cast<std::size_t>((n * plane + i) * c.g.channels + ch)] =
                nchw[static_cast<std::size_t>((n * c.g.channels + ch) * plane + i)];
      return nhwc;
    };
    INFO("[", c.g.batch, ",", c.g.channels, ",", c.g.height, ",", c.g.width, "]", relu_label(c.g));
    const auto x = floats_around(numel(c.g), 1, c.offset), gy = floats_around(numel(c.g), 2);
    const auto gamma = floats_around(c.g.channels, 3, 1.0f), beta = floats_around(c.g.channels, 4);
    const auto channels = static_cast<std::size_t>(c.g.channels);
    // The reference's train forward and backward of geometry `g`, on x and gy as laid out for it.
    const auto reference_train = [&](const BatchNorm2dGeometry& g, const std::vector<float>& x_in,
                                     const std::vector<float>& gy_in) {
      TrainOutputs o{std::vector<float>(x.size()),       std::vector<float>(channels),
                     std::vector<float>(channels),       std::vector<float>(channels, 0.5f),
                     std::vector<float>(channels, 2.0f), std::vector<float>(x.size()),
                     std::vector<float>(channels),       std::vector<float>(channels)};
      kk::reference::batchnorm2d_forward_train(g, x_in.data(), gamma.data(), beta.data(), 1e-5f, 0.1f,
                                               o.running_mean.data(), o.running_var.data(), o.y.data(),
                                               o.save_mean.data(), o.save_invstd.data());
      kk::reference::batchnorm2d_backward_train(g, x_in.data(), gy_in.data(), o.y.data(), gamma.data(),
                                                beta.data(), o.save_mean.data(), o.save_invstd.data(),
                                                o.gx.data(), o.ggamma.data(), o.gbeta.data());
      return o;
    };
    const TrainOutputs expected = reference_train(c.g, x, gy);
    const auto [y, mean, invstd, rm, rv, gx, ggamma, gbeta] = reference_train(last.g, move(x), move(gy));
    CHECK(y == move(expected.y));
    CHECK(mean == expected.save_mean);
    CHECK(invstd == expected.save_invstd);
    CHECK(rm == expected.running_mean);
    CHECK(rv == expected.running_var);
    CHECK(gx == move(expected.gx));
    CHECK(ggamma == expected.ggamma);
    CHECK(gbeta == expected.gbeta);
  }
}

}  // namespace kernels_batchnorm_fast_test
