// Split-K: a step whose output is small beside its reduction cuts the reduction into chunks, computes each
// chunk's partial output in its own blocks, and adds the partials up in a fixed order. Every backward-weight
// step (03, 04, 05, 07, 08) and the fp32 steps 06 (forward, and backward data beside its stride phases) run
// this way; one concept, used the same way by all of them, so it lives here once, and each step file keeps
// what it teaches.
//
// Why. gw is small and its reduction long: ResNet-20's first stage at batch 128 has gw = 16 x 144 and N*P*Q =
// 131,072 positions. One block per output tile would be one or two blocks on a GPU of 132 multiprocessors.
// So the reduction is cut into `splits` chunks of `chunk` indices: block (tile, z) computes its tile over
// chunk z alone, into partials[z] (scratch, splits x outputs floats), and sum_splits_kernel then writes
//   out[e] = (partials[0][e] + partials[8][e] + ...) + (partials[1][e] + partials[9][e] + ...) + ...
// eight interleaved runs of splits, each summed in split order, added in run order: the same bits on every
// run, no atomics. (One thread per element summing all the splits in a row would be a chain of `splits`
// dependent loads, on only outputs / 256 blocks: for that first stage, 256 loads each on 9 blocks.)
//
// How many. Enough blocks for about four per multiprocessor (4 x 132 = 528 on an H100: the blocks are
// short-lived, and the last wave is then a small part of the run), but no chunk shorter than a step's minimum
// (512 positions unless it says otherwise), so that each block's fixed costs (filling its pipeline, its
// partial tile written and read back once) stay small beside the chunk's loads. With one split (a large
// output) the step's kernel writes the output directly and no scratch is used. For the ResNet layer above,
// with 16 x 128 tiles: 2 tiles, 256 splits of 512 positions.
#pragma once

#include <algorithm>
#include <cstdint>

#include "kernels/ladder/launch.cuh"

namespace kiln::kernels::conv2d_ladder {
namespace {

constexpr std::int64_t kSplitBlocksPerMultiprocessor = 4;
constexpr std::int64_t kMinSplitPositions = 512;
constexpr int kSumRuns = 8;                 // a sum block's warps, each one run of splits
constexpr int kSumThreads = kSumRuns * 32;  // 32 consecutive outputs per block

struct Split {
  int splits;  // chunks, >= 1; splits x tiles blocks
  int chunk;   // reduction indices per chunk, a whole number of the step's tiles (the last may be shorter)
};

// The split of a reduction of `length` indices for a step with `tiles` output tiles that walks `tile_length`
// indices per pipeline stage, no chunk shorter than `min_chunk` (unless the whole reduction is: then one
// chunk, which may be empty).
inline Split split_reduction(std::int64_t length, std::int64_t tiles, int tile_length,
                             std::int64_t min_chunk = kMinSplitPositions) {
  if (length < 2 * min_chunk) return {1, static_cast<int>(length)};
  const std::int64_t target_blocks = kSplitBlocksPerMultiprocessor * ladder::multiprocessors();
  std::int64_t splits =
      std::min(target_blocks / tiles, length / min_chunk);  // no more blocks than the target
  splits = std::max<std::int64_t>(1, splits);
  std::int64_t chunk = ((length + splits - 1) / splits + tile_length - 1) / tile_length * tile_length;
  chunk = std::min(chunk, length);
  splits = (length + chunk - 1) / chunk;  // every split has at least one index
  return {static_cast<int>(splits), static_cast<int>(chunk)};
}

// out[e] = the sum over z of partials[z][e], in a fixed order (the top of the file): block b sums outputs
// 32 b .. 32 b + 31, its warp `run` the splits run, run + 8, run + 16, ... of each, lane by lane (each load a
// 128-byte line shared by the warp); then thread `lane` of warp 0 adds the eight runs' totals in run order.
__global__ void __launch_bounds__(kSumThreads)
    sum_splits_kernel(int outputs, int splits, const float* __restrict__ partials, float* __restrict__ out) {
  __shared__ float run_totals[kSumRuns][32];
  const int lane = static_cast<int>(threadIdx.x) % 32, run = static_cast<int>(threadIdx.x) / 32;
  const std::int64_t index = static_cast<std::int64_t>(blockIdx.x) * 32 + lane;
  float total = 0.0f;
  if (index < outputs) {
    for (int z = run; z < splits; z += kSumRuns)
      total += partials[z * static_cast<std::int64_t>(outputs) + index];
  }
  run_totals[run][lane] = total;
  __syncthreads();
  if (run != 0 || index >= outputs) return;
  float sum = run_totals[0][lane];
#pragma unroll
  for (int r = 1; r < kSumRuns; ++r) sum += run_totals[r][lane];
  out[index] = sum;
}

// Runs a step split-K: chooses the split, then calls launch_kernel(grid, chunk, out) once, grid = (tiles,
// splits), out = `output` itself with one split, else a scratch buffer of splits x `outputs` floats whose
// partial results sum_splits_kernel then adds into `output`. `sum_name` names that launch in errors.
template <typename LaunchKernel>
void run_split_k(const char* sum_name, std::int64_t tiles, std::int64_t length, int tile_length,
                 std::int64_t outputs, float* output, LaunchKernel&& launch_kernel,
                 std::int64_t min_chunk = kMinSplitPositions) {
  // Every tile holds at least one output (< 2^31 of them): the count fits gridDim.x; splits <= 528 (no more
  // than the target of blocks) fits gridDim.y's 65535.
  const Split split = split_reduction(length, tiles, tile_length, min_chunk);
  const dim3 grid(static_cast<unsigned>(tiles), static_cast<unsigned>(split.splits));
  if (split.splits == 1) {
    launch_kernel(grid, split.chunk, output);
    return;
  }
  const ladder::Scratch partials(static_cast<std::size_t>(split.splits * outputs) * sizeof(float));
  launch_kernel(grid, split.chunk, partials.as<float>());
  const auto sum_blocks = static_cast<unsigned>((outputs + 31) / 32);
  ladder::launch(sum_name, sum_splits_kernel, dim3(sum_blocks), dim3(kSumThreads), 0,
                 static_cast<int>(outputs), split.splits, static_cast<const float*>(partials.as<float>()),
                 output);
}

}  // namespace
}  // namespace kiln::kernels::conv2d_ladder
