// Asynchronous copies from global to shared memory (cp.async, sm_80 and later): a thread issues a copy and
// goes on; the bytes land in shared memory while the warp computes on the tile before. Copies are grouped
// (commit_group) and waited for by group (wait_group<N>: all but the N most recent groups have landed), which
// is how a kernel keeps N tiles in flight, double- or triple-buffered. Included by .cu files only.
//
//   for each tile t:
//     copy tile t + stages - 1 (cp_async_16 ...); cp_async_commit();
//     cp_async_wait<stages - 1>(); __syncthreads();   // tile t has landed, for every thread's copies
//     compute on tile t; __syncthreads();             // before its buffer is overwritten
//
// A copy whose source lies outside the matrix is issued with a source size of 0: the hardware writes zeros
// instead of reading, so edge tiles are zero-padded without a branch around the copy (the source address must
// still be a valid pointer; pass the matrix's base).
#pragma once

#include <cstdint>

namespace kiln::kernels::ladder {

#ifdef KILN_CUDA_EMULATION
// The CPU emulator (tests/emulation/cuda_emulator.cpp) defines these with the same contract: a copy is only
// queued when issued and lands when a wait_group covers its group, so a kernel that reads a tile before
// waiting for it reads stale data there too.
// The shared-memory address of a pointer into the dynamic shared memory (what a wgmma descriptor holds).
std::uint32_t shared_address(const void* shared_pointer);
void cp_async_16(void* shared_destination, const void* global_source, bool in_bounds);
void cp_async_4(void* shared_destination, const void* global_source, bool in_bounds);
void cp_async_commit();
void cp_async_wait_pending(int pending);
template <int pending>
void cp_async_wait() {
  cp_async_wait_pending(pending);
}
#else
// The shared-memory address of a __shared__ pointer, as cp.async and ldmatrix take it.
__device__ inline std::uint32_t shared_address(const void* shared_pointer) {
  return static_cast<std::uint32_t>(__cvta_generic_to_shared(shared_pointer));
}

// 16 bytes (4 floats, 8 bfloat16), global -> shared, bypassing L1 (.cg: the tile is read once per block);
// both addresses 16-byte aligned. With in_bounds false, writes 16 zero bytes and reads nothing.
__device__ inline void cp_async_16(void* shared_destination, const void* global_source, bool in_bounds) {
  const int source_bytes = in_bounds ? 16 : 0;
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(shared_address(shared_destination)),
               "l"(global_source), "r"(source_bytes));
}

// 4 bytes (one float), for rows that are not 16-byte aligned; through L1 (.ca, the only form for 4 bytes).
__device__ inline void cp_async_4(void* shared_destination, const void* global_source, bool in_bounds) {
  const int source_bytes = in_bounds ? 4 : 0;
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(shared_address(shared_destination)),
               "l"(global_source), "r"(source_bytes));
}

// Closes the group of copies this thread issued since the last commit.
__device__ inline void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }

// Waits until at most `pending` of this thread's committed groups are still in flight. Other threads' copies
// are visible only after a __syncthreads() that follows.
template <int pending>
__device__ inline void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(pending));
}

#endif

}  // namespace kiln::kernels::ladder
