// Tests of the vectorized optimizer updates (kernels/optim_update/avx512.cpp, avx2.cpp): at every dispatch
// level this CPU has, SGD (plain, momentum first and later steps, dampening, nesterov, weight decay), Adam
// and AdamW and the moving average over lengths around the vector widths and past the threading threshold,
// with 1 and 2 threads.
//
// Tolerance: atol 1e-9 + rtol 1e-6 (about 8 float ulps). The fast updates compute in double in the
// reference's order and round once; only the compiler's fused multiply-adds (a double rounding less) can
// move a stored float, by one ulp. 1 and 2 threads must agree bitwise.
#include <doctest/doctest.h>

#include <cstdint>
#include <vector>

#include "kernels/cpu_level.hpp"
#include "kernels/optim_update/optim_update.hpp"
#include "kernels/parallel.hpp"
#include "tests/support/fast_kernel_testing.hpp"
#include "tests/support/matches_reference.hpp"

namespace kernels_optim_update_fast_test {

namespace {

using kiln::Device;
using kiln::kernels::AdamHyper;
using kiln::kernels::CpuLevel;
using kiln::kernels::SgdHyper;
using kiln::testing::bitwise_equal;
using kiln::testing::DispatchGuard;
using kiln::testing::fast_levels;
using kiln::testing::random_floats;
namespace kk = kiln::kernels;

const std::vector<std::int64_t> kLengths{1, 3, 8, 17, 1000, 40001};

constexpr kiln::testing::Tolerance kUpdate{1e-9, 1e-6};

void check_close(const std::vector<float>& actual, const std::vector<float>& expected, const char* what) {
  const auto report = kiln::testing::matches_reference(actual.data(), expected.data(),
                                                       static_cast<std::int64_t>(actual.size()), kUpdate);
  CHECK_MESSAGE(report.ok, what, ": ", report.message);
}

// param, buffers after one update, by the reference or through the dispatcher.
struct State {
  std::vector<float> param, first, second;
};

State sgd(std::int64_t n, const SgdHyper& h, bool use_reference) {
  State s{random_floats(n, 1, -1, 1), random_floats(n, 2, -1, 1), {}};
  const std::vector<float> grad = random_floats(n, 3, -1, 1);
  float* buffer = h.momentum != 0.0 ? s.first.data() : nullptr;
  if (use_reference)
    kk::reference::sgd_update(n, s.param.data(), grad.data(), buffer, h);
  else
    kk::sgd_update(Device::cpu(), n, s.param.data(), grad.data(), buffer, h);
  return s;
}

State adam(std::int64_t n, const AdamHyper& h, bool use_reference) {
  State s{random_floats(n, 4, -1, 1), random_floats(n, 5, -0.1f, 0.1f), random_floats(n, 6, 0.0f, 0.01f)};
  const std::vector<float> grad = random_floats(n, 7, -1, 1);
  if (use_reference)
    kk::reference::adam_update(n, s.param.data(), grad.data(), s.first.data(), s.second.data(), h);
  else
    kk::adam_update(Device::cpu(), n, s.param.data(), grad.data(), s.first.data(), s.second.data(), h);
  return s;
}

// The average after one step towards a weight, in `first`.
State average(std::int64_t n, double decay, bool use_reference) {
  State s{{}, random_floats(n, 8, -1, 1), {}};
  const std::vector<float> weight = random_floats(n, 9, -1, 1);
  if (use_reference)
    kk::reference::average_update(n, s.first.data(), weight.data(), decay);
  else
    kk::average_update(Device::cpu(), n, s.first.data(), weight.data(), decay);
  return s;
}

template <class Run>
void check_fast_matches_reference(Run run) {
  for (const CpuLevel level : fast_levels()) {
    kk::set_cpu_level(level);
    for (const std::int64_t n : kLengths) {
      INFO(kk::cpu_level_name(level), " n ", n);
      const State expected = run(n, true);
      kk::set_compute_threads(1);
      const State one = run(n, false);
      kk::set_compute_threads(2);
      const State two = run(n, false);
      check_close(one.param, expected.param, "param");
      check_close(one.first, expected.first, "momentum_buffer / exp_avg");
      check_close(one.second, expected.second, "exp_avg_sq");
      CHECK(bitwise_equal(one.param, two.param));
      CHECK(bitwise_equal(one.first, two.first));
      CHECK(bitwise_equal(one.second, two.second));
    }
  }
}

}  // namespace

TEST_CASE("optim_update fast: SGD variants match the reference at every level, 1 and 2 threads") {
  DispatchGuard guard;
  const std::vector<SgdHyper> variants{
      {.lr = 0.1},
      {.lr = 0.1, .momentum = 0.9, .first_step = true},
      {.lr = 0.1, .momentum = 0.9, .dampening = 0.1, .weight_decay = 5e-4},
      {.lr = 0.05, .momentum = 0.9, .weight_decay = 1e-4, .nesterov = true},
  };
  for (const SgdHyper& h : variants) {
    INFO("momentum ", h.momentum, " dampening ", h.dampening, " nesterov ", h.nesterov, " first ",
         h.first_step);
    check_fast_matches_reference(
        [&](std::int64_t n, bool use_reference) { return sgd(n, h, use_reference); });
  }
}

TEST_CASE("optim_update fast: Adam and AdamW match the reference at every level, 1 and 2 threads") {
  DispatchGuard guard;
  const std::vector<AdamHyper> variants{
      {.lr = 1e-3, .step = 1},
      {.lr = 1e-3, .weight_decay = 1e-2, .step = 7},
      {.lr = 1e-3, .weight_decay = 1e-2, .decoupled_weight_decay = true, .step = 100},
  };
  for (const AdamHyper& h : variants) {
    INFO("weight_decay ", h.weight_decay, " decoupled ", h.decoupled_weight_decay, " step ", h.step);
    check_fast_matches_reference(
        [&](std::int64_t n, bool use_reference) { return adam(n, h, use_reference); });
  }
}

TEST_CASE("optim_update fast: the moving average matches the reference at every level, 1 and 2 threads") {
  DispatchGuard guard;
  for (const double decay : {0.0, 0.5, 0.999, 1.0}) {
    INFO("decay ", decay);
    check_fast_matches_reference(
        [&](std::int64_t n, bool use_reference) { return average(n, decay, use_reference); });
  }
}

}  // namespace kernels_optim_update_fast_test
