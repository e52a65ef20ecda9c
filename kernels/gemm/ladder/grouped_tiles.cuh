// The grouped block order of the GEMM ladder's steps 07-10: which tile of C block b computes. Step 07's top
// comment says why (L2 reuse: a wave of blocks covers a squarer patch of C and reads fewer panels of A and
// B). Included by the step files only.
//
// Blocks are numbered in groups of kGroupRows = 16 tile rows (fewer in the last group), every tile column:
// group b / (16 tiles_n) holds tile rows first .. first + group_rows - 1, and inside it block `in_group` is
// tile row in_group % group_rows of tile column in_group / group_rows. A bijection from
// 0 .. tiles_m tiles_n - 1 onto the tiles; 16 tiles_n < 16 (N / 256 + 1) fits an int.
#pragma once

namespace kiln::kernels::gemm_ladder {

inline constexpr int kGroupRows = 16;  // tile rows per group of the block order

struct TileIndex {
  int row, column;  // in tiles
};

__device__ __forceinline__ TileIndex grouped_tile(int block, int tiles_m, int tiles_n) {
  const int blocks_per_group = kGroupRows * tiles_n;
  const int first_tile_m = block / blocks_per_group * kGroupRows;
  const int group_rows = min(tiles_m - first_tile_m, kGroupRows);
  const int in_group = block % blocks_per_group;
  return {first_tile_m + in_group % group_rows, in_group / group_rows};
}

}  // namespace kiln::kernels::gemm_ladder
