// The GEMM ladder's test cases and their check, shared by the GPU tests (tests/cuda/gemm_ladder_test.cpp)
// and the CPU emulation of the same kernels (tests/emulation/ladder_emulation_test.cpp): they differ only in
// the runner that puts the operands where the step reads them and launches it.
#pragma once

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include "kernels/gemm/gemm.hpp"
#include "kernels/gemm/ladder/ladder.hpp"
#include "kernels/ladder/hopper.hpp"
#include "tests/support/ladder_testing.hpp"

namespace kiln::testing {

// Odd sizes (1, primes, one past a tile) for the steps that take any shape, and sizes whose K and N are
// multiples of 8 but whose M, N, K are not multiples of any tile, for the vector steps; a few exact tiles;
// alpha and beta other than 1 and 0 (beta != 0 reads C).
inline std::vector<kernels::gemm_ladder::Problem> gemm_ladder_problems() {
  return {
      {1, 1, 1},
      {7, 13, 5},
      {33, 17, 65},
      {127, 129, 31},
      {1, 8, 8},
      {9, 12, 20},
      {64, 64, 64},
      {128, 128, 128},
      {200, 136, 264},
      {257, 72, 96},
      {3, 520, 40},
      {515, 8, 24},
      {256, 256, 512},
      {130, 260, 36},
      {96, 40, 16, 1.5f, -0.5f},
      {67, 24, 48, -2.0f, 0.25f},
      {5, 7, 3, 0.5f, 1.0f},
  };
}

inline std::string describe(const kernels::gemm_ladder::Step& step, const kernels::gemm_ladder::Problem& p) {
  return std::string(step.name) + " M=" + std::to_string(p.m) + " N=" + std::to_string(p.n) +
         " K=" + std::to_string(p.k) + " alpha=" + std::to_string(p.alpha) +
         " beta=" + std::to_string(p.beta);
}

// Runs `step` on `problem`: A and B as floats (exactly bfloat16 values for a bf16 step, which the runner
// hands over as bfloat16), C's contents before the run (NaN when beta == 0: it must not be read). Returns C.
using GemmLadderRunner = std::function<std::vector<float>(
    const kernels::gemm_ladder::Step& step, const kernels::gemm_ladder::Problem& problem,
    const std::vector<float>& a, const std::vector<float>& b, const std::vector<float>& c)>;

// reference::gemm in blocks of C's rows, one thread each: the same loops, so the same bits, on every core.
// The GPU tests' large problems spent 64 s of one core in the reference on the H200's host, device time
// that a lent GPU's session pays for. A is not transposed (rows of op(A) are rows of A).
inline void reference_gemm_by_row_blocks(const kernels::GemmGeometry& g, double alpha, const double* a,
                                         const double* b, double beta, double* c) {
  REQUIRE(!g.trans_a);
  const std::int64_t threads = std::clamp<std::int64_t>(std::thread::hardware_concurrency(), 1, 64);
  const std::int64_t rows_per_block = std::max<std::int64_t>((g.m + threads - 1) / threads, 1);
  std::vector<std::thread> workers;
  for (std::int64_t row0 = 0; row0 < g.m; row0 += rows_per_block) {
    kernels::GemmGeometry block = g;
    block.m = std::min(rows_per_block, g.m - row0);
    workers.emplace_back(
        [=] { kernels::reference::gemm<double>(block, alpha, a + row0 * g.lda, b, beta, c + row0 * g.ldc); });
  }
  for (std::thread& worker : workers) worker.join();
}

// Runs `step` on `problem` with fresh operands drawn from `seed` and checks C against the reference.
inline void check_gemm_ladder_step(const kernels::gemm_ladder::Step& step,
                                   const kernels::gemm_ladder::Problem& p, std::uint64_t seed,
                                   const GemmLadderRunner& run) {
  INFO(describe(step, p));
  const std::vector<float> a = ladder_operands(step.precision, std::int64_t{p.m} * p.k, seed);
  const std::vector<float> b = ladder_operands(step.precision, std::int64_t{p.k} * p.n, seed + 1);
  const std::vector<float> c0 =
      p.beta == 0.0f ? std::vector<float>(std::size_t(p.m) * p.n, std::numeric_limits<float>::quiet_NaN())
                     : random_floats(std::int64_t{p.m} * p.n, seed + 2);
  const std::vector<float> c = run(step, p, a, b, c0);

  const kernels::GemmGeometry g{.m = p.m, .n = p.n, .k = p.k, .lda = p.k, .ldb = p.n, .ldc = p.n};
  std::vector<double> expected = widened(c0), magnitude = absolute(widened(c0));
  reference_gemm_by_row_blocks(g, p.alpha, widened(a).data(), widened(b).data(), p.beta, expected.data());
  reference_gemm_by_row_blocks(g, std::abs(p.alpha), absolute(widened(a)).data(), absolute(widened(b)).data(),
                               std::abs(p.beta), magnitude.data());
  const LadderReport report = within_ladder_bound(c, expected, magnitude, ladder_bound(step.precision, p.k));
  CHECK_MESSAGE(report.ok, report.message);
}

// Every step on every problem it supports; each must meet at least `minimum_cases` (odd edges, not only the
// easy shapes).
inline void check_every_gemm_ladder_step(const std::vector<kernels::gemm_ladder::Problem>& problems,
                                         std::uint64_t seed, int minimum_cases, const GemmLadderRunner& run) {
  for (const kernels::gemm_ladder::Step& step : kernels::gemm_ladder::steps()) {
    if (step.needs_wgmma && !kernels::ladder::wgmma_available()) {
      MESSAGE(std::string(step.name), ": not run (a Hopper step; this build or GPU has no wgmma)");
      continue;
    }
    int checked = 0;
    for (const kernels::gemm_ladder::Problem& problem : problems) {
      if (!kernels::gemm_ladder::supports(step, problem)) continue;
      check_gemm_ladder_step(step, problem, seed += 3, run);
      ++checked;
    }
    INFO(step.name);
    CHECK(checked >= minimum_cases);
  }
}

}  // namespace kiln::testing
