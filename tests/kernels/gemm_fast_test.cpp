// Tests for the fast float GEMM (kernels/gemm/avx512.cpp, avx2.cpp through dispatch.cpp): at every
// dispatch level this CPU has, the result must match reference::gemm over odd shapes (sizes that are not
// multiples of MR, NR or the vector width), all four transpose combinations, padded leading dimensions,
// alpha != 1, beta 0 over a NaN-filled C, beta 1 and 0.5; a shape larger than MC, KC and NC runs every
// blocking loop more than once; and 1 and 2 threads must give bitwise identical C.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "kernels/cpu_level.hpp"
#include "kernels/gemm/blocking.hpp"
#include "kernels/gemm/gemm.hpp"
#include "kernels/parallel.hpp"
#include "tests/support/fast_kernel_testing.hpp"
#include "tests/support/matches_reference.hpp"

namespace kernels_gemm_fast_test {

namespace {

using kiln::Device;
using kiln::kernels::CpuLevel;
using kiln::kernels::GemmGeometry;
using kiln::testing::bitwise_equal;
using kiln::testing::DispatchGuard;
using kiln::testing::fast_levels;
using kiln::testing::Tolerance;
namespace kernels = kiln::kernels;

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

struct Problem {
  GemmGeometry g;
  std::vector<float> a, b, c;  // C holds its initial values (NaN everywhere when beta == 0)
};

// Operands of geometry g with every leading dimension padded past the stored width by a few elements,
// values uniform in [-1, 1]. The padding of C is NaN, so a store past column n is seen in the compare.
Problem random_problem(std::int64_t m, std::int64_t n, std::int64_t k, bool trans_a, bool trans_b, bool nan_c,
                       std::mt19937& rng) {
  Problem p;
  p.g = GemmGeometry{.m = m,
                     .n = n,
                     .k = k,
                     .trans_a = trans_a,
                     .trans_b = trans_b,
                     .lda = (trans_a ? m : k) + 3,
                     .ldb = (trans_b ? k : n) + 5,
                     .ldc = n + 2};
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  auto fill = [&](std::vector<float>& v, std::int64_t count) {
    v.resize(static_cast<std::size_t>(count));
    for (float& x : v) x = uniform(rng);
  };
  fill(p.a, (trans_a ? k : m) * p.g.lda);
  fill(p.b, (trans_b ? n : k) * p.g.ldb);
  fill(p.c, m * p.g.ldc);
  for (std::int64_t i = 0; i < m; ++i) {
    for (std::int64_t j = 0; j < p.g.ldc; ++j) {
      if (nan_c || j >= n) p.c[static_cast<std::size_t>(i * p.g.ldc + j)] = kNaN;
    }
  }
  return p;
}

// The reference accumulates in double; the fast kernel in float, in KC-long chunks. The float rounding
// error of a K-term dot product of values in [-1, 1] grows with K, so the tolerance does too.
Tolerance tolerance_for(std::int64_t k) { return {1e-6 * static_cast<double>(k + 1), 1e-5}; }

std::vector<float> run_fast(const Problem& p, float alpha, float beta, CpuLevel level, int threads) {
  kernels::set_cpu_level(level);
  kernels::set_compute_threads(threads);
  std::vector<float> c = p.c;
  kernels::gemm<float>(Device::cpu(), p.g, alpha, p.a.data(), p.b.data(), beta, c.data());
  return c;
}

std::vector<float> run_reference(const Problem& p, float alpha, float beta) {
  std::vector<float> c = p.c;
  kernels::reference::gemm<float>(p.g, alpha, p.a.data(), p.b.data(), beta, c.data());
  return c;
}

void check_matches(const std::vector<float>& fast, const std::vector<float>& expected, std::int64_t k) {
  const auto report = kiln::testing::matches_reference(
      fast.data(), expected.data(), static_cast<std::int64_t>(fast.size()), tolerance_for(k));
  CHECK_MESSAGE(report.ok, report.message);
  bool any_nan_inside = false;  // beta == 0 must not read the NaN-filled C; padding must stay NaN
  for (std::size_t i = 0; i < fast.size(); ++i)
    any_nan_inside |= std::isnan(fast[i]) != std::isnan(expected[i]);
  CHECK_FALSE(any_nan_inside);
}

struct Shape {
  std::int64_t m, n, k;
};

// Every size of {1, 3, 5, 17, 31, 33, 65, 127, 129, 300} appears in each of M, N and K, next to
// partners that make the tiles full, partial in one direction, or partial in both.
const Shape kOddShapes[] = {{1, 1, 1},    {1, 33, 5},     {3, 1, 17},    {5, 17, 3},
                            {17, 31, 33}, {31, 65, 1},    {33, 3, 127},  {65, 129, 31},
                            {127, 5, 65}, {129, 127, 17}, {300, 33, 3},  {17, 300, 31},
                            {5, 31, 300}, {16, 1024, 27}, {144, 64, 16}, {31, 129, 129}};

}  // namespace

TEST_CASE("gemm fast: matches the reference over odd shapes, transposes, padded ld, alpha and beta") {
  DispatchGuard guard;
  std::mt19937 rng(5);
  struct Scaling {
    float alpha, beta;
  };
  const Scaling scalings[] = {{1.0f, 0.0f}, {-1.5f, 1.0f}, {0.75f, 0.5f}};
  for (const CpuLevel level : fast_levels()) {
    for (const Shape& s : kOddShapes) {
      for (const bool trans_a : {false, true}) {
        for (const bool trans_b : {false, true}) {
          for (const Scaling& scaling : scalings) {
            INFO("level=", std::string(kernels::cpu_level_name(level)), " m=", s.m, " n=", s.n, " k=", s.k,
                 " trans_a=", trans_a, " trans_b=", trans_b, " alpha=", scaling.alpha,
                 " beta=", scaling.beta);
            const Problem p = random_problem(s.m, s.n, s.k, trans_a, trans_b, scaling.beta == 0.0f, rng);
            const std::vector<float> expected = run_reference(p, scaling.alpha, scaling.beta);
            check_matches(run_fast(p, scaling.alpha, scaling.beta, level, 1), expected, s.k);
          }
        }
      }
    }
  }
}

// M > MC, K > KC and N > NC for both instruction sets, so the jc, pc and ic loops each run at least
// twice, the later pc blocks accumulate into C, and every loop ends on a partial block. The reference
// on all of C takes over a second, so it checks bands of rows: the first, those across each
// instruction set's MC boundary, and the last (every column, so every NC boundary, is in each band).
TEST_CASE("gemm fast: a shape past MC, KC and NC matches the reference, bitwise equal on 1 and 2 threads") {
  namespace blocking = kernels::gemm_blocking;
  constexpr Shape big{blocking::Avx512::mc + 9, blocking::Avx512::nc + 40, blocking::Avx512::kc + 37};
  static_assert(big.m > blocking::Avx2::mc && big.n > blocking::Avx2::nc && big.k > blocking::Avx2::kc);
  constexpr std::int64_t kBand = 8;
  const std::int64_t band_starts[] = {0, blocking::Avx2::mc - kBand / 2, blocking::Avx512::mc - kBand / 2,
                                      big.m - kBand};
  DispatchGuard guard;
  std::mt19937 rng(7);
  const Problem p = random_problem(big.m, big.n, big.k, true, false, false, rng);
  const float alpha = 1.25f, beta = 0.5f;
  for (const CpuLevel level : fast_levels()) {
    const std::vector<float> one_thread = run_fast(p, alpha, beta, level, 1);
    for (const std::int64_t row0 : band_starts) {
      INFO("level=", std::string(kernels::cpu_level_name(level)), " rows ", row0, "..", row0 + kBand);
      // Rows [row0, row0 + kBand) of C are a GEMM of their own: the same B, A's columns from row0 (trans_a).
      GemmGeometry band = p.g;
      band.m = kBand;
      const std::size_t c_offset = static_cast<std::size_t>(row0 * p.g.ldc), c_size = kBand * p.g.ldc;
      std::vector<float> expected(p.c.begin() + c_offset, p.c.begin() + c_offset + c_size);
      kernels::reference::gemm<float>(band, alpha, p.a.data() + row0, p.b.data(), beta, expected.data());
      check_matches(std::vector<float>(one_thread.begin() + c_offset, one_thread.begin() + c_offset + c_size),
                    expected, big.k);
    }
    CHECK(bitwise_equal(run_fast(p, alpha, beta, level, 2), one_thread));
  }
}

// Bitwise equality across thread counts on shapes big enough to run in parallel: the ResNet-20 conv
// GEMMs (forward, backward-data with trans_a, backward-weight with trans_b) and an odd square.
TEST_CASE("gemm fast: 1 and 2 threads give bitwise identical C") {
  DispatchGuard guard;
  std::mt19937 rng(11);
  struct Case {
    Shape shape;
    bool trans_a, trans_b;
  };
  const Case cases[] = {{{16, 1024, 144}, false, false},
                        {{288, 256, 32}, true, false},
                        {{64, 576, 640}, false, true},
                        {{129, 131, 300}, true, true}};
  for (const CpuLevel level : fast_levels()) {
    for (const Case& c : cases) {
      INFO("level=", std::string(kernels::cpu_level_name(level)), " m=", c.shape.m, " n=", c.shape.n,
           " k=", c.shape.k, " trans_a=", c.trans_a, " trans_b=", c.trans_b);
      const Problem p = random_problem(c.shape.m, c.shape.n, c.shape.k, c.trans_a, c.trans_b, false, rng);
      CHECK(bitwise_equal(run_fast(p, 1.0f, 1.0f, level, 1), run_fast(p, 1.0f, 1.0f, level, 2)));
    }
  }
}

// A B from memory (GemmGeometry::b_cold) is packed where a few rows of C would read it in place (M <= 32,
// op(B) = B): the same micro-kernel over the same values in the same order, so the same bits, and the
// reference's values. Both ways are run, so mutating either path's reads fails here.
TEST_CASE("gemm fast: a B marked cold is packed, and C keeps the bits of B read in place") {
  DispatchGuard guard;
  std::mt19937 rng(19);
  const Shape shapes[] = {{16, 1024, 144}, {32, 300, 64}, {17, 65, 33}, {1, 40, 300}};
  for (const CpuLevel level : fast_levels()) {
    for (const Shape& shape : shapes) {
      INFO("level=", std::string(kernels::cpu_level_name(level)), " m=", shape.m, " n=", shape.n,
           " k=", shape.k);
      Problem p = random_problem(shape.m, shape.n, shape.k, false, false, false, rng);
      const std::vector<float> expected = run_reference(p, 1.5f, 0.5f);
      const std::vector<float> in_place = run_fast(p, 1.5f, 0.5f, level, 1);
      p.g.b_cold = true;
      for (const int threads : {1, 2}) {
        INFO("threads=", threads);
        const std::vector<float> packed = run_fast(p, 1.5f, 0.5f, level, threads);
        check_matches(packed, expected, shape.k);
        CHECK(bitwise_equal(packed, in_place));
      }
    }
  }
}

// Where C is one column sliver (N <= NR) and A is not transposed, the fast GEMM reads A's rows where they lie
// instead of packing them (gemm_driver.hpp, a_rows_in_place); a transposed A is still packed. The same
// products in the same order either way: A stored [M, K] must give bitwise the C of the same values stored
// [K, M] with trans_a, and the reference's values; with whole slivers of rows and a partial one (M % MR),
// B transposed or not, K past KC.
TEST_CASE("gemm fast: A read in place for a single column sliver keeps the bits of A packed") {
  DispatchGuard guard;
  std::mt19937 rng(23);
  const Shape shapes[] = {{64, 32, 4096}, {19, 16, 300}, {8, 5, 33}, {40, 32, 257}};
  for (const CpuLevel level : fast_levels()) {
    for (const Shape& shape : shapes) {
      for (const bool trans_b : {false, true}) {
        INFO("level=", std::string(kernels::cpu_level_name(level)), " m=", shape.m, " n=", shape.n,
             " k=", shape.k, " trans_b=", trans_b);
        const Problem rows = random_problem(shape.m, shape.n, shape.k, false, trans_b, false, rng);
        // The same A stored transposed, [K, M], lda = M + 3.
        Problem columns = rows;
        columns.g.trans_a = true;
        columns.g.lda = shape.m + 3;
        columns.a.assign(static_cast<std::size_t>(shape.k * columns.g.lda), 0.0f);
        for (std::int64_t i = 0; i < shape.m; ++i) {
          for (std::int64_t p = 0; p < shape.k; ++p)
            columns.a[static_cast<std::size_t>(p * columns.g.lda + i)] =
                rows.a[static_cast<std::size_t>(i * rows.g.lda + p)];
        }
        for (const int threads : {1, 2}) {
          INFO("threads=", threads);
          const std::vector<float> in_place = run_fast(rows, 0.75f, 0.5f, level, threads);
          check_matches(in_place, run_reference(rows, 0.75f, 0.5f), shape.k);
          CHECK(bitwise_equal(in_place, run_fast(columns, 0.75f, 0.5f, level, threads)));
        }
      }
    }
  }
}

// A product with its images in blocks (GemmGeometry::column_block or depth_block) and the same product laid
// side by side in plain matrices (the copy the convolutions made before), with C's starting values in both.
struct BlockedPair {
  GemmGeometry blocked, plain;
  std::vector<float> a, b, c;                    // as the blocks lie, gaps included
  std::vector<float> a_plain, b_plain, c_plain;  // side by side
};

// C [M, N] as a plain row-major matrix, read through g's places (GemmGeometry::c_offset).
std::vector<float> read_c(const GemmGeometry& g, const std::vector<float>& c) {
  std::vector<float> dense(static_cast<std::size_t>(g.m * g.n));
  for (std::int64_t i = 0; i < g.m; ++i) {
    for (std::int64_t j = 0; j < g.n; ++j)
      dense[static_cast<std::size_t>(i * g.n + j)] = c[static_cast<std::size_t>(g.c_offset(i, j))];
  }
  return dense;
}

// At every fast level, on 1 and 2 threads: the blocked product matches the reference (every gap left as
// it was) and its C is bitwise the side-by-side product's.
void check_blocked(const BlockedPair& pair, float alpha, float beta) {
  const std::int64_t k = pair.blocked.k;
  std::vector<float> expected = pair.c;
  kernels::reference::gemm<float>(pair.blocked, alpha, pair.a.data(), pair.b.data(), beta, expected.data());
  for (const CpuLevel level : fast_levels()) {
    kernels::set_cpu_level(level);
    INFO("level=", std::string(kernels::cpu_level_name(level)));
    kernels::set_compute_threads(1);
    std::vector<float> side_by_side = pair.c_plain;
    kernels::gemm<float>(Device::cpu(), pair.plain, alpha, pair.a_plain.data(), pair.b_plain.data(), beta,
                         side_by_side.data());
    for (const int threads : {1, 2}) {
      INFO("threads=", threads);
      kernels::set_compute_threads(threads);
      std::vector<float> fast = pair.c;
      kernels::gemm<float>(Device::cpu(), pair.blocked, alpha, pair.a.data(), pair.b.data(), beta,
                           fast.data());
      check_matches(fast, expected, k);
      CHECK(bitwise_equal(read_c(pair.blocked, fast), read_c(pair.plain, side_by_side)));
    }
  }
}

// op(B) and C with their columns in blocks (GemmGeometry::column_block), as a batch of NCHW images: block b
// holds columns [b * block, (b + 1) * block) with its rows ld apart, the next block a stride further on, and
// gaps (NaN in C) between rows and between blocks. The fast GEMM must match the reference, leave every gap
// alone, and give bitwise the C of the same product with the blocks gathered side by side into plain
// matrices (the copy kernels/conv2d/pointwise.cpp made before), on 1 and 2 threads.
TEST_CASE("gemm fast: columns in blocks match the reference and, bitwise, the product laid side by side") {
  struct Case {
    Shape shape;
    std::int64_t block;
    bool trans_a;
    float beta;
  };
  const Case cases[] = {
      {{64, 2048, 256}, 16, false, 0.0f},  // a pointwise layer at 4x4: a 32-column sliver spans two blocks
      {{17, 300, 33}, 4, true, 0.5f},      // 2x2 planes; M <= 32, where plain columns read B in place
      {{33, 333, 300}, 37, false, 1.0f},   // blocks across slivers; K past KC, later depth blocks accumulate
      {{8, 1030, 5}, 1024, true, 0.0f},    // a block wider than a sliver, a short last block
      {{40, 256, 20}, 64, false, 0.5f},    // blocks of two whole slivers, each a plain matrix
      {{3, 5, 7}, 2, false, 0.5f},         // one partial tile
  };
  DispatchGuard guard;
  std::mt19937 rng(13);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  for (const Case& test : cases) {
    const auto [m, n, k] = test.shape;
    INFO("m=", m, " n=", n, " k=", k, " block=", test.block, " trans_a=", test.trans_a, " beta=", test.beta);
    const std::int64_t blocks = (n + test.block - 1) / test.block;
    BlockedPair pair;
    pair.blocked = GemmGeometry{.m = m,
                                .n = n,
                                .k = k,
                                .trans_a = test.trans_a,
                                .lda = (test.trans_a ? m : k) + 1,
                                .ldb = test.block + 1,
                                .ldc = test.block + 2,
                                .column_block = test.block,
                                .b_column_block_stride = k * (test.block + 1) + 3,
                                .c_column_block_stride = m * (test.block + 2) + 5};
    const GemmGeometry& blocked = pair.blocked;
    pair.a.resize(static_cast<std::size_t>((test.trans_a ? k : m) * blocked.lda));
    pair.b.resize(static_cast<std::size_t>(blocks * blocked.b_column_block_stride));
    pair.c.assign(static_cast<std::size_t>(blocks * blocked.c_column_block_stride), kNaN);
    for (float& x : pair.a) x = uniform(rng);
    for (float& x : pair.b) x = uniform(rng);
    // The same product laid side by side: the same A, plain B [K, N] and C [M, N].
    pair.plain = blocked;
    pair.plain.ldb = pair.plain.ldc = n;
    pair.plain.column_block = 0;
    pair.a_plain = pair.a;
    pair.b_plain.resize(static_cast<std::size_t>(k * n));
    pair.c_plain.resize(static_cast<std::size_t>(m * n));
    for (std::int64_t p = 0; p < k; ++p) {
      for (std::int64_t j = 0; j < n; ++j)
        pair.b_plain[static_cast<std::size_t>(p * n + j)] =
            pair.b[static_cast<std::size_t>(blocked.b_offset(p, j))];
    }
    for (std::int64_t i = 0; i < m; ++i) {
      for (std::int64_t j = 0; j < n; ++j) {
        float& c_ij = pair.c[static_cast<std::size_t>(blocked.c_offset(i, j))];
        if (test.beta != 0.0f) c_ij = uniform(rng);  // beta == 0: C stays NaN, which must not be read
        pair.c_plain[static_cast<std::size_t>(i * n + j)] = c_ij;
      }
    }
    check_blocked(pair, 0.75f, test.beta);
  }
}

// The depth (K) of op(A) and op(B) in blocks (GemmGeometry::depth_block), as a convolution's weight gradient
// sees a batch of images: gy [M, K] and x [N, K] (op(B) = x^T) with each image a block of the depth, its rows
// ld apart, gaps between. Same checks as for columns: the reference, and bitwise the product of the matrices
// laid side by side (the copy the pointwise weight gradient made before), on 1 and 2 threads.
TEST_CASE("gemm fast: depth in blocks matches the reference and, bitwise, the product laid side by side") {
  struct Case {
    Shape shape;
    std::int64_t block;
    bool trans_a, trans_b;
  };
  const Case cases[] = {
      {{64, 128, 1024}, 16, false, true},  // a pointwise weight gradient at 4x4: 64 images in one chunk
      {{17, 33, 300}, 4, false, true},     // 2x2 planes, runs shorter than the 8-wide transposes of packing
      {{9, 40, 600}, 37, true, false},     // odd blocks across KC, both operands the other way round
      {{33, 5, 7}, 3, true, true},         // one partial tile
  };
  DispatchGuard guard;
  std::mt19937 rng(17);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  for (const Case& test : cases) {
    const auto [m, n, k] = test.shape;
    INFO("m=", m, " n=", n, " k=", k, " block=", test.block, " trans_a=", test.trans_a,
         " trans_b=", test.trans_b);
    const std::int64_t blocks = (k + test.block - 1) / test.block;
    // Stored A is [M, K] (depth along a row) or [K, M] (trans_a: depth down the rows); B likewise.
    const std::int64_t a_lines = m, b_lines = n;
    BlockedPair pair;
    GemmGeometry& blocked = pair.blocked;
    blocked =
        GemmGeometry{.m = m, .n = n, .k = k, .trans_a = test.trans_a, .trans_b = test.trans_b, .ldc = n + 1};
    // Within a block, one line of depth `block` long (untransposed: ld = block + 1 apart) or `block` rows of
    // the lines (transposed: ld = lines + 2); blocks a few floats further apart than they need.
    blocked.lda = test.trans_a ? a_lines + 2 : test.block + 1;
    blocked.ldb = test.trans_b ? test.block + 1 : b_lines + 2;
    blocked.depth_block = test.block;
    blocked.a_depth_block_stride = (test.trans_a ? test.block * blocked.lda : a_lines * blocked.lda) + 3;
    blocked.b_depth_block_stride = (test.trans_b ? b_lines * blocked.ldb : test.block * blocked.ldb) + 5;
    pair.a.resize(static_cast<std::size_t>(blocks * blocked.a_depth_block_stride));
    pair.b.resize(static_cast<std::size_t>(blocks * blocked.b_depth_block_stride));
    for (float& v : pair.a) v = uniform(rng);
    for (float& v : pair.b) v = uniform(rng);
    pair.c.resize(static_cast<std::size_t>(m * blocked.ldc));
    for (float& v : pair.c) v = uniform(rng);
    // Side by side: plain op(A) [M, K] and op(B) [K, N], untransposed; the same C.
    pair.plain = GemmGeometry{.m = m, .n = n, .k = k, .lda = k, .ldb = n, .ldc = blocked.ldc};
    pair.a_plain.resize(static_cast<std::size_t>(m * k));
    pair.b_plain.resize(static_cast<std::size_t>(k * n));
    for (std::int64_t p = 0; p < k; ++p) {
      for (std::int64_t i = 0; i < m; ++i)
        pair.a_plain[static_cast<std::size_t>(i * k + p)] =
            pair.a[static_cast<std::size_t>(blocked.a_offset(i, p))];
      for (std::int64_t j = 0; j < n; ++j)
        pair.b_plain[static_cast<std::size_t>(p * n + j)] =
            pair.b[static_cast<std::size_t>(blocked.b_offset(p, j))];
    }
    pair.c_plain = pair.c;
    check_blocked(pair, 1.25f, 0.5f);
  }
}

TEST_CASE("gemm: columns in blocks are refused with trans_b, and with the depth in blocks too") {
  const GemmGeometry g{.m = 2,
                       .n = 4,
                       .k = 3,
                       .trans_b = true,
                       .lda = 3,
                       .ldb = 3,
                       .ldc = 2,
                       .column_block = 2,
                       .b_column_block_stride = 8,
                       .c_column_block_stride = 6};
  std::vector<float> a(6, 1.0f), b(16, 1.0f), c(12, 0.0f);
  CHECK_THROWS_WITH_AS(kernels::gemm<float>(Device::cpu(), g, 1.0f, a.data(), b.data(), 0.0f, c.data()),
                       doctest::Contains("columns in blocks need trans_b false"), kiln::Error);
  GemmGeometry both = g;
  both.trans_b = false;
  both.depth_block = 3;
  CHECK_THROWS_WITH_AS(kernels::gemm<float>(Device::cpu(), both, 1.0f, a.data(), b.data(), 0.0f, c.data()),
                       doctest::Contains("cannot both be in blocks"), kiln::Error);
}

}  // namespace kernels_gemm_fast_test
