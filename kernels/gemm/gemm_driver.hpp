// The five loops of a BLIS-style GEMM around a register-blocked micro-kernel (Goto & van de Geijn,
// "Anatomy of High-Performance Matrix Multiplication"; Van Zee & van de Geijn, "BLIS"):
//
//   for jc in [0, N) step NC:                         B panel  op(B)[pc.., jc..]  KC x NC  (L2)
//     for pc in [0, K) step KC:                       (K and M in equal blocks of at most KC, MC: even_block)
//       pack the B panel into NR-wide slivers
//       for ic in [0, M) step MC:                     A block  op(A)[ic.., pc..]  MC x KC  (L2)
//         pack the A block into MR-tall slivers
//         for jr in [0, NC) step NR:                  B sliver KC x NR                     (L1)
//           for ir in [0, MC) step MR:                C tile   MR x NR                     (registers)
//             micro_kernel(A sliver ir, B sliver jr, C tile)
//
// For M <= 32 with B not transposed and in cache, the B panel is not packed but read in place
// (kInPlaceBMaxRows); for N <= NR with A not transposed, neither are A's slivers (a_rows_in_place).
// A batch of NCHW images in blocks (GemmGeometry::column_block, depth_block): along the depth, packing goes a
// block's run at a time; along the columns, a sliver inside one block is a plain strided matrix, one across
// blocks is packed a block's run at a time and its C tiles go through a small buffer to be stored the same
// way. Either way the micro-kernel sees what it would for the images side by side, so C has the same bits.
// The first pc block applies the caller's beta; later ones accumulate (beta = 1), so C is read and
// written once per KC of depth. Blocking sizes and their reasons are in blocking.hpp.
//
// Threads: thread_cut.hpp.
//
// Where the time goes, against oneDNN's sgemm on two Zen 5 cores (a scratch program timing gemm_blocked and
// dnnl_sgemm alternately, medians, GFLOP/s): the 8 x 32 micro-kernel alone, its slivers in L1, runs at 218
// of a core's 228 (96%), as do 6 x 64, 12 x 32, 14 x 32 and 8 x 48, so what the loops around it lose is
// memory. Squares 1024 and 2048 on one thread: 170-196, oneDNN 183-209. The widest gap is a product of few
// rows whose B comes from memory, 64 x 8192 x 576 (an im2col of 64 filters): 125-135 on one thread against
// oneDNN's 175-190, and `perf` puts a third of its time in packing B, each element copied to feed only 64
// rows. Tried, none kept: packing a panel row by row (B's rows read in order) instead of sliver by sliver,
// no change; KC 128 to 640, NC 32 to 2048, the micro-kernels above, no change beyond the noise; prefetching
// the next panel's B lines while this panel's tiles run, with NC 256 so that both panels fit L2 beside the A
// block, +11% on one thread and +6% on two for that product, within the noise (3%) on the pointwise
// products MobileNet runs at batch 128, 5% slower on squares; prefetching the next C tile, no change.
//
// Included by avx512.cpp and avx2.cpp only; unnamed namespace for the reason given in packing.hpp.
#pragma once

#include <omp.h>

#include <cstdint>
#include <cstdlib>

#include "kernels/gemm/gemm.hpp"
#include "kernels/gemm/micro_kernel.hpp"
#include "kernels/gemm/pack_buffer.hpp"
#include "kernels/gemm/packing.hpp"
#include "kernels/gemm/thread_cut.hpp"

