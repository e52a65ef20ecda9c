// block_sum: a block's double sum in a fixed tree, for the CUDA reductions that give the same bits on every
// run (no atomics): the depthwise weight gradient, the bias gradient (cuda_depthwise.cu), the gradient norm
// (cuda_grad_clip.cu) and batch norm's pairs of sums (cuda_batchnorm.cu). Included by .cu files only (it has
// device code).
//
// What is summed is a double, or a small struct of doubles summed member by member (batch norm's PairSums):
// any trivially constructible type (it lives in a __shared__ array) that is zero when value-initialized and
// has `+` and a `shuffle_down` overload found beside it, as double's below.
#pragma once

#include "kernels/cuda_grid.hpp"

namespace kiln::kernels::cuda {

__device__ inline double shuffle_down(double value, int offset) {
  return __shfl_down_sync(kFullWarpMask, value, offset);
}

// The sum of `value` over the warp's 32 lanes, in lane 0 (every lane must call it).
template <typename Sums>
__device__ Sums warp_sum(Sums value) {
  for (int offset = kWarpSize / 2; offset > 0; offset /= 2) value = value + shuffle_down(value, offset);
  return value;
}

// The sum of `value` over the block's kThreadsPerBlock threads, returned to thread 0 (other threads get a
// partial). Every thread of the block must call it (it synchronizes). Each warp adds its 32 values with
// shuffles (all 32 lanes take part), warp 0 then adds the kWarpsPerBlock warp sums, its lanes past them
// adding zeros. Which thread adds which term depends only on kThreadsPerBlock. The final __syncthreads lets a
// caller that loops call it again without overwriting `warp_sums` while warp 0 still reads them.
template <typename Sums>
__device__ Sums block_sum(Sums value) {
  __shared__ Sums warp_sums[kWarpsPerBlock];
  value = warp_sum(value);
  const int lane = static_cast<int>(threadIdx.x) % kWarpSize,
            warp = static_cast<int>(threadIdx.x) / kWarpSize;
  if (lane == 0) warp_sums[warp] = value;
  __syncthreads();
  if (warp == 0) value = warp_sum(lane < kWarpsPerBlock ? warp_sums[lane] : Sums{});
  __syncthreads();
  return value;
}

}  // namespace kiln::kernels::cuda
