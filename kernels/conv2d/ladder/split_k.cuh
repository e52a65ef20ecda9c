// Split-K for the backward-weight steps (03, 04, 05 and 07): how their long reduction over the batch's
// positions is cut into chunks, and the ordered sum that puts the chunks' partial results together. One
// concept, used the same way by four steps, so it lives here once; each step file keeps what it teaches.
// Included by .cu files only.
//
// Why. gw is small and its reduction long: ResNet-20's first stage at batch 128 has gw = 16 x 144 and N*P*Q =
// 131,072 positions. One block per output tile would be one or two blocks on a GPU of 132 multiprocessors.
// So the positions are cut into `splits` chunks of `chunk` positions: block (tile, z) computes its tile over
// chunk z alone, into partials[z] (scratch, splits x K x R*S*C floats), and sum_splits_kernel then writes
//   gw[e] = partials[0][e] + partials[1][e] + ... + partials[splits - 1][e]
// in that order, one thread per element: the same bits on every run, no atomics.
//
// How many. Enough blocks for about four per multiprocessor (4 x 132 = 528 on an H100: the blocks are
// short-lived, and the last wave is then a small part of the run), but no chunk shorter than 512 positions,
// so that each block's fixed costs (filling its pipeline, its partial tile written and read back once) stay
// small beside the chunk's loads. With one split (large outputs) the step's kernel writes gw directly and no
// scratch is used. For the ResNet layer above, with 16 x 128 tiles: 2 tiles, 256 splits of 512 positions.
#pragma once

#include <algorithm>
#include <cstdint>

#include "kernels/ladder/launch.cuh"

namespace kiln::kernels::conv2d_ladder {
namespace {

constexpr std::int64_t kSplitBlocksPerMultiprocessor = 4;
constexpr std::int64_t kMinSplitPositions = 512;
constexpr int kSumThreads = 256;

struct Split {
  int splits;  // chunks, >= 1; splits x tiles blocks
  int chunk;   // positions per chunk, a whole number of the step's tiles (the last chunk may be shorter)
};

// The split of `positions` for a step with `tiles` output tiles that walks `tile_positions` positions per
// pipeline stage.
inline Split split_reduction(std::int64_t positions, std::int64_t tiles, int tile_positions) {
  const std::int64_t target_blocks = kSplitBlocksPerMultiprocessor * ladder::multiprocessors();
  std::int64_t splits = (target_blocks + tiles - 1) / tiles;                             // >= 1
  splits = std::max<std::int64_t>(1, std::min(splits, positions / kMinSplitPositions));  // chunks of >= 512
  std::int64_t chunk = ((positions + splits - 1) / splits + tile_positions - 1) / tile_positions * tile_positions;
  chunk = std::min(chunk, positions);
  splits = (positions + chunk - 1) / chunk;  // every split has at least one position
  return {static_cast<int>(splits), static_cast<int>(chunk)};
}

// gw[e] = partials[0][e] + ... + partials[splits - 1][e], in that order: deterministic, no atomics.
__global__ void __launch_bounds__(kSumThreads)
    sum_splits_kernel(int outputs, int splits, const float* __restrict__ partials, float* __restrict__ gw) {
  const std::int64_t index = static_cast<std::int64_t>(blockIdx.x) * kSumThreads + threadIdx.x;
  if (index >= outputs) return;
  float total = 0.0f;
  for (int z = 0; z < splits; ++z) total += partials[z * static_cast<std::int64_t>(outputs) + index];
  gw[index] = total;
}

// Runs a backward-weight step split-K: chooses the split, then calls launch_kernel(grid, chunk, out) once,
// grid = (tiles, splits), out = gw itself with one split, else a scratch buffer of splits x `outputs` floats
// whose partial results sum_splits_kernel then adds into gw. `sum_name` names that launch in errors.
template <typename LaunchKernel>
void run_split_k(const char* sum_name, std::int64_t tiles, std::int64_t positions, int tile_positions,
                 std::int64_t outputs, float* gw, LaunchKernel&& launch_kernel) {
  // Every tile holds at least one element of gw (< 2^31 of them): the count fits gridDim.x; splits <= 528
  // (no more than the target of blocks) fits gridDim.y's 65535.
  const Split split = split_reduction(positions, tiles, tile_positions);
  const dim3 grid(static_cast<unsigned>(tiles), static_cast<unsigned>(split.splits));
  if (split.splits == 1) {
    launch_kernel(grid, split.chunk, gw);
    return;
  }
  const ladder::Scratch partials(static_cast<std::size_t>(split.splits * outputs) * sizeof(float));
  launch_kernel(grid, split.chunk, partials.as<float>());
  const auto sum_blocks = static_cast<unsigned>((outputs + kSumThreads - 1) / kSumThreads);
  ladder::launch(sum_name, sum_splits_kernel, dim3(sum_blocks), dim3(kSumThreads), 0, static_cast<int>(outputs),
                 split.splits, static_cast<const float*>(partials.as<float>()), gw);
}

}  // namespace
}  // namespace kiln::kernels::conv2d_ladder