namespace kiln::kernels {
namespace {

inline std::int64_t smaller(std::int64_t x, std::int64_t y) { return x < y ? x : y; }
inline std::int64_t round_up(std::int64_t x, std::int64_t multiple) {
  return (x + multiple - 1) / multiple * multiple;
}

// Products below this many multiply-adds run on the calling thread: opening a parallel region costs a
// few microseconds, about what 2 x 10^5 FMAs take on one core at this kernel's speed.
constexpr std::int64_t kMinParallelMultiplyAdds = 200'000;

// B read in place, unpacked, when M is at most this. A packed B sliver pays for its copy by being read
// by every MR-row tile of the A block; with M = 16 (the first ResNet-20 stage: 16 x 1024 x 144 forward)
// it is read only twice, and the copy costs as much as the reads saved. When op(B) is B itself (not
// trans_b), an NR-wide sliver is NR contiguous floats per row, ldb apart, which the micro-kernel can load
// directly. Measured, 1 thread, GFLOP/s with threshold 0 / 16 / 32 / 64 rows:
//   16 x 1024 x 144:  65 / 103 / 105 / 87-98      16 x 1024 x 27:  66 / 84-88 / 87-90 / 79-81
//   32 x 256 x 288:   91 / 92-94 / 105-110 / 97-103    squares and M >= 64 shapes: unchanged.
// The partial last sliver (N % NR columns) is still packed: reading NR columns there would overrun B.
// Those figures are for a B in cache, as im2col's columns are, written just before the product. A B that
// comes from memory (GemmGeometry::b_cold: the activations a pointwise convolution reads where they lie) is
// packed at any M: read in place, a sliver streams its K rows from memory at once, each 128 bytes at a time
// between multiply-adds, and the packing copy, a loop of nothing but loads and stores, fetches the same
// lines faster (more misses in flight, presumably). Measured on 2 cores of a Xeon with AMX, AVX-512, batch
// 128 at 32x32, ms, in place vs packed, with the operands in cache / rotated through 12 copies so that they
// come from memory:
//   pointwise backward-data 64 -> 32 (M 32, K 64)   2.85 / 5.15-5.64  vs  2.51-2.63 / 3.10-3.17
//   pointwise backward-data 64 -> 16 (M 16, K 64)   1.74-1.98 / 5.42  vs  1.68 / 2.17-2.27
//   pointwise forward 32 -> 16 (M 16, K 32)         0.71-0.74 / 1.38-1.43  vs  0.85-0.93 / 1.20-1.24
// and in a MobileNet-style training step the 32 -> 64 layer's backward-data went from 5.9-6.0 ms to 3.1-3.3.
// A software prefetch of the next sliver's rows, with B left in place, recovered only part (3.4 ms in the
// step). im2col's columns keep the in-place read: 16 -> 16 3x3 at batch 128 (M 16, K 144), 3.0 ms in
// place against 4.0 packed. So do activations small enough to be in cache still (the callers mark B cold
// only past half a core's L2): the pointwise 64 -> 16 forward at 32x32 in cache, batch 1 / 4 / 16, 9 / 33 /
// 156 us in place against 14 / 43 / 196 packed; from memory, batch 4 / 8 / 16, 103 / 352 / 704 against
// 58 / 132 / 277.
constexpr std::int64_t kInPlaceBMaxRows = 32;

// The size of each block when `extent` is cut into the fewest blocks of at most `most`, all of one size (a
// multiple of `multiple`; the last takes what is left), rather than whole blocks of `most` and a remainder.
// Along K: every depth block reads and writes its C tiles once, so a thin last block pays that for a few
// multiply-adds (im2col's 288 = 32 x 9 was 256 + 32, now 144 + 144); along M: every row block streams the
// B panel's slivers through L1 once, so a thin last block does that for a few row tiles (288 was 256 + 32).
// Two cores of a Xeon with AMX, GFLOP/s, depth blocks: 32 x 8192 x 288 176-195 -> 195-210, 64 x 8192 x 576
// (256 + 256 + 64 -> 3 x 192) 213-218 -> 217-226; and row blocks besides: 288 x 8192 x 32 142-185 ->
// 142-194, 576 x 4096 x 64 190-253 -> 235-257, 288 x 2048 x 288 235-268 -> 242-272. Extents that are
// multiples of `most` are cut as before. The cut depends on the product's K and M alone, so every thread's
// part of it sums in the same depth blocks: the bits stay those of any other cut of the columns (and row
// blocks never change a sum).
inline std::int64_t even_block(std::int64_t extent, std::int64_t most, std::int64_t multiple) {
  const std::int64_t blocks = (extent + most - 1) / most;
  return smaller(most, round_up((extent + blocks - 1) / blocks, multiple));
}

// C = beta * C, for K = 0 (the product is an empty sum). beta == 0 writes zeros without reading C.
inline void scale_c(const GemmGeometry& g, float beta, float* c) {
  for (std::int64_t i = 0; i < g.m; ++i) {
    float* row = c + i * g.ldc;
    for (std::int64_t j = 0; j < g.n; ++j) {
      float& c_ij = row[g.c_column(j)];
      c_ij = beta == 0.0f ? 0.0f : beta * c_ij;
    }
  }
}

// C's [rows, cols] tile at row i0 and column j0, whose columns are in blocks (GemmGeometry::column_block),
// from `tile` [MR][NR] = alpha * the tile's sums: C = tile + beta * C, as the micro-kernel's own store
// computes it (move_run: one fused multiply-add, C not read when beta == 0), so C's bits are those of a
// product whose columns lay side by side. A run of consecutive columns of one block at a time.
template <typename Vec, int NR>
void store_blocked_tile(const GemmGeometry& g, const float* tile, int rows, int cols, float beta, float* c,
                        std::int64_t i0, std::int64_t j0) {
  // One division for the tile, then block by block.
  std::int64_t block = j0 / g.column_block, within = j0 % g.column_block;
  for (int col = 0; col < cols; ++block, within = 0) {
    const int run = static_cast<int>(smaller(cols - col, g.column_block - within));
    float* to = c + i0 * g.ldc + block * g.c_column_block_stride + within;
    move_runs<Vec>(tile + col, NR, to, g.ldc, rows, run, beta);
    col += run;
  }
}

// The five loops on one thread, for C[M, N] (or the part of it one thread owns; see gemm_blocked).
// Blocking: a gemm_blocking struct (mr, nr, kc, mc, nc); Vec: the vector trait for micro_kernel.
// first_column: where a thread's part of a product with blocked columns starts (its b and c stay the whole
// product's: a block's columns cannot be shifted past its end); 0 otherwise.
template <typename Blocking, typename Vec>
void gemm_one_thread(const GemmGeometry& g, float alpha, const float* a, const float* b, float beta, float* c,
                     std::int64_t first_column = 0) {
  constexpr int MR = Blocking::mr, NR = Blocking::nr;
  const OperandLayout a_layout = layout_of_a(a, g);
  const OperandLayout b_layout = layout_of_b(b, g);
  const std::int64_t kc_step = even_block(g.k, Blocking::kc, 8);
  const std::int64_t mc_step = even_block(g.m, Blocking::mc, MR);
  const std::int64_t kc_max = smaller(kc_step, g.k);
  thread_local PackBuffer<float> a_buffer, b_buffer;  // (pack_buffer.hpp)
  float* a_packed = a_buffer.reserve(round_up(smaller(mc_step, g.m), MR) * kc_max);
  float* b_packed = b_buffer.reserve(round_up(smaller(Blocking::nc, g.n), NR) * kc_max);
  const bool b_in_place = !g.trans_b && !g.blocked_depth() && !g.b_cold && g.m <= kInPlaceBMaxRows;
  // A's rows read where they lie (micro_kernel's kARowsInPlace) when C is a single column sliver: each A
  // sliver then meets one B sliver per depth block, so packing it would copy it only to read it once. The
  // thin weight gradients are such products (C [C_out, C_in <= 32] summed over every position): A is gy,
  // [C_out, positions], and packing its 8-row slivers, a transpose, took a quarter of their time. The
  // micro-kernel's broadcasts read the 8 rows as 8 streams along the depth instead. Measured on 2 cores of
  // a Xeon with AMX, batch 128, ms, packed vs in place, operands in cache / from memory: the pointwise
  // 32 -> 64 at 32x32 2.76-2.88 / 4.28-4.38 vs 2.36-2.46 / 3.85-3.91 (3.7 ms in a MobileNet-style training
  // step, 4.0-4.4 before), 16 -> 32 at 32x32 from memory 1.93 vs 1.59, im2col's 3 -> 16 3x3 (N = 27) 1.36
  // vs 1.15. Transposed, A's rows are not contiguous along the depth: packed as before.
  const bool a_rows_in_place = !g.trans_a && g.n <= NR;
  // Where each sliver of the panel starts in a row of B and of C, worked out once per panel rather than
  // once per micro-tile (two integer divisions each). With blocked columns, a sliver inside one block (every
  // sliver, when the blocks are whole slivers: planes of 32x32, 16x16, 8x8) is a plain strided matrix from
  // there; one across blocks is packed and stored a block's run at a time.
  struct SliverPlace {
    bool plain;         // a plain strided matrix: inside one block, or no blocks
    std::int64_t b, c;  // its first column's offset in a row of B (read only untransposed) and of C
  };
  SliverPlace places[Blocking::nc / NR + 1];
  const bool blocked = g.blocked_columns();

  for (std::int64_t jc = 0; jc < g.n; jc += Blocking::nc) {
    const std::int64_t nc = smaller(Blocking::nc, g.n - jc);
    const std::int64_t b_slivers = (nc + NR - 1) / NR;
    for (std::int64_t s = 0; s < b_slivers; ++s) {
      const std::int64_t j0 = jc + s * NR, j = first_column + j0, last = j + smaller(NR, g.n - j0) - 1;
      places[s] = blocked
                      ? SliverPlace{j / g.column_block == last / g.column_block, g.b_column(j), g.c_column(j)}
                      : SliverPlace{true, j0, j0};
    }
    for (std::int64_t pc = 0; pc < g.k; pc += kc_step) {
      const std::int64_t kc = smaller(kc_step, g.k - pc);
      const float beta_here = pc == 0 ? beta : 1.0f;  // later depth blocks accumulate
      for (std::int64_t s = 0; s < b_slivers; ++s) {
        const std::int64_t j0 = jc + s * NR;
        const int cols = static_cast<int>(smaller(NR, g.n - j0));
        float* packed = b_packed + s * NR * kc;
        if (!places[s].plain) {
          pack_blocked_sliver<Vec, NR>(b, g, first_column + j0, cols, pc, kc, packed);
        } else if (!(b_in_place && cols == NR)) {
          // (B in blocks is never transposed: a sliver of one block is unit-stride along its columns.)
          const OperandLayout from = blocked ? OperandLayout{b + places[s].b, 1, g.ldb} : b_layout;
          pack_sliver<NR>(from, blocked ? 0 : j0, cols, pc, kc, packed);
        }
      }
      // This depth block's A rows in place: every whole sliver, where the block lies in one of A's depth
      // blocks (GemmGeometry::depth_block), so that each row is contiguous along it.
      const bool a_in_place =
          a_rows_in_place && (!g.blocked_depth() || pc / g.depth_block == (pc + kc - 1) / g.depth_block);
      for (std::int64_t ic = 0; ic < g.m; ic += mc_step) {
        const std::int64_t mc = smaller(mc_step, g.m - ic);
        const std::int64_t a_slivers = (mc + MR - 1) / MR;
        for (std::int64_t s = 0; s < a_slivers; ++s) {
          const std::int64_t i0 = ic + s * MR;
          const int rows = static_cast<int>(smaller(MR, g.m - i0));
          if (!(a_in_place && rows == MR))
            pack_sliver<MR>(a_layout, i0, rows, pc, kc, a_packed + s * MR * kc);
        }
        // jr outer, ir inner: consecutive micro-tiles reuse the same B sliver from L1.
        for (std::int64_t jr = 0; jr < b_slivers; ++jr) {
          const std::int64_t j0 = jc + jr * NR;
          const int cols = static_cast<int>(smaller(NR, g.n - j0));
          const SliverPlace& place = places[jr];
          const bool in_place = place.plain && b_in_place && cols == NR;
          const float* b_sliver = in_place ? b + pc * g.ldb + place.b : b_packed + jr * NR * kc;
          for (std::int64_t ir = 0; ir < a_slivers; ++ir) {
            const std::int64_t i0 = ic + ir * MR;
            const int rows = static_cast<int>(smaller(MR, g.m - i0));
            const bool a_here = a_in_place && rows == MR;  // A's rows where they lie, else the packed sliver
            const float* a_sliver = a_here ? a + i0 * g.lda + g.depth_offset(pc, 1, g.a_depth_block_stride)
                                           : a_packed + ir * MR * kc;
            const auto multiply = [&](std::int64_t b_stride, float beta_tile, float* c_tile, std::int64_t ldc,
                                      int tile_rows, int tile_cols) {
              if (a_here) {
                micro_kernel<Vec, MR, NR, true>(kc, a_sliver, b_sliver, b_stride, alpha, beta_tile, c_tile,
                                                ldc, tile_rows, tile_cols, g.lda);
              } else {
                micro_kernel<Vec, MR, NR>(kc, a_sliver, b_sliver, b_stride, alpha, beta_tile, c_tile, ldc,
                                          tile_rows, tile_cols);
              }
            };
            if (place.plain) {
              multiply(in_place ? g.ldb : NR, beta_here, c + i0 * g.ldc + place.c, g.ldc, rows, cols);
              continue;
            }
            // The tile's columns are two blocks' or more: into a buffer, then out a block's run at a time.
            alignas(64) float tile[MR * NR];
            multiply(NR, 0.0f, tile, NR, MR, NR);
            store_blocked_tile<Vec, NR>(g, tile, rows, cols, beta_here, c, i0, first_column + j0);
          }
        }
      }
    }
  }
}

// The rows [row0, row0 + rows) and columns [col0, col0 + cols) of the problem, as a GEMM of its own:
// only the pointers move (op(A) rows are A rows, or A columns when trans_a; likewise op(B) columns).
// With blocked columns the column pointers stay and first_column says where the part starts.
struct SubProblem {
  GemmGeometry g;
  const float* a;
  const float* b;
  float* c;
  std::int64_t first_column = 0;
};

inline SubProblem sub_problem(const GemmGeometry& g, const float* a, const float* b, float* c,
                              std::int64_t row0, std::int64_t rows, std::int64_t col0, std::int64_t cols) {
  GemmGeometry part = g;
  part.m = rows;
  part.n = cols;
  const float* a_part = a + (g.trans_a ? row0 : row0 * g.lda);
  if (g.blocked_columns()) return {part, a_part, b, c + row0 * g.ldc, col0};
  return {part, a_part, b + (g.trans_b ? col0 * g.ldb : col0), c + row0 * g.ldc + col0};
}

// The threads' blocks of C: thread_cut.hpp.
template <typename Blocking, typename Vec>
void gemm_blocked(const GemmGeometry& g, float alpha, const float* a, const float* b, float beta, float* c) {
  constexpr int MR = Blocking::mr, NR = Blocking::nr;
  if (g.m <= 0 || g.n <= 0) return;
  if (g.k <= 0) {
    scale_c(g, beta, c);
    return;
  }
  cut_among_threads(g, MR, NR, kMinParallelMultiplyAdds,
                    [&](std::int64_t row0, std::int64_t rows, std::int64_t col0, std::int64_t cols) {
                      const SubProblem part = sub_problem(g, a, b, c, row0, rows, col0, cols);
                      gemm_one_thread<Blocking, Vec>(part.g, alpha, part.a, part.b, beta, part.c,
                                                     part.first_column);
                    });
}

}  // namespace
}  // namespace kiln::kernels
