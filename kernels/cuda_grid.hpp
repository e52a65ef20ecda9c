// The launch geometry every CUDA kernel of the backend shares (kernels/cuda_launch.cuh launches with it):
// host-only constants, so that tests can size their cases by the grid too ("more elements than one grid
// pass covers").
#pragma once

#include <cstdint>

namespace kiln::kernels::cuda {

// 8 warps: enough threads per block to hide memory latency, few enough that a block's shared-memory
// reductions stay small. Kernels that reduce across a block assume exactly this many threads.
inline constexpr int kThreadsPerBlock = 256;
inline constexpr int kWarpSize = 32;
inline constexpr int kWarpsPerBlock = kThreadsPerBlock / kWarpSize;
// Every lane of a warp takes part in a shuffle.
inline constexpr unsigned kFullWarpMask = 0xffffffffu;
// Grids stay at most this many blocks (the old gridDim.y/z limit, ample for gridDim.x): far more than
// the 132 multiprocessors of an H100 keep resident, so nothing is lost, and grid-stride loops cover the
// rest. On the CPU emulator the cap is far lower, so that the launches of every emulated test wrap around
// their grid-stride loops (a kernel that assumes one grid covers its work fails there), and so that a large
// tensor is emulated by a few threads looping rather than by millions of fibers.
#ifdef KILN_CUDA_EMULATION
inline constexpr std::int64_t kMaxGridBlocks = 64;
#else
inline constexpr std::int64_t kMaxGridBlocks = 65535;
#endif

}  // namespace kiln::kernels::cuda
