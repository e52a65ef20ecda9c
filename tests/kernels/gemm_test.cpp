// Tests for GEMM (kernels/gemm/gemm.hpp): a hand-worked 2x3 * 3x2 under all four trans combinations,
// alpha and beta, beta = 0 over a NaN-filled C, and random odd shapes with padded leading dimensions
// against a naive triple loop written here.
#include "kernels/gemm/gemm.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include "core/error.hpp"

namespace kernels_gemm_test {

namespace {

using kiln::Device;
using kiln::kernels::GemmGeometry;
namespace kernels = kiln::kernels;

constexpr Device kCpu = Device::cpu();
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

template <typename T, typename From>
std::vector<T> as(const std::vector<From>& values) {
  return std::vector<T>(values.begin(), values.end());
}

// The hand-worked product used below:
//   A [2, 3] = [[1, 2, 3],     B [3, 2] = [[ 7,  8],     A B = [[1*7 + 2*9 + 3*11, 1*8 + 2*10 + 3*12],
//               [4, 5, 6]]                 [ 9, 10],            [4*7 + 5*9 + 6*11, 4*8 + 5*10 + 6*12]]
//                                          [11, 12]]          = [[58, 64], [139, 154]]
// Stored transposed (for trans_a / trans_b), A^T is [3, 2] and B^T is [2, 3].
const std::vector<double> kA{1, 2, 3, 4, 5, 6};
const std::vector<double> kATransposed{1, 4, 2, 5, 3, 6};
const std::vector<double> kB{7, 8, 9, 10, 11, 12};
const std::vector<double> kBTransposed{7, 9, 11, 8, 10, 12};
const std::vector<double> kAB{58, 64, 139, 154};

// C [2, 2] = alpha * op(A) op(B) + beta * C for the hand-worked A and B, stored as the flags say.
template <typename T>
std::vector<T> hand_worked_gemm(bool trans_a, bool trans_b, T alpha, T beta, std::vector<T> c) {
  const GemmGeometry g{.m = 2,
                       .n = 2,
                       .k = 3,
                       .trans_a = trans_a,
                       .trans_b = trans_b,
                       .lda = trans_a ? 2 : 3,  // stored [K, M] or [M, K]
                       .ldb = trans_b ? 3 : 2,  // stored [N, K] or [K, N]
                       .ldc = 2};
  const std::vector<T> a = as<T>(trans_a ? kATransposed : kA), b = as<T>(trans_b ? kBTransposed : kB);
  kernels::gemm<T>(kCpu, g, alpha, a.data(), b.data(), beta, c.data());
  return c;
}

// ---- random operands with padded leading dimensions --------------------------------------------------

// A matrix stored row-major as rows x cols inside rows x ld: the cols real values are uniform in [-1, 1],
// the ld - cols padding columns are NaN, so a kernel that strays into the padding produces NaN.
std::vector<double> padded_random_matrix(std::int64_t rows, std::int64_t cols, std::int64_t ld,
                                         std::mt19937_64& rng) {
  std::uniform_real_distribution<double> uniform(-1.0, 1.0);
  std::vector<double> values(static_cast<std::size_t>(rows * ld), kNaN);
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t c = 0; c < cols; ++c) values[static_cast<std::size_t>(r * ld + c)] = uniform(rng);
  return values;
}

// The textbook definition, in double: C[i, j] = alpha * sum_p op(A)[i, p] op(B)[p, j] + beta * C[i, j], where
// op(A)[i, p] is A[i, p] or, when transposed, the stored A[p, i]. beta == 0 does not read C.
std::vector<double> naive_gemm(const GemmGeometry& g, double alpha, const std::vector<double>& a,
                               const std::vector<double>& b, double beta, std::vector<double> c) {
  for (std::int64_t i = 0; i < g.m; ++i) {
    for (std::int64_t j = 0; j < g.n; ++j) {
      double dot = 0.0;
      for (std::int64_t p = 0; p < g.k; ++p) {
        const double a_ip = g.trans_a ? a[static_cast<std::size_t>(p * g.lda + i)]
                                      : a[static_cast<std::size_t>(i * g.lda + p)];
        const double b_pj = g.trans_b ? b[static_cast<std::size_t>(j * g.ldb + p)]
                                      : b[static_cast<std::size_t>(p * g.ldb + j)];
        dot += a_ip * b_pj;
      }
      double& c_ij = c[static_cast<std::size_t>(i * g.ldc + j)];
      c_ij = alpha * dot + (beta == 0.0 ? 0.0 : beta * c_ij);
    }
  }
  return c;
}

// Runs the kernel in T on the double operands and compares every element of C, padding included: the real
// elements within `tolerance` of the naive result (relative to max(1, |expected|)), the padding still NaN.
template <typename T>
void check_against_naive(const GemmGeometry& g, double alpha, double beta, std::mt19937_64& rng) {
  const std::int64_t a_rows = g.trans_a ? g.k : g.m, a_cols = g.trans_a ? g.m : g.k;
  const std::int64_t b_rows = g.trans_b ? g.n : g.k, b_cols = g.trans_b ? g.k : g.n;
  // Rounded to T first, so the kernel and the naive loop multiply the same numbers.
  const std::vector<double> a = as<double>(as<T>(padded_random_matrix(a_rows, a_cols, g.lda, rng)));
  const std::vector<double> b = as<double>(as<T>(padded_random_matrix(b_rows, b_cols, g.ldb, rng)));
  std::vector<double> c0 = as<double>(as<T>(padded_random_matrix(g.m, g.n, g.ldc, rng)));
  if (beta == 0.0) std::fill(c0.begin(), c0.end(), kNaN);  // must not be read

  const std::vector<double> expected = naive_gemm(g, alpha, a, b, beta, c0);
  const std::vector<T> a_t = as<T>(a), b_t = as<T>(b);
  std::vector<T> c = as<T>(c0);
  kernels::gemm<T>(kCpu, g, static_cast<T>(alpha), a_t.data(), b_t.data(), static_cast<T>(beta), c.data());

  const double tolerance = sizeof(T) == sizeof(float) ? 1e-6 : 1e-12;
  for (std::int64_t i = 0; i < g.m; ++i) {
    for (std::int64_t j = 0; j < g.ldc; ++j) {
      const auto index = static_cast<std::size_t>(i * g.ldc + j);
      INFO("C[", i, ", ", j, "]: got ", c[index], ", expected ", expected[index]);
      if (j >= g.n) {
        CHECK(std::isnan(c[index]));  // padding of C is never written
      } else {
        const double scale = std::max(1.0, std::abs(expected[index]));
        CHECK(std::abs(static_cast<double>(c[index]) - expected[index]) <= tolerance * scale);
      }
    }
  }
}

}  // namespace

