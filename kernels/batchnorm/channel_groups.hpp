// When the vectorized train-mode batch norm (vectorized_batchnorm.hpp) takes its two passes a group of
// channels at a time, and how many channels a group holds.
//
// A train-mode kernel makes two passes, and the second cannot start on a channel before the first has
// summed all of it. Walking memory in order, the second pass meets [128, 16, 32, 32] (8 MiB of float x)
// after the first has pushed it through L2 and out: both passes stream from L3. But channel c's planes over
// the batch are a C-th of the tensor (512 KiB here), so taking both passes a group of channels at a time,
// the second finds the group's planes still in the core's L2, and the traffic left is the first read and
// the output's write. Measured on 2 cores of a Sapphire Rapids (2 MiB of L2 a core), `batchnorm_bench`,
// AVX-512, float, 2 threads, medians of 3:
//
//   [128, 16, 32, 32]  forward 445 -> 390 us,  backward 740 -> 600 us
//   [128, 32, 16, 16]  forward 207 -> 196 us,  backward 372 -> 300 us
//   [128, 64,  8,  8]  forward  97 (in order),  backward 166 -> 161 us
//
// and 10-20% on one thread. Where the walk in order already keeps a thread's share of the tensors in L2
// (that [128, 64, 8, 8] forward: 1 MiB a thread), it stays: there the grouped walk's jumps from one image's
// run of planes to the next image's only cost (95 -> 117 us).
//
// A group is the fewest whole channels whose planes make a run of at least one 4 KiB page (the hardware
// prefetchers start over at each page), and its planes over the batch, in every tensor the first pass
// reads and in the output the second pass writes through L2 beside them, must fit in three quarters of it.
// (The rule first counted only the tensors read, the output to go in the last quarter. On 2 cores of a
// Zen 5, 1 MiB of L2 a core, that let a group of 512 KiB read and 512 KiB written, and the grouped walk
// lost in every shape it took. `batchnorm_bench --benchmark_filter='run_float/forward_train_relu_cold'`,
// 2 threads, grouped then walking in order: [128, 16, 32, 32] 788 -> 515 us, [128, 32, 16, 16] 420 ->
// 293, [128, 64, 8, 8] 308 -> 143; a ResNet-20 training step's batch-norm forwards 7.9-8.7 -> 5.8-6.3 ms.
// On the 2 MiB cores above, counting the output takes the same groups as before.)
#pragma once

#include <algorithm>
#include <cstdint>

#include "kernels/batchnorm/batchnorm.hpp"

namespace kiln::kernels {

inline constexpr std::int64_t kChannelGroupRunBytes = 4096;

// Channels per group for the grouped walk over NCHW planes of `element_bytes` each, or 0 for the walk in
// memory order. tensors_read: the activation tensors the first pass touches (forward: x; backward: gy and x,
// y with a fused ReLU, and the gradient through it when the pass keeps that, batchnorm.hpp).
inline std::int64_t channel_group(const BatchNorm2dGeometry& g, std::int64_t element_bytes, int tensors_read,
                                  std::int64_t l2_bytes, int threads) {
  // Channels-last, a channel is a lane of every row: no group of channels is contiguous. Tried with groups
  // of whole cache lines of every row (32 bfloat16 channels), so that the second pass would read L2: slower,
  // [128, 512, 4, 4] bf16 backward from memory 610 -> 1022 us, the rows 1 KiB apart (a stride the hardware
  // prefetchers do not follow).
  if (g.channels_last) return 0;
  const std::int64_t l2_budget = l2_bytes * 3 / 4;
  const std::int64_t plane_bytes = g.height * g.width * element_bytes;
  const std::int64_t channel_bytes = plane_bytes * g.batch;  // one channel of one tensor, over the batch
  const std::int64_t channel_read = channel_bytes * tensors_read;  // what the first pass reads of it
  if (channel_read * g.channels <= l2_budget * threads) return 0;  // a thread's share stays in L2 already
  const std::int64_t group = std::clamp<std::int64_t>(kChannelGroupRunBytes / plane_bytes, 1, g.channels);
  if (group * (channel_read + channel_bytes) > l2_budget) return 0;  // a group and its output would not stay
  if ((g.channels + group - 1) / group < threads) return 0;  // too few groups for the threads
  return group;
}

}  // namespace kiln::kernels
