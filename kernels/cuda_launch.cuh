// What every CUDA kernel file shares: the block size, the grid cap, and the grid-stride loop that lets one
// launch of a capped grid cover any number of elements. Included by .cu files only (it has device code).
//
//   template <typename T>
//   __global__ void scale_kernel(std::int64_t n, T factor, T* x) {
//     for (std::int64_t i = first_thread_index(); i < n; i += grid_thread_count()) x[i] *= factor;
//   }
//   scale_kernel<<<grid_blocks(n), kThreadsPerBlock>>>(n, factor, x);
//   kiln::cuda::check_launch("scale");
#pragma once

#include <algorithm>
#include <cstdint>

namespace kiln::kernels::cuda {

// 8 warps: enough threads per block to hide memory latency, few enough that a block's shared-memory
// reductions stay small. Kernels that reduce across a block assume exactly this many threads.
inline constexpr int kThreadsPerBlock = 256;
inline constexpr int kWarpSize = 32;
inline constexpr int kWarpsPerBlock = kThreadsPerBlock / kWarpSize;
// Every lane of a warp takes part in a shuffle.
inline constexpr unsigned kFullWarpMask = 0xffffffffu;
// Grids stay at most this many blocks (the old gridDim.y/z limit, ample for gridDim.x): far more than
// the 132 multiprocessors of an H100 keep resident, so nothing is lost, and grid-stride loops cover the
// rest.
inline constexpr std::int64_t kMaxGridBlocks = 65535;

// Blocks for `work_items` units (elements, rows, planes...) of which one block takes `items_per_block`,
// capped at kMaxGridBlocks. work_items must be > 0: a grid of 0 blocks is a launch error.
inline unsigned grid_blocks(std::int64_t work_items, std::int64_t items_per_block = kThreadsPerBlock) {
  return static_cast<unsigned>(
      std::min((work_items + items_per_block - 1) / items_per_block, kMaxGridBlocks));
}

// The grid-stride loop's start and step for one thread per element, in int64 (a tensor may hold more than
// 2^31 elements).
__device__ inline std::int64_t first_thread_index() {
  return static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
}
__device__ inline std::int64_t grid_thread_count() {
  return static_cast<std::int64_t>(gridDim.x) * blockDim.x;
}

}  // namespace kiln::kernels::cuda