TEST_CASE_TEMPLATE("gemm: all four trans combinations on a hand-worked 2x3 * 3x2", T, float, double) {
  for (const bool trans_a : {false, true}) {
    for (const bool trans_b : {false, true}) {
      INFO("trans_a=", trans_a, " trans_b=", trans_b);
      CHECK(hand_worked_gemm<T>(trans_a, trans_b, T(1), T(0), std::vector<T>(4)) == as<T>(kAB));
    }
  }
}

// 2 * [[58, 64], [139, 154]] + 0.5 * [[1, 2], [3, 4]] = [[116.5, 129], [279.5, 310]].
TEST_CASE_TEMPLATE("gemm: alpha = 2 and beta = 0.5 on hand-worked values", T, float, double) {
  for (const bool trans_a : {false, true}) {
    for (const bool trans_b : {false, true}) {
      INFO("trans_a=", trans_a, " trans_b=", trans_b);
      CHECK(hand_worked_gemm<T>(trans_a, trans_b, T(2), T(0.5), {1, 2, 3, 4}) ==
            std::vector<T>{116.5, 129, 279.5, 310});
    }
  }
}

// 0 * NaN is NaN, so a kernel that computes beta * C when beta == 0 fails here.
TEST_CASE_TEMPLATE("gemm: beta = 0 overwrites C pre-filled with NaN", T, float, double) {
  const T nan = std::numeric_limits<T>::quiet_NaN();
  CHECK(hand_worked_gemm<T>(false, false, T(1), T(0), std::vector<T>(4, nan)) == as<T>(kAB));
  CHECK(hand_worked_gemm<T>(true, true, T(2), T(0), std::vector<T>(4, nan)) ==
        std::vector<T>{116, 128, 278, 308});
}

// Odd shapes (vectors, 1x1, sizes that are not multiples of 8) with every leading dimension padded past
// the stored width, under all four trans combinations, with alpha = 2 and beta = 0.5, then beta = 0 over
// a NaN-filled C.
TEST_CASE_TEMPLATE("gemm: matches a naive triple loop with padded lda, ldb, ldc", T, float, double) {
  struct Shape {
    std::int64_t m, n, k;
  };
  const Shape shapes[] = {{5, 7, 9}, {1, 1, 1}, {3, 1, 4}, {1, 6, 2}, {13, 11, 17}};
  std::mt19937_64 rng(2024);
  for (const Shape& s : shapes) {
    for (const bool trans_a : {false, true}) {
      for (const bool trans_b : {false, true}) {
        const GemmGeometry g{.m = s.m,
                             .n = s.n,
                             .k = s.k,
                             .trans_a = trans_a,
                             .trans_b = trans_b,
                             .lda = (trans_a ? s.m : s.k) + 3,
                             .ldb = (trans_b ? s.k : s.n) + 2,
                             .ldc = s.n + 5};
        INFO("m=", s.m, " n=", s.n, " k=", s.k, " trans_a=", trans_a, " trans_b=", trans_b);
        check_against_naive<T>(g, 2.0, 0.5, rng);
        check_against_naive<T>(g, 2.0, 0.0, rng);
      }
    }
  }
}

// With k = 0 the product is an empty sum, so C = beta * C: [[1, 2], [3, 4]] * 0.5.
TEST_CASE("gemm: k = 0 scales C by beta") {
  const GemmGeometry g{.m = 2, .n = 2, .k = 0, .lda = 1, .ldb = 2, .ldc = 2};
  std::vector<double> c{1, 2, 3, 4};
  kernels::gemm<double>(kCpu, g, 2.0, nullptr, nullptr, 0.5, c.data());
  CHECK(c == std::vector<double>{0.5, 1, 1.5, 2});
}

}  // namespace kernels_gemm_test
