// Tests of GEMM in bfloat16 (kernels/gemm/gemm.hpp) on the CPU:
//   - the bfloat16 reference against the double reference and the float reference run on the same values
//     (bfloat16 inputs, exact in every wider type): equal to the double one rounded to bfloat16 (both sum in
//     double and round once), within 1 bfloat16 ulp of the float one rounded to bfloat16 (a second rounding);
//   - dispatch (A and B widened to float, the fast float GEMM, C rounded once) against the bfloat16
//     reference at every fast CPU level, the same bits on 1 and 2 threads, and exactly the reference at the
//     Reference level;
//   - raw::matmul on bfloat16 tensors against raw::matmul in float on the same values.
// Odd sizes, every transpose, leading dimensions wider than a row, alpha / beta, beta == 0 over NaN, k == 0.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "core/bfloat16.hpp"
#include "core/raw.hpp"
#include "core/tensor.hpp"
#include "kernels/cpu_level.hpp"
#include "kernels/gemm/gemm.hpp"
#include "kernels/parallel.hpp"
#include "tests/support/bfloat16_testing.hpp"
#include "tests/support/fast_kernel_testing.hpp"
#include "tests/support/gemm_testing.hpp"
#include "tests/support/matches_reference.hpp"

namespace kernels_gemm_bf16_test {

namespace {

using namespace kiln;
using kernels::GemmGeometry;
using testing::a_elements;
using testing::b_elements;
using testing::bfloat16_difference;
using testing::c_elements;
using testing::converted;
using testing::is_nan;
using testing::matches_reference;
using testing::padded_gemm_geometry;
using testing::random_values;
using testing::Tolerance;

// ---- bfloat16 helpers ----------------------------------------------------------------------------------

// Dispatch against the bfloat16 reference: the fast float GEMM sums K products in float, in its own order
// (about 2^-24 of a partial sum per addition: 4e-7 * K allows ten times that), then rounds once to bfloat16,
// which may land one bfloat16 step (at most 2^-7 of the value) from the reference's rounding of the exact
// sum.
Tolerance dispatch_tolerance(std::int64_t k) {
  return {std::max(1e-5, 4e-7 * static_cast<double>(k)), 1.0 / 128};
}

// ---- geometries and operands ---------------------------------------------------------------------------

std::string describe(const GemmGeometry& g) {
  return "m=" + std::to_string(g.m) + " n=" + std::to_string(g.n) + " k=" + std::to_string(g.k) +
         (g.trans_a ? " A^T" : "") + (g.trans_b ? " B^T" : "") + " lda=" + std::to_string(g.lda) +
         " ldb=" + std::to_string(g.ldb) + " ldc=" + std::to_string(g.ldc);
}

struct Case {
  GemmGeometry g;
  float alpha, beta;
  bool c_nan;  // C all NaN (with beta == 0, which must not read it)
};

struct Operands {
  std::vector<bfloat16> a, b, c;
};

Operands operands(const Case& c, unsigned seed) {
  Operands in{random_values<bfloat16>(a_elements(c.g), seed),
              random_values<bfloat16>(b_elements(c.g), seed + 1),
              random_values<bfloat16>(c_elements(c.g), seed + 2)};
  if (c.c_nan) in.c.assign(in.c.size(), bfloat16(std::numeric_limits<float>::quiet_NaN()));
  return in;
}

std::vector<bfloat16> bf16_reference(const Case& c, const Operands& in) {
  std::vector<bfloat16> out = in.c;
  kernels::reference::gemm(c.g, c.alpha, in.a.data(), in.b.data(), c.beta, out.data());
  return out;
}

std::vector<bfloat16> bf16_dispatch(const Case& c, const Operands& in) {
  std::vector<bfloat16> out = in.c;
  kernels::gemm(Device::cpu(), c.g, c.alpha, in.a.data(), in.b.data(), c.beta, out.data());
  return out;
}

// The reference in Wide (float or double) on the widened operands, rounded to bfloat16.
template <typename Wide>
std::vector<bfloat16> wide_reference(const Case& c, const Operands& in) {
  const std::vector<Wide> a = converted<Wide>(in.a), b = converted<Wide>(in.b);
  std::vector<Wide> out = converted<Wide>(in.c);
  kernels::reference::gemm<Wide>(c.g, c.alpha, a.data(), b.data(), c.beta, out.data());
  return converted<bfloat16>(out);
}

std::vector<Case> odd_cases() {
  const std::int64_t sizes[][3] = {{1, 1, 1},   {7, 33, 129}, {129, 7, 33}, {33, 129, 1},
                                   {1, 129, 7}, {7, 1, 33},   {65, 67, 71}, {7, 33, 0}};
  std::vector<Case> cases;
  for (const auto& size : sizes) {
    for (const bool trans_a : {false, true}) {
      for (const bool trans_b : {false, true}) {
        for (const std::int64_t extra : {0, 3}) {
          const GemmGeometry g = padded_gemm_geometry(size[0], size[1], size[2], trans_a, trans_b, extra);
          cases.push_back({g, 1.0f, 0.0f, false});
          cases.push_back({g, 0.5f, -2.0f, false});
          cases.push_back({g, -1.5f, 1.0f, false});
          cases.push_back({g, 2.0f, 0.0f, true});
        }
      }
    }
  }
  return cases;
}

// ---- the tests -----------------------------------------------------------------------------------------

TEST_CASE("gemm bfloat16: the reference equals the double reference rounded once, within 1 ulp of float's") {
  unsigned seed = 1;
  for (const Case& c : odd_cases()) {
    INFO(describe(c.g), " alpha=", c.alpha, " beta=", c.beta, c.c_nan ? " C=NaN" : "");
    const Operands in = operands(c, seed += 3);
    const std::vector<bfloat16> actual = bf16_reference(c, in);
    CHECK(testing::bitwise_equal(actual, wide_reference<double>(c, in)));
    const std::string mismatch = bfloat16_difference(actual, wide_reference<float>(c, in), 1);
    CHECK_MESSAGE(mismatch.empty(), mismatch);
  }
}

TEST_CASE("gemm bfloat16: dispatch through the fast float GEMM matches the bfloat16 reference") {
  testing::at_each_fast_level([&] {
    unsigned seed = 1;
    for (const Case& c : odd_cases()) {
      INFO(describe(c.g), " alpha=", c.alpha, " beta=", c.beta, c.c_nan ? " C=NaN" : "");
      const Operands in = operands(c, seed += 3);
      const std::vector<bfloat16> expected = bf16_reference(c, in);
      kernels::set_compute_threads(1);
      const std::vector<bfloat16> one_thread = bf16_dispatch(c, in);
      kernels::set_compute_threads(2);
      const std::vector<bfloat16> two_threads = bf16_dispatch(c, in);
      CHECK_MESSAGE(testing::bitwise_equal(one_thread, two_threads), "1 and 2 threads differ");
      // The whole C buffer: the gaps between rows (ldc > n) must come back as they went in.
      const auto report =
          matches_reference(one_thread.data(), expected.data(), static_cast<std::int64_t>(expected.size()),
                            dispatch_tolerance(c.g.k));
      CHECK_MESSAGE(report.ok, report.message);
    }
  });
}

TEST_CASE("gemm bfloat16: the Reference CPU level runs the bfloat16 reference exactly") {
  testing::DispatchGuard guard;
  kernels::set_cpu_level(kernels::CpuLevel::Reference);
  unsigned seed = 500;
  for (const Case& c : odd_cases()) {
    INFO(describe(c.g), " alpha=", c.alpha, " beta=", c.beta);
    const Operands in = operands(c, seed += 3);
    CHECK(testing::bitwise_equal(bf16_dispatch(c, in), bf16_reference(c, in)));
  }
}

TEST_CASE("gemm bfloat16: dispatch propagates NaN and infinity where the reference does") {
  const Case c{padded_gemm_geometry(7, 9, 33, false, true, 2), 1.0f, 1.0f, false};
  Operands in = operands(c, 71);
  in.a[3] = bfloat16(std::numeric_limits<float>::quiet_NaN());  // row 0 of C
  in.b[static_cast<std::size_t>(2 * c.g.ldb + 5)] =
      bfloat16(std::numeric_limits<float>::infinity());  // column 2
  in.c[static_cast<std::size_t>(4 * c.g.ldc + 6)] = bfloat16(-std::numeric_limits<float>::infinity());
  const std::vector<bfloat16> expected = bf16_reference(c, in);
  const auto count_nan = [](const std::vector<bfloat16>& v) {
    return std::count_if(v.begin(), v.end(), is_nan);
  };
  REQUIRE(count_nan(expected) > 0);  // the test means something only if NaN reached some outputs
  testing::at_each_fast_level([&] {
    const std::vector<bfloat16> actual = bf16_dispatch(c, in);
    const auto report =
        matches_reference(actual.data(), expected.data(), static_cast<std::int64_t>(expected.size()),
                          dispatch_tolerance(c.g.k));
    CHECK_MESSAGE(report.ok, report.message);
  });
}

// raw::matmul on bfloat16 tensors against raw::matmul in float on the same values: a broadcast batch
// [2, 33, 17] @ [17, 9], A as a transposed view (handed to GEMM as trans_a, no copy), a non-contiguous view
// (made dense first), and vector @ matrix.
TEST_CASE("gemm bfloat16: raw::matmul on bfloat16 tensors matches float") {
  const auto pair = [](const Shape& shape, unsigned seed) {
    const std::vector<bfloat16> values = random_values<bfloat16>(shape.numel(), seed);
    return std::pair{Tensor::from_vector(values, shape),
                     Tensor::from_vector(converted<float>(values), shape)};
  };
  const auto check = [](const Tensor& bf16_result, const Tensor& float_result, std::int64_t k) {
    CHECK(bf16_result.dtype() == DType::BFloat16);
    const auto report = matches_reference(bf16_result, float_result, dispatch_tolerance(k));
    CHECK_MESSAGE(report.ok, report.message);
  };
  const auto [a, a_float] = pair(Shape{2, 33, 17}, 51);
  const auto [b, b_float] = pair(Shape{17, 9}, 52);
  check(raw::matmul(a, b), raw::matmul(a_float, b_float), 17);

  const auto [stored_transposed, stored_transposed_float] = pair(Shape{17, 33}, 53);
  check(raw::matmul(stored_transposed.transpose(0, 1), b),
        raw::matmul(stored_transposed_float.transpose(0, 1), b_float), 17);

  const auto [wide, wide_float] = pair(Shape{5, 17, 18}, 54);  // [5, 17, 9] every other column: strided
  const Tensor every_other = wide.slice(2, 0, 18, 2), every_other_float = wide_float.slice(2, 0, 18, 2);
  check(raw::matmul(a.slice(0, 1, 2), every_other), raw::matmul(a_float.slice(0, 1, 2), every_other_float),
        17);

  const auto [v, v_float] = pair(Shape{17}, 55);
  check(raw::matmul(v, b), raw::matmul(v_float, b_float), 17);
}

}  // namespace

}  // namespace kernels_gemm_bf16_test
