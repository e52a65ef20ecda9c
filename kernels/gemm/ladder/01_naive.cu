// GEMM ladder, step 01: one thread per element of C. Thread (row, col) walks the K loop in a register,
//
//   acc = sum over k of A[row, k] * B[k, col],   C[row, col] = alpha * acc (+ beta * C[row, col])
//
// reading both operands straight from global memory: 2K loads for 2K flops, so the kernel is bound by
// memory traffic (the caches catch some of the reuse, nothing in the kernel asks for it). This is the
// baseline every later step is measured against.
//
// The one thing to get right here is which thread index runs along which matrix dimension. threadIdx.x,
// the index that changes fastest within a warp, runs along N (the columns):
//   - the 32 threads of a warp share one row and take 32 consecutive columns, so at each k they read
//     B[k, col .. col + 31], 128 contiguous bytes: one coalesced transaction;
//   - they all read the same A[row, k]: one broadcast;
//   - they write C[row, col .. col + 31], again contiguous.
// With threadIdx.x along M instead, a warp would read 32 values of A strided by K floats and write C
// strided by N floats: 32 separate transactions for every load, several times slower.
//
// Block: 32 x 8 threads (kBlockCols along N, kBlockRows along M), one element of C each: an 8 x 32 tile of C
// per block. Grid: 1-D, one block per tile, tile t covering rows (t / tiles_n) * 8 and columns
// (t % tiles_n) * 32; 1-D because gridDim.y stops at 65535 and M alone may be 2^31 - 1. No shared memory.
#include <cstdint>

#include "kernels/gemm/ladder/ladder.hpp"
#include "kernels/ladder/launch.cuh"

namespace kiln::kernels::gemm_ladder {
namespace {
namespace naive {  // this step's names (its ladder compiles as one unit)

constexpr int kBlockCols = 32;  // threadIdx.x: one warp along a row of C
constexpr int kBlockRows = 8;   // threadIdx.y
constexpr int kThreads = kBlockCols * kBlockRows;

// a: A[M, K], b: B[K, N], c: C[M, N], all row-major and dense.
__global__ void __launch_bounds__(kThreads)
    naive_kernel(int m, int n, int k, float alpha, float beta, const float* __restrict__ a,
                 const float* __restrict__ b, float* __restrict__ c) {
  const int tiles_n = (n - 1) / kBlockCols + 1;  // ceil(N / 32), without N + 31 overflowing
  const int block_row = static_cast<int>(blockIdx.x) / tiles_n * kBlockRows;
  const int block_col = static_cast<int>(blockIdx.x) % tiles_n * kBlockCols;
  // Compared as offsets inside the tile, so no index ever passes M or N (which may be near 2^31).
  if (static_cast<int>(threadIdx.y) >= m - block_row || static_cast<int>(threadIdx.x) >= n - block_col)
    return;
  const int row = block_row + static_cast<int>(threadIdx.y);
  const int col = block_col + static_cast<int>(threadIdx.x);

  const float* a_row = a + row * k;  // A[row, 0 .. K)
  const float* b_col = b + col;      // B[0, col], then every N floats
  float acc = 0.0f;
  for (int i = 0; i < k; ++i) acc += a_row[i] * b_col[i * n];

  // beta == 0 never reads C: it may hold NaN.
  float result = alpha * acc;
  if (beta != 0.0f) result += beta * c[row * n + col];
  c[row * n + col] = result;
}

}  // namespace naive
}  // namespace

void launch_01_naive(const Problem& problem, const float* a, const float* b, float* c) {
  using namespace naive;
  require_supported("01_naive", problem, 1);
  // tiles_m * tiles_n <= M * N < 2^31: within gridDim.x's limit of 2^31 - 1.
  const std::int64_t tiles_m = (std::int64_t{problem.m} + kBlockRows - 1) / kBlockRows;
  const std::int64_t tiles_n = (std::int64_t{problem.n} + kBlockCols - 1) / kBlockCols;
  const dim3 block(kBlockCols, kBlockRows);
  ladder::launch("gemm ladder 01_naive", naive_kernel, static_cast<unsigned>(tiles_m * tiles_n), block, 0,
                 problem.m, problem.n, problem.k, problem.alpha, problem.beta, a, b, c);
}

}  // namespace kiln::kernels::gemm_ladder
