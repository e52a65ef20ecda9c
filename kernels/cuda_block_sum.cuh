// block_sum: a block's double sum in a fixed tree, for the CUDA reductions that give the same bits on every
// run (no atomics): the depthwise weight gradient, the bias gradient (cuda_depthwise.cu) and the gradient
// norm (cuda_grad_clip.cu). Included by .cu files only (it has device code).
#pragma once

#include "kernels/cuda_grid.hpp"

namespace kiln::kernels::cuda {

// The sum of `value` over the block's kThreadsPerBlock threads, returned to thread 0 (other threads get a
// partial). Every thread of the block must call it (it synchronizes). Each warp adds its 32 values with
// shuffles (all 32 lanes take part), warp 0 then adds the kWarpsPerBlock warp sums. Which thread adds which
// term depends only on kThreadsPerBlock. The final __syncthreads lets a caller that loops call it again
// without overwriting `warp_sums` while warp 0 still reads them.
__device__ inline double block_sum(double value) {
  __shared__ double warp_sums[kWarpsPerBlock];
  for (int offset = kWarpSize / 2; offset > 0; offset /= 2)
    value += __shfl_down_sync(kFullWarpMask, value, offset);
  const int lane = static_cast<int>(threadIdx.x) % kWarpSize,
            warp = static_cast<int>(threadIdx.x) / kWarpSize;
  if (lane == 0) warp_sums[warp] = value;
  __syncthreads();
  if (warp == 0) {
    value = lane < kWarpsPerBlock ? warp_sums[lane] : 0.0;
    for (int offset = kWarpSize / 2; offset > 0; offset /= 2)
      value += __shfl_down_sync(kFullWarpMask, value, offset);
  }
  __syncthreads();
  return value;
}

}  // namespace kiln::kernels::cuda
