// Where GEMM ladder step 11 (11_tma_wgmma_tf32.cu) finds each thread's registers of wgmma's A operand in
// B's tile, and which column of C each register row is. Its own header so that a CPU test
// (tests/kernels/gemm_register_operand_layout_test.cpp) checks what step 11's top comment claims of it: the
// rows are a permutation of the slab's 64 columns, each load reads the element its register needs, a
// half-warp's 8-byte loads fall on 32 distinct banks, and a warp's stores of C fill whole 32-byte sectors.
//
// The tile (one stage's B, as the copy engine lays it down): boxes of 32 lines (k) of 32 floats (n), 4 KiB
// each, line k's 16-byte chunk c at 128 k + 16 (c ^ k % 8) (the 128-byte swizzle). A slab is the 64 n of two
// neighbouring boxes, the M of one m64n128k8.
#pragma once

#if defined(__CUDACC__)
#define KILN_LAYOUT_FUNCTION __host__ __device__ constexpr
#else
#define KILN_LAYOUT_FUNCTION constexpr
#endif

namespace kiln::kernels::gemm_ladder::register_operand {

inline constexpr int kLineBytes = 128;                    // one swizzled line: 32 floats
inline constexpr int kBoxColumns = kLineBytes / 4;        // 32 n a box
inline constexpr int kBoxLines = 32;                      // 32 k a box (a k-tile)
inline constexpr int kBoxBytes = kBoxLines * kLineBytes;  // 4,096
inline constexpr int kSlabColumns = 2 * kBoxColumns;      // 64 n: wgmma's M
inline constexpr int kSliceBytes = 8 * kLineBytes;        // a k8 slice: 8 lines, 1,024 bytes

// Thread `thread` (0..127 of its warpgroup; warp = thread / 32, group = thread % 32 / 4, quad = thread % 4)
// holds wgmma's A rows 16 warp + group and 16 warp + group + 8 at k = quad and quad + 4 of each k8 slice
// (wgmma.cuh). Here row 16 warp + group is slab column `n` and the row 8 below it is n + 1, so one 8-byte
// load at `low` (bytes from the slab's first box, slice 0; slice j is kSliceBytes j further) gives a[0], a[1]
// at k = quad, and one at `high` gives a[2], a[3] at k = quad + 4. With group = 4 half + 2 s + p:
//     n = 32 (warp / 2) + 4 (4 s + 2 (warp % 2) + half) + 2 p
// so a half-warp's 16 lanes read 2 chunks of a line per quad, at 4 different k, and the swizzle's
// (chunk ^ k % 8) sends them to all 8 16-byte slots of 128 bytes, 2 pairs each: 32 distinct banks.
struct SlabPlace {
  int low, high, n;
};
KILN_LAYOUT_FUNCTION SlabPlace slab_place(int thread) {
  const int warp = thread / 32, group = thread % 32 / 4, quad = thread % 4;
  const int half = group / 4, s = group / 2 % 2, p = group % 2;
  const int chunk = 4 * s + 2 * (warp % 2) + half;
  const int in_box = warp / 2 * kBoxBytes + 8 * p;
  return {in_box + kLineBytes * quad + 16 * (chunk ^ quad),
          in_box + kLineBytes * (quad + 4) + 16 * (chunk ^ (quad + 4)),
          warp / 2 * kBoxColumns + 4 * chunk + 2 * p};
}

}  // namespace kiln::kernels::gemm_ladder::register_operand

#undef KILN_LAYOUT_FUNCTION
