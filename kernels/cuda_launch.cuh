// What every CUDA kernel file shares: the block size, the grid cap, the grid-stride loop that lets one
// launch of a capped grid cover any number of elements, and the launch itself. Included by .cu files only
// (it has device code).
//
//   template <typename T>
//   __global__ void scale_kernel(std::int64_t n, T factor, T* x) {
//     for (std::int64_t i = first_thread_index(); i < n; i += grid_thread_count()) x[i] *= factor;
//   }
//   launch("scale", scale_kernel<T>, grid_blocks(n), kThreadsPerBlock, n, factor, x);
//
// Every kernel launches through launch(), never with <<<...>>> in place: that one seam is where a launch is
// checked, and where the CPU emulator (tests/emulation, built with KILN_CUDA_EMULATION) takes the grid
// instead, so that the same .cu files run in CI, on no GPU, against the reference kernels.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "kernels/cuda_grid.hpp"

#ifdef KILN_CUDA_EMULATION
#include <functional>

namespace kiln::emulation {
// Runs body() as every thread of every block of the grid (tests/emulation/cuda_emulator.cpp), each block's
// threads concurrently with a real barrier behind __syncthreads, with dynamic_shared_bytes of shared memory.
void run_grid(const char* name, dim3 grid, dim3 block, std::size_t dynamic_shared_bytes,
              const std::function<void()>& body);
}  // namespace kiln::emulation
#else
#include "core/cuda_runtime.hpp"
#endif

namespace kiln::kernels::cuda {

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

// Launches kernel<<<grid, block>>>(arguments...) on the current device's compute stream, where every kiln
// kernel runs (cuda::compute_stream), and checks the launch, naming `name` in any error. Emulated, the grid
// has run when this returns, or has been recorded when the stream is being captured into a graph (which is
// why the emulated body holds copies of the arguments, as a launch does).
template <typename... Parameters, typename... Arguments>
void launch(const char* name, void (*kernel)(Parameters...), dim3 grid, dim3 block, Arguments... arguments) {
#ifdef KILN_CUDA_EMULATION
  emulation::run_grid(name, grid, block, 0, [=] { kernel(arguments...); });
#else
  const auto stream = static_cast<cudaStream_t>(::kiln::cuda::current_compute_stream());
  // clang-format takes a .cuh for C++ and would split the >>>.
  // clang-format off
  kernel<<<grid, block, 0, stream>>>(arguments...);
  // clang-format on
  ::kiln::cuda::check_launch(name);
#endif
}

}  // namespace kiln::kernels::cuda
