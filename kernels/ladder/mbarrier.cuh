// Shared-memory barriers with a transaction count (mbarrier, sm_90): how a thread learns that bytes written
// by the tensor memory accelerator (tma.cuh) have landed, and how consumers tell a producer that a buffer is
// free again. Included by .cu files only; the CPU emulator (tests/emulation) defines the same functions.
//
// Why not __syncthreads. A barrier of the whole block makes every warp wait for the slowest at every tile.
// Hopper's fast kernels split the block by role instead: one producer warp issues copies, consumer
// warpgroups multiply, and each side waits only for what it needs, a buffer filled or a buffer freed. An
// mbarrier is that wait, one 8-byte word of shared memory per buffer and direction.
//
// The word counts down two things in its current phase: arrivals (set by mbarrier_init, restored at every
// phase) and transaction bytes (raised by mbarrier_arrive_expect_tx, lowered by each tensor copy that names
// the barrier as it lands). When both reach zero the phase completes, its parity flips, and the arrival count
// starts again: so one barrier serves every trip round a ring of buffers.
//
//   producer (one thread)                            consumers
//   mbarrier_wait(empty[s], ..)   (after 1st lap)    mbarrier_wait(full[s], lap parity)
//   mbarrier_arrive_expect_tx(full[s], bytes)        read stage s (wgmma), and once those reads are done:
//   tma_load(stage s, .., full[s]) ...               mbarrier_arrive(empty[s])
//
// A waiter names the parity of the phase it waits to see complete: lap L of a ring waits for parity L % 2.
// (stage_ring.cuh writes this protocol once for the steps that use it.)
//
// Setup: one thread inits each barrier, then fence_mbarrier_init() and a __syncthreads() before any thread
// (or the copy engine) uses it.
#pragma once

#include <cstdint>

#include "kernels/ladder/cp_async.cuh"

namespace kiln::kernels::ladder {

#ifdef KILN_CUDA_EMULATION
// The emulator (tests/emulation/cuda_emulator.cpp): barriers live beside the dynamic shared memory, keyed by
// their address, so it can check their use. A wait blocks the thread's fiber until the phase completes; the
// tensor copies that name a barrier land when some thread waits on it and not before (a tile read before its
// wait is stale, as it may be on the GPU). Using a barrier before init and fence, more arrivals than a phase
// expects, copies delivering more bytes than announced, and a block that ends with copies in flight are
// errors; a wait that can never complete is a deadlock, reported with where every thread waits.
void mbarrier_init(std::uint64_t* barrier, int arrivals);
void fence_mbarrier_init();
void mbarrier_arrive(std::uint64_t* barrier);
void mbarrier_arrive_expect_tx(std::uint64_t* barrier, int bytes);
void mbarrier_wait(std::uint64_t* barrier, int parity);
#else

// Sets up `barrier` (8 bytes of shared memory, 8-byte aligned) to complete a phase after `arrivals` arrivals
// and no outstanding transaction bytes. One thread calls it.
__device__ __forceinline__ void mbarrier_init(std::uint64_t* barrier, int arrivals) {
#if __CUDA_ARCH__ >= 900
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(shared_address(barrier)), "r"(arrivals)
               : "memory");
#else
  (void)barrier, (void)arrivals;
  __trap();
#endif
}

// Makes the initialized barriers visible to the other threads' and the copy engine's operations; followed by
// a __syncthreads().
__device__ __forceinline__ void fence_mbarrier_init() {
#if __CUDA_ARCH__ >= 900
  asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
#endif
}

// One arrival; with release semantics, so the caller's earlier reads of the buffer happen before the
// phase completes.
__device__ __forceinline__ void mbarrier_arrive(std::uint64_t* barrier) {
#if __CUDA_ARCH__ >= 900
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(shared_address(barrier)) : "memory");
#else
  (void)barrier;
#endif
}

// Announces `bytes` more bytes of tensor copies for the current phase, and arrives.
__device__ __forceinline__ void mbarrier_arrive_expect_tx(std::uint64_t* barrier, int bytes) {
#if __CUDA_ARCH__ >= 900
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(shared_address(barrier)),
               "r"(bytes)
               : "memory");
#else
  (void)barrier, (void)bytes;
#endif
}

// Until the phase of parity `parity` has completed; with acquire semantics, so the bytes it counted and the
// arrivers' earlier accesses are visible after it. try_wait suspends the thread for a while in hardware
// before it answers no, so the loop does not hammer the word.
__device__ __forceinline__ void mbarrier_wait(std::uint64_t* barrier, int parity) {
#if __CUDA_ARCH__ >= 900
  const std::uint32_t address = shared_address(barrier);
  std::uint32_t done = 0;
  do {
    asm volatile(
        "{\n.reg .pred complete;\n"
        "mbarrier.try_wait.parity.shared::cta.b64 complete, [%1], %2;\n"
        "selp.u32 %0, 1, 0, complete;\n}\n"
        : "=r"(done)
        : "r"(address), "r"(parity)
        : "memory");
  } while (done == 0);
#else
  (void)barrier, (void)parity;
#endif
}

#endif

}  // namespace kiln::kernels::ladder
