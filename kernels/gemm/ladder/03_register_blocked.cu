// GEMM ladder, step 03: a tile of C per thread, held in registers. A block of 256 threads computes a
// 128 x 128 tile of C; each thread owns an 8 x 8 piece of it (64 accumulators in registers). At each step
// kk along K, the thread loads 8 values of A's column kk (its 8 rows) and 8 values of B's row kk (its 8
// columns) from shared memory into registers and adds their outer product to its 64 sums: 16 shared loads
// for 64 fused multiply-adds.
//
// What changes from step 02: there, each multiply-add needed two shared-memory loads, so the kernel ran at
// the speed of shared memory, not of the FMA units. Blocking by 8 x 8 in registers makes every loaded value
// serve 8 multiply-adds: 8x fewer shared loads per flop (and a bigger block tile, 128 instead of 32, cuts
// global traffic per flop by another 4x). The FMA units now set the pace, with the loads as overhead.
//
// Tiling: block tile BM x BN x BK = 128 x 128 x 8, 256 threads, thread tile TM x TN = 8 x 8.
//   Thread t computes C rows block_row + (t / 16) * 8 + i and columns block_col + (t % 16) * 8 + j, i, j < 8.
//   Copies (each thread 4 elements of each tile, element e = t + 256 p, p < 4):
//     A: a_tile[kk][r] = A[block_row + r, k0 + kk], r = e / 8, kk = e % 8: 8 threads read a row's 8
//        consecutive floats (32 bytes), and the tile is stored transposed, so that the inner loop reads
//        the thread's 8 rows of column kk as 8 consecutive floats of one shared row, as it does for B.
//     B: b_tile[kk][col] = B[k0 + kk, block_col + col], kk = e / 128, col = e % 128: a warp reads 32
//        consecutive floats of a row of B.
//   Shared memory: a_tile 8 x (128 + 4) + b_tile 8 x 128 floats = 8,320 bytes.
// Bank conflicts: the transposed store a_tile[e % 8][e / 8] would put a warp's 32 stores in only 4 banks
// (8-way conflicts) with rows of 128 floats; padding the rows to 132 moves row kk by 4 banks, so
// bank = (4 kk + r) % 32 is distinct for the warp's 8 values of kk and 4 of r. The inner loop's reads are
// not conflict-free: a warp's 16 thread columns read b_tile at a stride of 8 floats, 4 to a bank. Step 04
// rearranges the threads to remove that.
//
// Edges: tiles that run past M, N or K are zero-filled in shared memory, stores outside C are skipped;
// M or N below 128 just leave threads idle. Grid: 1-D, one block per tile of C (gridDim.y stops at 65535).
#include <cstdint>

#include "kernels/gemm/ladder/ladder.hpp"
#include "kernels/ladder/launch.cuh"

