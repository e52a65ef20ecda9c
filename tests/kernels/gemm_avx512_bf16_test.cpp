// Tests of the AVX512-BF16 GEMM (kernels/gemm/avx512_bf16.cpp), where the CPU has the instruction (a
// message says so where it has not): C in float and in bfloat16, with and without a bias per column, against
// the double reference on the same values, over odd sizes (partial tiles and slivers, an odd depth, whose
// last pair is completed with a zero), every transpose (both ways of packing pairs), leading dimensions
// wider than a row, depths of several KC blocks (bfloat16 C then goes through float sums), beta == 0 over
// NaN; the same bits on 1 and 2 threads; and bfloat16 dispatch running it, not the float kernel.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "core/bfloat16.hpp"
#include "kernels/cpu_level.hpp"
#include "kernels/gemm/gemm.hpp"
#include "kernels/parallel.hpp"
#include "tests/support/fast_kernel_testing.hpp"
#include "tests/support/gemm_testing.hpp"
#include "tests/support/matches_reference.hpp"

namespace kernels_gemm_avx512_bf16_test {

namespace {

using namespace kiln;
using kernels::GemmGeometry;
using testing::a_elements;
using testing::b_elements;
using testing::c_elements;
using testing::matches_reference;
using testing::padded_gemm_geometry;
using testing::random_values;
using testing::Tolerance;

struct Case {
  GemmGeometry g;
  float alpha, beta;
  bool bias;
};

std::string describe(const Case& c) {
  return "m=" + std::to_string(c.g.m) + " n=" + std::to_string(c.g.n) + " k=" + std::to_string(c.g.k) +
         (c.g.trans_a ? " A^T" : "") + (c.g.trans_b ? " B^T" : "") + " lda=" + std::to_string(c.g.lda) +
         " alpha=" + std::to_string(c.alpha) + " beta=" + std::to_string(c.beta) + (c.bias ? " bias" : "");
}

std::vector<Case> cases() {
  // Partial tiles (m % 8, n % 32), one line, odd depths, a depth of exactly one KC block (1024), and of
  // several (2100: two whole blocks and a part).
  const std::int64_t sizes[][3] = {{1, 1, 1},      {9, 33, 17},    {67, 65, 71},   {8, 32, 16},
                                   {17, 97, 1024}, {40, 70, 1025}, {33, 40, 2100}, {3, 5, 0}};
  std::vector<Case> all;
  for (const auto& size : sizes) {
    for (const bool trans_a : {false, true}) {
      for (const bool trans_b : {false, true}) {
        const GemmGeometry g =
            padded_gemm_geometry(size[0], size[1], size[2], trans_a, trans_b, (size[0] + size[1]) % 3);
        all.push_back({g, 1.0f, 0.0f, false});
        all.push_back({g, -0.5f, 2.0f, false});
        all.push_back({g, 1.5f, 0.0f, true});
        all.push_back({g, 1.0f, 1.0f, true});
      }
    }
  }
  return all;
}

struct Operands {
  std::vector<bfloat16> a, b;
  std::vector<float> c, bias;
};

Operands operands(const Case& c, std::uint64_t seed) {
  Operands in{random_values<bfloat16>(a_elements(c.g), seed),
              random_values<bfloat16>(b_elements(c.g), seed + 1),
              random_values<float>(c_elements(c.g), seed + 2), random_values<float>(c.g.n, seed + 3)};
  // C's starting values are bfloat16 values, so a bfloat16 C holds them exactly; beta == 0 gets NaN there.
  for (float& value : in.c)
    value = c.beta == 0.0f ? std::numeric_limits<float>::quiet_NaN() : float(bfloat16(value));
  return in;
}

// alpha op(A) op(B) + beta C + bias, summed in double from the exact values.
std::vector<double> expected(const Case& c, const Operands& in) {
  const GemmGeometry& g = c.g;
  std::vector<double> out(in.c.begin(), in.c.end());
  for (std::int64_t i = 0; i < g.m; ++i) {
    for (std::int64_t j = 0; j < g.n; ++j) {
      double sum = 0.0;
      for (std::int64_t p = 0; p < g.k; ++p) {
        sum += static_cast<double>(static_cast<float>(in.a[static_cast<std::size_t>(g.a_offset(i, p))])) *
               static_cast<float>(in.b[static_cast<std::size_t>(g.b_offset(p, j))]);
      }
      double& c_ij = out[static_cast<std::size_t>(i * g.ldc + j)];
      c_ij = c.alpha * sum + (c.beta == 0.0f ? 0.0 : c.beta * c_ij) +
             (c.bias ? in.bias[static_cast<std::size_t>(j)] : 0.0);
    }
  }
  return out;
}

// Float sums of K exact products, in the kernel's order: about 2^-24 of a partial sum per addition (4e-7 * K
// allows ten times that); a bfloat16 C adds its one rounding, 2^-9 of the value.
Tolerance tolerance(std::int64_t k, bool bfloat16_output) {
  return {std::max(1e-5, 4e-7 * static_cast<double>(k)), bfloat16_output ? 1.0 / 256 : 1e-5};
}

std::vector<float> run_float(const Case& c, const Operands& in) {
  std::vector<float> out = in.c;
  kernels::avx512_bf16::gemm(c.g, c.alpha, in.a.data(), in.b.data(), c.beta, out.data());
  return out;
}
std::vector<bfloat16> run_bfloat16(const Case& c, const Operands& in) {
  std::vector<bfloat16> out(in.c.size());
  for (std::size_t i = 0; i < out.size(); ++i) out[i] = bfloat16(in.c[i]);
  kernels::avx512_bf16::gemm(c.g, c.alpha, in.a.data(), in.b.data(), c.beta, out.data(),
                             c.bias ? in.bias.data() : nullptr);
  return out;
}

template <typename T>
void check_matches(const std::vector<T>& actual, const std::vector<double>& reference, const Case& c,
                   bool bfloat16_output) {
  std::vector<double> values(actual.size());
  for (std::size_t i = 0; i < actual.size(); ++i)
    values[i] = static_cast<double>(static_cast<float>(actual[i]));
  const auto report =
      matches_reference(values.data(), reference.data(), static_cast<std::int64_t>(values.size()),
                        tolerance(c.g.k, bfloat16_output));
  CHECK_MESSAGE(report.ok, report.message);
}

TEST_CASE("gemm avx512_bf16: C in float and in bfloat16, with a bias, matches the double reference") {
  if (!kernels::avx512_bf16_usable()) {
    MESSAGE("skipping: this CPU has no AVX512-BF16 (or KILN_AVX512_BF16=0)");
    return;
  }
  const testing::DispatchGuard guard;
  std::uint64_t seed = 1;
  for (const Case& c : cases()) {
    INFO(describe(c));
    const Operands in = operands(c, seed += 4);
    const std::vector<double> reference = expected(c, in);
    kernels::set_compute_threads(1);
    const std::vector<float> float_one = c.bias ? std::vector<float>{} : run_float(c, in);
    const std::vector<bfloat16> bf16_one = run_bfloat16(c, in);
    kernels::set_compute_threads(2);
    if (!c.bias) {
      const std::vector<float> float_two = run_float(c, in);
      CHECK_MESSAGE(testing::bitwise_equal(float_one, float_two), "float C: 1 and 2 threads differ");
      check_matches(float_one, reference, c, false);
    }
    CHECK_MESSAGE(testing::bitwise_equal(bf16_one, run_bfloat16(c, in)),
                  "bfloat16 C: 1 and 2 threads differ");
    check_matches(bf16_one, reference, c, true);
  }
}

TEST_CASE("gemm avx512_bf16: bfloat16 dispatch runs it where the CPU has it") {
  if (!kernels::avx512_bf16_usable()) {
    MESSAGE("skipping: this CPU has no AVX512-BF16 (or KILN_AVX512_BF16=0)");
    return;
  }
  // Large enough that the two orders of float additions round some of the 40,000 outputs to different
  // bfloat16 values (rounding to 8 bits hides most of the float differences).
  const Case c{
      {.m = 200, .n = 200, .k = 500, .trans_a = false, .trans_b = true, .lda = 500, .ldb = 500, .ldc = 200},
      1.0f,
      0.0f,
      false};
  const Operands in = operands(c, 99);
  std::vector<bfloat16> dispatched(in.c.size());
  kernels::gemm(Device::cpu(), c.g, 1.0f, in.a.data(), in.b.data(), 0.0f, dispatched.data());
  CHECK(testing::bitwise_equal(dispatched, run_bfloat16(c, in)));
  // Which the float kernel on widened operands would not give: its sums round in another order.
  const std::vector<float> a(in.a.begin(), in.a.end()), b(in.b.begin(), in.b.end());
  std::vector<float> sums(in.c.size());
  kernels::avx512::gemm(c.g, 1.0f, a.data(), b.data(), 0.0f, sums.data());
  const std::vector<bfloat16> widened(sums.begin(), sums.end());
  CHECK_FALSE(testing::bitwise_equal(dispatched, widened));
}

}  // namespace

}  // namespace kernels_gemm_avx512_bf16_test
