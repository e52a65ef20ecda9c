// Many tensors per launch: the table the multi-tensor kernels share (the optimizer updates,
// cuda_optim_update.cu; the gradient norm and clipping, cuda_grad_clip.cu). A model's parameters are a few
// dozen to a few hundred small tensors; a launch each would cost more in launches than in work.
//
// Each tensor is cut into chunks of kChunk elements. A launch takes a table of up to kTensorsPerLaunch
// tensors by value, as a kernel argument: each tensor's buffers (a struct the kernel defines), its size, and
// the number of its first chunk (a prefix sum). Block b takes chunk b (then b + gridDim.x, ...: a grid-stride
// loop over chunks), finds the tensor holding it by binary search in the table, and its 256 threads walk the
// chunk's elements, thread j taking elements j, j + 256, ..., coalesced. Longer lists take one launch per
// kTensorsPerLaunch tensors (for_each_table); the host table is refilled after each launch, which is safe
// because a launch copies its arguments when it is enqueued. Tensors with no elements are left out.
//
// Kernel arguments may take 32 KiB (32,764 bytes) on sm_70 and later from CUDA 12.1, 4 KiB before; each
// user static_asserts that its table and other arguments fit. Included by .cu files only (device code).
#pragma once

#include <cuda_runtime.h>  // CUDART_VERSION

#include <cstddef>
#include <cstdint>
#include <span>

#include "kernels/cuda_launch.cuh"

namespace kiln::kernels::cuda {

inline constexpr std::int64_t kChunk =
    16 * kThreadsPerBlock;  // elements a block takes per chunk: 16 a thread

#if CUDART_VERSION >= 12010
inline constexpr int kTensorsPerLaunch = 320;  // 320 * 48 bytes for Adam: 15 KiB of the 32 KiB allowed
inline constexpr std::size_t kMaxKernelArgumentBytes = 32764;
#else
inline constexpr int kTensorsPerLaunch = 72;  // 72 * 48 bytes for Adam: 3.4 KiB of the 4 KiB allowed
inline constexpr std::size_t kMaxKernelArgumentBytes = 4096;
#endif

// Up to kTensorsPerLaunch tensors for one launch. Tensor t covers chunks [first_chunk[t], first_chunk[t+1]);
// every tensor in the table has at least one element, so first_chunk is strictly increasing.
template <class Buffers>
struct TensorTable {
  Buffers buffers[kTensorsPerLaunch];
  std::int64_t n[kTensorsPerLaunch];
  std::int64_t first_chunk[kTensorsPerLaunch + 1];
  int count;

  __host__ __device__ std::int64_t chunks() const { return first_chunk[count]; }

  // The tensor holding `chunk`: the last t with first_chunk[t] <= chunk.
  __device__ int tensor_of_chunk(std::int64_t chunk) const {
    int low = 0, high = count - 1;
    while (low < high) {
      const int middle = (low + high + 1) / 2;
      if (first_chunk[middle] <= chunk) {
        low = middle;
      } else {
        high = middle - 1;
      }
    }
    return low;
  }

  // Calls element(buffers, i) for every element i of the chunks this block takes, this thread's share:
  // the grid-stride loop over chunks, and within a chunk a stride of kThreadsPerBlock.
  template <class Element>
  __device__ void for_each_element_of_block(Element element) const {
    for (std::int64_t chunk = blockIdx.x; chunk < chunks(); chunk += gridDim.x) {
      const int t = tensor_of_chunk(chunk);
      const std::int64_t begin = (chunk - first_chunk[t]) * kChunk;
      const std::int64_t end = begin + kChunk < n[t] ? begin + kChunk : n[t];
      for (std::int64_t i = begin + threadIdx.x; i < end; i += kThreadsPerBlock) element(buffers[t], i);
    }
  }
};

// Fills tables from `slices` and calls launch_table(table) for each full one and for the last, partial one
// (none for a list of empty tensors). buffers_of(slice) gives a slice's Buffers; slice.n is its size.
template <class Buffers, class Slice, class BuffersOf, class LaunchTable>
void for_each_table(std::span<const Slice> slices, BuffersOf buffers_of, LaunchTable launch_table) {
  TensorTable<Buffers> table{};
  auto launch_filled = [&] {
    if (table.count == 0) return;
    launch_table(table);
    table.count = 0;  // the launch holds its own copy of the table
  };
  for (const Slice& slice : slices) {
    if (slice.n == 0) continue;
    const int t = table.count;
    table.buffers[t] = buffers_of(slice);
    table.n[t] = slice.n;
    table.first_chunk[t + 1] = table.first_chunk[t] + (slice.n + kChunk - 1) / kChunk;
    if (++table.count == kTensorsPerLaunch) launch_filled();
  }
  launch_filled();
}

}  // namespace kiln::kernels::cuda