namespace kiln::kernels::gemm_ladder {
namespace {
namespace register_blocked {  // this step's names (its ladder compiles as one unit)

constexpr int kBM = 128, kBN = 128, kBK = 8;         // block tile
constexpr int kTM = 8, kTN = 8;                      // thread tile
constexpr int kThreadCols = kBN / kTN;               // 16 threads across the block tile's columns
constexpr int kThreads = (kBM / kTM) * kThreadCols;  // 256
constexpr int kAPad = 4;                             // a_tile row padding: see the bank-conflict note above
constexpr int kALoads = kBM * kBK / kThreads;        // 4 elements of the A tile per thread
constexpr int kBLoads = kBK * kBN / kThreads;        // 4 of the B tile
static_assert(kBM * kBK % kThreads == 0 && kBK * kBN % kThreads == 0, "tiles must split evenly");

// a: A[M, K], b: B[K, N], c: C[M, N], all row-major and dense.
__global__ void __launch_bounds__(kThreads)
    register_blocked_kernel(int m, int n, int k, float alpha, float beta, const float* __restrict__ a,
                            const float* __restrict__ b, float* __restrict__ c) {
  __shared__ float a_tile[kBK][kBM + kAPad];  // transposed: A[block_row + r, k0 + kk] at a_tile[kk][r]
  __shared__ float b_tile[kBK][kBN];          // B[k0 + kk, block_col + col] at b_tile[kk][col]

  const int tiles_n = (n - 1) / kBN + 1;  // ceil(N / 128), without N + 127 overflowing
  const int block_row = static_cast<int>(blockIdx.x) / tiles_n * kBM;
  const int block_col = static_cast<int>(blockIdx.x) % tiles_n * kBN;
  // Offsets inside the tile are compared with what is left of C, so no index ever passes M or N.
  const int rows_left = m - block_row, cols_left = n - block_col;  // >= 1
  const int tid = static_cast<int>(threadIdx.x);
  const int thread_row = tid / kThreadCols * kTM;  // first of this thread's 8 rows in the block tile
  const int thread_col = tid % kThreadCols * kTN;  // first of its 8 columns

  float acc[kTM][kTN] = {};
  const int k_tiles = (k - 1) / kBK + 1;
  for (int t = 0; t < k_tiles; ++t) {
    const int k0 = t * kBK, k_left = k - k0;  // k_left >= 1
    // Copy the tiles, zero outside the matrices; an index is formed only when it is inside.
#pragma unroll
    for (int p = 0; p < kALoads; ++p) {
      const int e = tid + p * kThreads, r = e / kBK, kk = e % kBK;
      a_tile[kk][r] = r < rows_left && kk < k_left ? a[(block_row + r) * k + k0 + kk] : 0.0f;
    }
#pragma unroll
    for (int p = 0; p < kBLoads; ++p) {
      const int e = tid + p * kThreads, kk = e / kBN, col = e % kBN;
      b_tile[kk][col] = kk < k_left && col < cols_left ? b[(k0 + kk) * n + block_col + col] : 0.0f;
    }
    __syncthreads();  // the tiles have landed before anyone reads them

#pragma unroll
    for (int kk = 0; kk < kBK; ++kk) {
      float a_frag[kTM], b_frag[kTN];  // A[rows, kk] and B[kk, columns] of this thread's tile
#pragma unroll
      for (int i = 0; i < kTM; ++i) a_frag[i] = a_tile[kk][thread_row + i];
#pragma unroll
      for (int j = 0; j < kTN; ++j) b_frag[j] = b_tile[kk][thread_col + j];
#pragma unroll
      for (int i = 0; i < kTM; ++i)
#pragma unroll
        for (int j = 0; j < kTN; ++j) acc[i][j] += a_frag[i] * b_frag[j];
    }
    __syncthreads();  // everyone has finished reading before the next copy overwrites the tiles
  }

  // C[block_row + thread_row + i, block_col + thread_col + j] for the (i, j) inside C.
#pragma unroll
  for (int i = 0; i < kTM; ++i) {
    if (thread_row + i >= rows_left) break;
    float* c_row = c + (block_row + thread_row + i) * n + block_col;  // C[row, block_col]
#pragma unroll
    for (int j = 0; j < kTN; ++j) {
      const int col = thread_col + j;
      if (col >= cols_left) break;
      float result = alpha * acc[i][j];
      if (beta != 0.0f) result += beta * c_row[col];  // beta == 0 never reads C: it may hold NaN
      c_row[col] = result;
    }
  }
}

}  // namespace register_blocked
}  // namespace

void launch_03_register_blocked(const Problem& problem, const float* a, const float* b, float* c) {
  using namespace register_blocked;
  require_supported("03_register_blocked", problem, 1);
  // tiles_m * tiles_n <= M * N < 2^31: within gridDim.x's limit of 2^31 - 1.
  const std::int64_t tiles_m = (std::int64_t{problem.m} + kBM - 1) / kBM;
  const std::int64_t tiles_n = (std::int64_t{problem.n} + kBN - 1) / kBN;
  ladder::launch("gemm ladder 03_register_blocked", register_blocked_kernel,
                 static_cast<unsigned>(tiles_m * tiles_n), kThreads, 0, problem.m, problem.n, problem.k,
                 problem.alpha, problem.beta, a, b, c);
}

}  // namespace kiln::kernels::gemm_ladder
