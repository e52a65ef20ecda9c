// The tensor memory accelerator (TMA, sm_90): tiles copied from global to shared memory by a copy engine
// beside each SM, described once on the host by a tensor map and issued by a single thread. Included by .cu
// files only; the CPU emulator (tests/emulation) defines the same functions.
//
// What it changes from cp.async (cp_async.cuh). There, every thread of the block computes addresses and
// issues 16-byte copies, a few per tile, and the tile is known complete only when each thread has waited for
// its own copies and the block has met at a barrier. Here one thread issues one instruction per box (up to
// 256 lines of 128 bytes); the engine forms the addresses, zero-fills what lies outside the tensor, writes
// the box in the 128-byte swizzle that wgmma reads (wgmma.cuh), and counts the bytes onto an mbarrier
// (mbarrier.cuh) as they land. The threads that would have copied are free to multiply, and nobody meets
// anybody at __syncthreads.
//
// The map (host, bf16_tensor_map_128b or float_tensor_map_128b): a bfloat16 or float tensor of rank 2 to 5,
// dimensions innermost first, the innermost dense (TensorMapShape). A box takes one 128-byte line of
// dimension 0 (64 bfloat16 or 32 floats) and box[i] elements of each dimension i >= 1, every steps[i]-th one
// (a strided convolution's input rows: steps are what make a box an im2col tile). The box's lines land one
// after another, dimension 1 fastest; line L's 16-byte chunk c at
//     128 L + 16 (c XOR (L % 8))
// from a destination on 1024 bytes: swizzled_128b(L, c), exactly the layout the wgmma descriptors name, for
// a K-major operand (lines are rows of A, 64 k) and an MN-major one (lines are k, 64 n) alike. A box line
// of 32 or 64 bytes (16 or 32 bfloat16) lands in the 32- or 64-byte swizzle instead, wgmma.cuh's
// swizzled(L, c, line_bytes) from a destination on 8 lines: the K-major layouts of a 16- or 32-wide
// reduction (the map's name keeps the widest).
//
// Rules the map imposes: the tensor starts on 16 bytes and every stride is a multiple of 16 bytes (8
// bfloat16, 4 floats); sizes below 2^32; 1 <= box[i] and box[i] steps[i] <= 256; steps of 1 to 8.
// Coordinates may lie outside the tensor, negative too; those elements land as zeros and still count as
// bytes on the barrier (a box always delivers line_bytes a line).
#pragma once

#include <cstdint>

#include "core/bfloat16.hpp"
#include "core/error.hpp"
#include "kernels/ladder/cp_async.cuh"

#ifndef KILN_CUDA_EMULATION
#include <cuda.h>  // CUtensorMap
#endif

