// The warp-specialized steps' pipeline (GEMM 09, the convolution's 08 steps): a ring of shared-memory stages
// that one producer thread fills with tensor copies (tma.cuh) and consumer warpgroups read with wgmma
// (wgmma.cuh), each stage handed from one side to the other by two mbarriers (mbarrier.cuh). Included by .cu
// files only.
//
// k-tile t lives in stage t % Stages, on lap t / Stages of the ring:
//   producer (one thread)                          consumers (each warpgroup)
//   produce(t, bytes): on lap L >= 1, wait until    consume(t): wait until k-tile t's bytes have landed
//     every consumer released k-tile t - Stages      (full[s], parity L % 2)
//     (empty[s], parity (L - 1) % 2); then          ... wgmma on the stage, and once a wgmma_wait has
//     announce `bytes` on full[s], and return it      retired them, one thread of the warpgroup:
//     for the copies to complete on                  release(t): the stage may be refilled (empty[s])
// `full` expects one arrival (the producer's announcement) and then the bytes; `empty` one arrival per
// consumer warpgroup. The producer runs up to Stages k-tiles ahead of the slowest consumer, and nobody
// waits for the block.
#pragma once

#include <cstdint>

#include "kernels/ladder/mbarrier.cuh"

namespace kiln::kernels::ladder {

// How many stages of `stage_bytes` a ring holds: as many as fit in 200 KiB of the 227 KiB a block may have
// (the rest is the barriers and the alignment's slack), and no more than 8.
constexpr int stages_that_fit(int stage_bytes) {
  return 200 * 1024 / stage_bytes < 8 ? 200 * 1024 / stage_bytes : 8;
}

template <int Stages, int Consumers>
struct StageRing {
  std::uint64_t* full;   // [Stages], in shared memory
  std::uint64_t* empty;  // [Stages], in shared memory

  // The shared memory the barriers take: place them after the stages.
  static constexpr int kBarrierBytes = 2 * Stages * static_cast<int>(sizeof(std::uint64_t));

  // The ring whose 2 Stages barriers start at `barriers` (8-byte aligned shared memory).
  __device__ static StageRing at(unsigned char* barriers) {
    auto* const words = reinterpret_cast<std::uint64_t*>(barriers);
    return StageRing{words, words + Stages};
  }

  __device__ static int stage(int t) { return t % Stages; }

  // One thread sets the barriers up; a __syncthreads of the whole block must follow before any use.
  __device__ void init() const {
    for (int s = 0; s < Stages; ++s) {
      mbarrier_init(&full[s], 1);
      mbarrier_init(&empty[s], Consumers);
    }
    fence_mbarrier_init();
  }

  // Producer, k-tile t: waits until its stage is free, announces the `bytes` the stage's copies will
  // deliver, and returns the barrier they complete on.
  __device__ std::uint64_t* produce(int t, int bytes) const {
    const int s = stage(t), lap = t / Stages;
    if (lap > 0) mbarrier_wait(&empty[s], (lap - 1) % 2);
    mbarrier_arrive_expect_tx(&full[s], bytes);
    return &full[s];
  }

  // Consumer, k-tile t: until its bytes have landed.
  __device__ void consume(int t) const { mbarrier_wait(&full[stage(t)], (t / Stages) % 2); }

  // Consumer, one thread per warpgroup, once a wgmma_wait has retired every wgmma reading k-tile t.
  __device__ void release(int t) const { mbarrier_arrive(&empty[stage(t)]); }
};

}  // namespace kiln::kernels::ladder
