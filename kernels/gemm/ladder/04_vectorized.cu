// GEMM ladder, step 04: step 03 with 128-bit memory operations and a warp-tiled thread layout. The block
// tile (128 x 128 x 8, 256 threads, 8 x 8 outputs per thread) and the outer-product inner loop are those of
// step 03; what changes is how values move:
//   - global -> shared: each thread copies one float4 of the A tile and one of the B tile (one 16-byte load
//     each instead of four 4-byte loads); A's float4 (4 consecutive k of one row) is written transposed,
//     as 4 floats down a column of a_tile;
//   - shared -> registers: the thread's 8 rows of A and 8 columns of B are two float4 each (4 loads per kk
//     instead of 16);
//   - registers -> C: float4 stores, and float4 reads of C when beta != 0.
// Fewer, wider instructions leave more issue slots to the FMAs, which are 64 of every 68 instructions in
// the inner loop here (16 of 80 were loads in step 03).
//
// The thread layout is what makes the float4 shared reads conflict-free. In step 03 a thread's 8 columns
// were contiguous, so a warp read b_tile at a stride of 8 floats, 4 threads to a bank. Here each thread's
// 8 x 8 is four 4 x 4 pieces, and the 32 lanes of a warp tile a 32 x 64 region of C, the warp tile:
//
//   warp w (of 8):  rows  warp_row = (w / 2) * 32,  columns  warp_col = (w % 2) * 64    (4 x 2 warps)
//   lane l (of 32): lane_m = l / 8 (0..3), lane_n = l % 8 (0..7)                          (4 x 8 lanes)
//   its rows:    warp_row + rm * 16 + lane_m * 4 + i,   rm < 2, i < 4
//   its columns: warp_col + rn * 32 + lane_n * 4 + j,   rn < 2, j < 4
//
// At each kk a warp reads, for one rm, a_tile[kk][warp_row + rm * 16 + lane_m * 4 .. + 3]: 4 distinct float4
// (64 contiguous bytes) each broadcast to 8 lanes; and for one rn, b_tile[kk][warp_col + rn * 32 +
// lane_n * 4 .. + 3]: 8 distinct float4, 128 contiguous bytes, all 32 banks once. No bank is asked for two
// different addresses, whether the hardware serves the warp at once or 8 lanes at a time. The stores to C
// follow the same layout: a warp writes 4 rows x 128 contiguous bytes per instruction.
//
// Copies (thread t, one float4 of each tile):
//   A: rows r = t / 2, k kq = (t % 2) * 4: a_tile[kq + q][r] = A[block_row + r, k0 + kq + q], q < 4.
//      a_tile rows are padded to 132 floats: the store of q puts lane l at bank (4 (kq + q) + r) % 32 =
//      (16 (l % 2) + l / 2 + 16 w + 4 q) % 32, distinct for the 32 lanes.
//   B: row kk = t / 32, columns c4 = (t % 32) * 4: b_tile[kk][c4 .. + 3] = B[k0 + kk, block_col + c4 .. + 3];
//      a warp reads one 512-byte stretch of a row of B.
// Shared memory: 8 x 132 + 8 x 128 floats = 8,320 bytes, both arrays 16-byte aligned.
//
// Alignment 4: K and N are multiples of 4 and A, B and C start on 16 bytes (the launcher checks), so every
// row of A, B and C starts on 16 bytes, and every float4 here starts at a multiple of 4 within its row: it is
// aligned, and since the end of the row (K or N), the tile origins (multiples of 8 or 128) and the offsets
// (multiples of 4) are all multiples of 4, a float4 lies wholly inside the matrix or wholly outside it.
// Outside float4s of A and B are zero-filled in shared memory; outside ones of C are not written. M is any
// size >= 1, and K and N need not be multiples of the tile. Grid: 1-D, one block per 128 x 128 tile of C.
#include <cstdint>

#include "core/error.hpp"
#include "kernels/gemm/ladder/ladder.hpp"
#include "kernels/ladder/launch.cuh"

