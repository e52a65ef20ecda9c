// The tensor memory accelerator (TMA, sm_90): tiles copied from global to shared memory by a copy engine
// beside each SM, described once on the host by a tensor map and issued by a single thread. Included by .cu
// files only; the CPU emulator (tests/emulation) defines the same functions.
//
// What it changes from cp.async (cp_async.cuh). There, every thread of the block computes addresses and
// issues 16-byte copies, a few per tile, and the tile is known complete only when each thread has waited for
// its own copies and the block has met at a barrier. Here one thread issues one instruction per box (up to
// 256 x 128 bytes); the engine forms the addresses, zero-fills what lies outside the matrix, writes the box
// in the 128-byte swizzle that wgmma reads (wgmma.cuh), and counts the bytes onto an mbarrier
// (mbarrier.cuh) as they land. The threads that would have copied are free to multiply, and nobody meets
// anybody at __syncthreads.
//
// The map (host, bf16_tensor_map_128b): a row-major bfloat16 matrix [rows][columns] whose rows are `columns`
// elements apart, read in boxes of box_rows lines of 64 columns, 128 bytes, each box one stack of swizzle
// atoms. In shared memory, box line r's 16-byte chunk c lands at
//     128 r + 16 (c XOR (r % 8))
// from a destination on 1024 bytes: swizzled_128b(r, c), exactly the layout the wgmma descriptors name, for a
// K-major operand (lines are rows of A, 64 k) and an MN-major one (lines are k, 64 n) alike.
//
// Rules the map imposes: the matrix starts on 16 bytes and its row pitch is a multiple of 16 bytes
// (columns % 8 == 0), box_rows <= 256. Coordinates may lie outside the matrix, negative too; those elements
// land as zeros and still count as bytes on the barrier (a box always delivers 128 box_rows bytes).
#pragma once

#include <cstdint>

#include "core/bfloat16.hpp"
#include "core/error.hpp"
#include "kernels/ladder/cp_async.cuh"

#ifndef KILN_CUDA_EMULATION
#include <cuda.h>  // CUtensorMap
#endif

namespace kiln::kernels::ladder {

// The columns, and bytes, of one box line: one 128-byte swizzled line of bfloat16.
inline constexpr int kTmaBoxColumns = 64;
inline constexpr int kTmaLineBytes = kTmaBoxColumns * 2;

#ifdef KILN_CUDA_EMULATION
// The emulator's map: what cuTensorMapEncodeTiled would have encoded.
struct TensorMap {
  const bfloat16* base;
  std::int64_t rows, columns;
  int box_rows;
};
#else
// The driver's opaque 128-byte map, 64-byte aligned; a kernel takes it by value as a
// `const __grid_constant__` parameter, so it lives in the launch's parameter space where the engine reads it.
using TensorMap = CUtensorMap;
#endif

// Host: the map of `base` [rows][columns] (above) for boxes of `box_rows` x 64. Throws a kiln::Error naming
// what breaks the rules above, or what the driver said.
TensorMap bf16_tensor_map_128b(const bfloat16* base, std::int64_t rows, std::int64_t columns, int box_rows);

// Host: throws a kiln::Error naming the rule above that the matrix or the box breaks. Both definitions of
// bf16_tensor_map_128b (the driver's, the emulator's) ask it first.
inline void require_tensor_map_rules(const bfloat16* base, std::int64_t rows, std::int64_t columns,
                                     int box_rows) {
  KILN_CHECK(rows >= 1 && columns >= 1, "tensor map: an empty matrix (", rows, " x ", columns, ")");
  KILN_CHECK(reinterpret_cast<std::uintptr_t>(base) % 16 == 0,
             "tensor map: the matrix does not start on 16 bytes");
  KILN_CHECK(columns % 8 == 0, "tensor map: rows of ", columns,
             " bfloat16 are not a multiple of 16 bytes apart (columns must be a multiple of 8)");
  KILN_CHECK(rows < (std::int64_t{1} << 32) && columns < (std::int64_t{1} << 32),
             "tensor map: a dimension of 2^32 or more");
  KILN_CHECK(box_rows >= 1 && box_rows <= 256, "tensor map: boxes of ", box_rows, " rows (1 to 256)");
}

#ifdef KILN_CUDA_EMULATION
// Queues the copy on `barrier`; it lands when a thread waits there (mbarrier.cuh). A destination not on 128
// bytes, one that runs past the dynamic shared memory or over a chunk an unretired wgmma reads, a barrier
// not initialized, and a map outside the launch's operands are errors.
void tma_load_2d(void* destination, const TensorMap& map, int row, int column, std::uint64_t* barrier);
#else
// Copies the box of `map` whose first element is (row, column) to `destination` (shared memory, 1024-byte
// aligned for the swizzle above), completing its bytes on `barrier`. One thread issues it.
__device__ __forceinline__ void tma_load_2d(void* destination, const TensorMap& map, int row, int column,
                                            std::uint64_t* barrier) {
#if __CUDA_ARCH__ >= 900
  asm volatile(
      "cp.async.bulk.tensor.2d.shared::cluster.global.tile.mbarrier::complete_tx::bytes"
      " [%0], [%1, {%2, %3}], [%4];\n" ::"r"(shared_address(destination)),
      "l"(reinterpret_cast<std::uint64_t>(&map)), "r"(column), "r"(row), "r"(shared_address(barrier))
      : "memory");
#else
  (void)destination, (void)map, (void)row, (void)column, (void)barrier;
  __trap();
#endif
}
#endif

}  // namespace kiln::kernels::ladder