namespace kiln::kernels::ladder {

// One box line at its widest: 128 bytes, the 128-byte swizzle's line; 64 bfloat16 (kTmaBoxColumns).
inline constexpr int kTmaLineBytes = 128;
inline constexpr int kTmaBoxColumns = kTmaLineBytes / 2;
inline constexpr int kTmaMaxRank = 5;

// The tensor's elements; the value is their size in bytes.
enum class TmaElement { Bf16 = 2, Float = 4 };

// A tensor as the copy engine reads it, dimensions innermost first (above).
struct TensorMapShape {
  TmaElement element = TmaElement::Bf16;
  int rank = 2;
  std::int64_t sizes[kTmaMaxRank] = {};    // elements along each dimension
  std::int64_t strides[kTmaMaxRank] = {};  // elements between neighbours along dimension i >= 1 (0 is dense)
  int box[kTmaMaxRank] = {};  // elements a box takes along each dimension; box[0] makes 32, 64 or 128 bytes
  int steps[kTmaMaxRank] = {1, 1, 1, 1, 1};  // along dimension i, every steps[i]-th element (steps[0] is 1)
};

constexpr int element_bytes(const TensorMapShape& shape) { return static_cast<int>(shape.element); }
// The lines a box fills: the product of box[1..rank); and the bytes of each (the swizzle's width).
constexpr int box_lines(const TensorMapShape& shape) {
  int lines = 1;
  for (int i = 1; i < shape.rank; ++i) lines *= shape.box[i];
  return lines;
}
constexpr int line_bytes(const TensorMapShape& shape) { return element_bytes(shape) * shape.box[0]; }

// A row-major matrix [rows][columns] read in boxes of box_rows lines of 128 bytes (64 bfloat16 or 32 floats
// of a row): the 2-D shape a GEMM's operands take.
constexpr TensorMapShape matrix_shape(std::int64_t rows, std::int64_t columns, int box_rows,
                                      TmaElement element = TmaElement::Bf16) {
  TensorMapShape shape;
  shape.element = element;
  shape.rank = 2;
  shape.sizes[0] = columns;
  shape.sizes[1] = rows;
  shape.strides[1] = columns;
  shape.box[0] = kTmaLineBytes / static_cast<int>(element);
  shape.box[1] = box_rows;
  return shape;
}

#ifdef KILN_CUDA_EMULATION
// The emulator's map: what cuTensorMapEncodeTiled would have encoded.
struct TensorMap {
  const void* base;
  TensorMapShape shape;
};
#else
// The driver's opaque 128-byte map, 64-byte aligned; a kernel takes it by value as a
// `const __grid_constant__` parameter, so it lives in the launch's parameter space where the engine reads it.
using TensorMap = CUtensorMap;
#endif

// Host: the map of the tensor at `base` (above), whose shape says it holds bfloat16 or floats. Throws a
// kiln::Error naming the rule the shape breaks, or what the driver said.
TensorMap bf16_tensor_map_128b(const bfloat16* base, const TensorMapShape& shape);
TensorMap float_tensor_map_128b(const float* base, const TensorMapShape& shape);

// Host: throws a kiln::Error naming the rule above that the tensor or the box breaks, or an element type
// other than `element` (the pointer's). Every definition of the maps (the driver's, the emulator's) asks it
// first.
inline void require_tensor_map_rules(const void* base, TmaElement element, const TensorMapShape& shape) {
  KILN_CHECK(shape.element == element, "tensor map: a ", element == TmaElement::Float ? "float" : "bfloat16",
             " tensor described as ", shape.element == TmaElement::Float ? "float" : "bfloat16");
  KILN_CHECK(shape.rank >= 2 && shape.rank <= kTmaMaxRank, "tensor map: rank ", shape.rank, " (2 to 5)");
  KILN_CHECK(reinterpret_cast<std::uintptr_t>(base) % 16 == 0,
             "tensor map: the tensor does not start on 16 bytes");
  KILN_CHECK(
      (line_bytes(shape) == 32 || line_bytes(shape) == 64 || line_bytes(shape) == 128) && shape.steps[0] == 1,
      "tensor map: a box line is 32, 64 or 128 contiguous bytes (box[0] = ", shape.box[0], " elements of ",
      element_bytes(shape), " bytes, steps[0] = ", shape.steps[0], ")");
  for (int i = 0; i < shape.rank; ++i) {
    KILN_CHECK(shape.sizes[i] >= 1 && shape.sizes[i] < (std::int64_t{1} << 32), "tensor map: dimension ", i,
               " of ", shape.sizes[i], " elements (1 to 2^32 - 1)");
    KILN_CHECK(shape.steps[i] >= 1 && shape.steps[i] <= 8, "tensor map: a step of ", shape.steps[i],
               " along dimension ", i, " (1 to 8)");
    KILN_CHECK(shape.box[i] >= 1 && shape.box[i] * shape.steps[i] <= 256, "tensor map: a box of ",
               shape.box[i], " elements every ", shape.steps[i], " along dimension ", i,
               " (1 to 256 elements spanned)");
    if (i == 0) continue;
    const int per_16_bytes = 16 / element_bytes(shape);
    KILN_CHECK(shape.strides[i] % per_16_bytes == 0 && shape.strides[i] >= per_16_bytes &&
                   shape.strides[i] < (std::int64_t{1} << 39),
               "tensor map: neighbours along dimension ", i, " are ", shape.strides[i],
               " elements apart (a positive multiple of ", per_16_bytes, ": 16 bytes)");
  }
}

#ifdef KILN_CUDA_EMULATION
// Queues the copy on `barrier`; it lands when a thread waits there (mbarrier.cuh). A destination not on 128
// bytes, one that runs past the dynamic shared memory or over a chunk an unretired wgmma reads or over a
// barrier, a barrier not initialized, and a tensor outside the launch's operands are errors.
void tma_load_emulated(void* destination, const TensorMap& map, const int* coordinates, int rank,
                       std::uint64_t* barrier);
template <int Rank>
void tma_load(void* destination, const TensorMap& map, const int (&coordinates)[Rank],
              std::uint64_t* barrier) {
  static_assert(Rank >= 2 && Rank <= kTmaMaxRank, "tensor copies of rank 2 to 5");
  tma_load_emulated(destination, map, coordinates, Rank, barrier);
}
#else
// Copies the box of `map` whose first element is at `coordinates` (innermost first, as the map's
// dimensions) to `destination` (shared memory, 1024-byte aligned for the swizzle above), completing its
// bytes on `barrier`. One thread issues it; Rank must be the map's.
template <int Rank>
__device__ __forceinline__ void tma_load(void* destination, const TensorMap& map,
                                         const int (&coordinates)[Rank], std::uint64_t* barrier) {
  static_assert(Rank >= 2 && Rank <= kTmaMaxRank, "tensor copies of rank 2 to 5");
#if __CUDA_ARCH__ >= 900
  const std::uint32_t to = shared_address(destination), on = shared_address(barrier);
  const auto from = reinterpret_cast<std::uint64_t>(&map);
  const int* c = coordinates;
  if constexpr (Rank == 2) {
    asm volatile(
        "cp.async.bulk.tensor.2d.shared::cluster.global.tile.mbarrier::complete_tx::bytes"
        " [%0], [%1, {%2, %3}], [%4];\n" ::"r"(to),
        "l"(from), "r"(c[0]), "r"(c[1]), "r"(on)
        : "memory");
  } else if constexpr (Rank == 3) {
    asm volatile(
        "cp.async.bulk.tensor.3d.shared::cluster.global.tile.mbarrier::complete_tx::bytes"
        " [%0], [%1, {%2, %3, %4}], [%5];\n" ::"r"(to),
        "l"(from), "r"(c[0]), "r"(c[1]), "r"(c[2]), "r"(on)
        : "memory");
  } else if constexpr (Rank == 4) {
    asm volatile(
        "cp.async.bulk.tensor.4d.shared::cluster.global.tile.mbarrier::complete_tx::bytes"
        " [%0], [%1, {%2, %3, %4, %5}], [%6];\n" ::"r"(to),
        "l"(from), "r"(c[0]), "r"(c[1]), "r"(c[2]), "r"(c[3]), "r"(on)
        : "memory");
  } else {
    asm volatile(
        "cp.async.bulk.tensor.5d.shared::cluster.global.tile.mbarrier::complete_tx::bytes"
        " [%0], [%1, {%2, %3, %4, %5, %6}], [%7];\n" ::"r"(to),
        "l"(from), "r"(c[0]), "r"(c[1]), "r"(c[2]), "r"(c[3]), "r"(c[4]), "r"(on)
        : "memory");
  }
#else
  (void)destination, (void)map, (void)coordinates, (void)barrier;
  __trap();
#endif
}
#endif

}  // namespace kiln::kernels::ladder