namespace kiln::kernels::gemm_ladder {
namespace {
namespace vectorized {  // this step's names (its ladder compiles as one unit)

constexpr int kBM = 128, kBN = 128, kBK = 8;  // block tile
constexpr int kThreads = 256;
constexpr int kWarpTileM = 32, kWarpTileN = 64;    // a warp's region of the block tile
constexpr int kWarpsN = kBN / kWarpTileN;          // 2 (and kBM / kWarpTileM = 4 warps down)
constexpr int kLanesN = 8;                         // lanes across a warp tile (4 down)
constexpr int kVec = 4;                            // floats in a float4
constexpr int kRepM = 2, kRepN = 2;                // 4 x 4 pieces per thread, down and across
constexpr int kPieceStrideM = kWarpTileM / kRepM;  // 16 rows between a thread's two pieces
constexpr int kPieceStrideN = kWarpTileN / kRepN;  // 32 columns
constexpr int kAPad = 4;  // a_tile row padding: conflict-free transposed stores, rows still 16-byte aligned
static_assert((kBM / kWarpTileM) * kWarpsN * 32 == kThreads, "one warp per warp tile");
static_assert((32 / kLanesN) * kVec * kRepM == kWarpTileM && kLanesN * kVec * kRepN == kWarpTileN,
              "the lanes' pieces cover the warp tile");
static_assert(kBM * kBK / kVec == kThreads && kBK * kBN / kVec == kThreads,
              "one float4 of each tile per thread");
static_assert((kBM + kAPad) % kVec == 0, "a_tile rows start on 16 bytes");

// a: A[M, K], b: B[K, N], c: C[M, N], all row-major and dense; K and N multiples of 4, pointers 16-byte
// aligned.
__global__ void __launch_bounds__(kThreads)
    vectorized_kernel(int m, int n, int k, float alpha, float beta, const float* __restrict__ a,
                      const float* __restrict__ b, float* __restrict__ c) {
  __shared__ __align__(
      16) float a_tile[kBK][kBM + kAPad];           // transposed: A[block_row + r, k0 + kk] at [kk][r]
  __shared__ __align__(16) float b_tile[kBK][kBN];  // B[k0 + kk, block_col + col] at [kk][col]

  const int tiles_n = (n - 1) / kBN + 1;  // ceil(N / 128), without N + 127 overflowing
  const int block_row = static_cast<int>(blockIdx.x) / tiles_n * kBM;
  const int block_col = static_cast<int>(blockIdx.x) % tiles_n * kBN;
  // Offsets inside the tile are compared with what is left of C, so no index ever passes M or N.
  const int rows_left = m - block_row, cols_left = n - block_col;  // >= 1; cols_left % 4 == 0
  const int tid = static_cast<int>(threadIdx.x), warp = tid / 32, lane = tid % 32;
  // The first of this thread's rows and columns in the block tile; its pieces are kPieceStride apart.
  const int thread_row = (warp / kWarpsN) * kWarpTileM + (lane / kLanesN) * kVec;
  const int thread_col = (warp % kWarpsN) * kWarpTileN + (lane % kLanesN) * kVec;

  // The copies' coordinates in the tiles (see the top comment).
  const int a_r = tid / (kBK / kVec), a_kq = tid % (kBK / kVec) * kVec;
  const int b_kk = tid / (kBN / kVec), b_c4 = tid % (kBN / kVec) * kVec;
  const bool a_row_inside = a_r < rows_left, b_col_inside = b_c4 < cols_left;

  // acc[rm * 4 + i][rn * 4 + j]: C at row thread_row + rm * 16 + i, column thread_col + rn * 32 + j.
  float acc[kRepM * kVec][kRepN * kVec] = {};
  const int k_tiles = (k - 1) / kBK + 1;
  for (int t = 0; t < k_tiles; ++t) {
    const int k0 = t * kBK, k_left = k - k0;  // k_left >= 1 and a multiple of 4
    // Copy the tiles; a float4 is wholly inside its matrix or wholly outside (zeros), and its index is
    // formed only when it is inside.
    float4 a_vec = make_float4(0.0f, 0.0f, 0.0f, 0.0f), b_vec = a_vec;
    if (a_row_inside && a_kq < k_left)
      a_vec = *reinterpret_cast<const float4*>(a + (block_row + a_r) * k + k0 + a_kq);
    if (b_kk < k_left && b_col_inside)
      b_vec = *reinterpret_cast<const float4*>(b + (k0 + b_kk) * n + block_col + b_c4);
    a_tile[a_kq + 0][a_r] = a_vec.x;
    a_tile[a_kq + 1][a_r] = a_vec.y;
    a_tile[a_kq + 2][a_r] = a_vec.z;
    a_tile[a_kq + 3][a_r] = a_vec.w;
    *reinterpret_cast<float4*>(&b_tile[b_kk][b_c4]) = b_vec;
    __syncthreads();  // the tiles have landed before anyone reads them

#pragma unroll
    for (int kk = 0; kk < kBK; ++kk) {
      float a_frag[kRepM * kVec], b_frag[kRepN * kVec];  // A[rows, kk] and B[kk, columns] of this thread
#pragma unroll
      for (int rm = 0; rm < kRepM; ++rm) {
        const float4 v = *reinterpret_cast<const float4*>(&a_tile[kk][thread_row + rm * kPieceStrideM]);
        a_frag[rm * kVec + 0] = v.x;
        a_frag[rm * kVec + 1] = v.y;
        a_frag[rm * kVec + 2] = v.z;
        a_frag[rm * kVec + 3] = v.w;
      }
#pragma unroll
      for (int rn = 0; rn < kRepN; ++rn) {
        const float4 v = *reinterpret_cast<const float4*>(&b_tile[kk][thread_col + rn * kPieceStrideN]);
        b_frag[rn * kVec + 0] = v.x;
        b_frag[rn * kVec + 1] = v.y;
        b_frag[rn * kVec + 2] = v.z;
        b_frag[rn * kVec + 3] = v.w;
      }
#pragma unroll
      for (int i = 0; i < kRepM * kVec; ++i)
#pragma unroll
        for (int j = 0; j < kRepN * kVec; ++j) acc[i][j] += a_frag[i] * b_frag[j];
    }
    __syncthreads();  // everyone has finished reading before the next copy overwrites the tiles
  }

  // Each row of each piece is one float4 of C: inside C or wholly outside it (N % 4 == 0).
#pragma unroll
  for (int rm = 0; rm < kRepM; ++rm) {
#pragma unroll
    for (int i = 0; i < kVec; ++i) {
      const int row = thread_row + rm * kPieceStrideM + i;
      if (row >= rows_left) continue;
      float* c_row = c + (block_row + row) * n + block_col;  // C[row, block_col], 16-byte aligned
#pragma unroll
      for (int rn = 0; rn < kRepN; ++rn) {
        const int col = thread_col + rn * kPieceStrideN;
        if (col >= cols_left) continue;
        const float* sums = &acc[rm * kVec + i][rn * kVec];
        float4 result = make_float4(alpha * sums[0], alpha * sums[1], alpha * sums[2], alpha * sums[3]);
        if (beta != 0.0f) {  // beta == 0 never reads C: it may hold NaN
          const float4 old = *reinterpret_cast<const float4*>(c_row + col);
          result.x += beta * old.x;
          result.y += beta * old.y;
          result.z += beta * old.z;
          result.w += beta * old.w;
        }
        *reinterpret_cast<float4*>(c_row + col) = result;
      }
    }
  }
}

bool starts_on_16_bytes(const void* pointer) { return reinterpret_cast<std::uintptr_t>(pointer) % 16 == 0; }

}  // namespace vectorized
}  // namespace

void launch_04_vectorized(const Problem& problem, const float* a, const float* b, float* c) {
  using namespace vectorized;
  require_supported("04_vectorized", problem, kVec);
  KILN_CHECK(starts_on_16_bytes(a) && starts_on_16_bytes(b) && starts_on_16_bytes(c),
             "gemm ladder 04_vectorized: A, B and C must start on 16 bytes (float4 loads and stores)");
  // tiles_m * tiles_n <= M * N < 2^31: within gridDim.x's limit of 2^31 - 1.
  const std::int64_t tiles_m = (std::int64_t{problem.m} + kBM - 1) / kBM;
  const std::int64_t tiles_n = (std::int64_t{problem.n} + kBN - 1) / kBN;
  ladder::launch("gemm ladder 04_vectorized", vectorized_kernel, static_cast<unsigned>(tiles_m * tiles_n),
                 kThreads, 0, problem.m, problem.n, problem.k, problem.alpha, problem.beta, a, b, c);
}

}  // namespace kiln::kernels::gemm_ladder
