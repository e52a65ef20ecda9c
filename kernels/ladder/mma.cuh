// Warp-level tensor-core multiplies (mma.sync, sm_80 and later) and the shared-memory loads that feed them
// (ldmatrix), with the fragment layouts written out, since every tensor-core kernel's indexing follows from
// them. Included by .cu files only. The layouts are the PTX ISA's ("Matrix Fragments for mma.m16n8k8" and
// "...m16n8k16"); in them, for lane l of the warp:
//
//   group = l / 4  (0..7)      thread = l % 4  (0..3)
//
// D[16, 8] = A[16, K] * B[K, 8] + C[16, 8], float accumulators, four per lane:
//   c[0] = (row group,     col 2 thread)     c[1] = (row group,     col 2 thread + 1)
//   c[2] = (row group + 8, col 2 thread)     c[3] = (row group + 8, col 2 thread + 1)
//
// tf32, m16n8k8: one float (its TF32 bits) per register.
//   A[16, 8]: a[0] = (group, thread)       a[1] = (group + 8, thread)
//             a[2] = (group, thread + 4)   a[3] = (group + 8, thread + 4)
//   B[8, 8]:  b[0] = (row thread, col group)   b[1] = (row thread + 4, col group)
//
// bf16, m16n8k16: two bfloat16 per register, the lower column (A) or row (B) in the low 16 bits.
//   A[16, 16]: a[0] = (group,     2 thread + {0, 1})   a[1] = (group + 8, 2 thread + {0, 1})
//              a[2] = (group,     2 thread + 8 + {0, 1})   a[3] = (group + 8, 2 thread + 8 + {0, 1})
//   B[16, 8]:  b[0] = (rows 2 thread + {0, 1}, col group)   b[1] = (rows 2 thread + 8 + {0, 1}, col group)
#pragma once

#include <cstdint>

#include "kernels/ladder/cp_async.cuh"

namespace kiln::kernels::ladder {

#ifdef KILN_CUDA_EMULATION
// The CPU emulator (tests/emulation/cuda_emulator.cpp) defines these from the layouts above: each lane hands
// in its registers, the warp meets, and each lane computes its own outputs from the whole warp's fragments.
std::uint32_t to_tf32(float value);
void mma_m16n8k8_tf32(float (&c)[4], const std::uint32_t (&a)[4], const std::uint32_t (&b)[2]);
void mma_m16n8k16_bf16(float (&c)[4], const std::uint32_t (&a)[4], const std::uint32_t (&b)[2]);
void ldmatrix_x4(std::uint32_t (&r)[4], const void* row_of_this_lane);
void ldmatrix_x4_trans(std::uint32_t (&r)[4], const void* row_of_this_lane);
#else
// A float rounded to TF32 (nearest, ties away from zero), as a 32-bit register: without it the tensor core
// drops the low 13 mantissa bits, a bias of half a unit in the last place on every operand.
__device__ inline std::uint32_t to_tf32(float value) {
  std::uint32_t bits;
  asm("cvt.rna.tf32.f32 %0, %1;\n" : "=r"(bits) : "f"(value));
  return bits;
}

// c += a * b on one 16x8x8 tile, TF32 operands (layouts above).
__device__ inline void mma_m16n8k8_tf32(float (&c)[4], const std::uint32_t (&a)[4],
                                        const std::uint32_t (&b)[2]) {
  asm volatile(
      "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

// c += a * b on one 16x8x16 tile, bfloat16 operands (layouts above).
__device__ inline void mma_m16n8k16_bf16(float (&c)[4], const std::uint32_t (&a)[4],
                                         const std::uint32_t (&b)[2]) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

// ldmatrix: the warp loads four 8x8 matrices of 16-bit elements from shared memory, each lane naming one
// 16-byte row: lanes 8i..8i+7 give the rows of matrix i. Lane l receives, in register i, matrix i's elements
// (row l / 4, cols 2 (l % 4) + {0, 1}): exactly an mma fragment. For A[16, 16] of m16n8k16 stored row-major,
// lane l names row (l % 16), columns 8 (l / 16) onward, and r[0..3] are a[0..3].
__device__ inline void ldmatrix_x4(std::uint32_t (&r)[4], const void* row_of_this_lane) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(shared_address(row_of_this_lane)));
}

// The same, each matrix transposed on the way: lane l receives matrix i's (rows 2 (l % 4) + {0, 1}, col l /
// 4). For B[16, n] stored row-major ([k][n]), lane l names row k = (l % 16) at column n0 + 8 (l / 16); r[0],
// r[1] are b[0], b[1] of the 8 columns from n0, and r[2], r[3] those of the 8 from n0 + 8.
__device__ inline void ldmatrix_x4_trans(std::uint32_t (&r)[4], const void* row_of_this_lane) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(shared_address(row_of_this_lane)));
}

#endif

}  // namespace kiln::kernels::ladder
