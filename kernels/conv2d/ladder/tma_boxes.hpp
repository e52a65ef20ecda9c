// The boxes the convolution ladder's warp-specialized steps (08) copy with the tensor memory accelerator
// (kernels/ladder/tma.cuh): a tile of 128 positions as a box of an NHWC tensor, and a filter's taps.
// Included by those steps' .cu files; the maps are host code, PositionTiles serves the kernels too.
//
// A tile's 128 positions are a box BW columns x BH rows x BI images of the positions a step computes (the
// output's for forward, the input's for backward data), BW BH BI = 128, all powers of two so that the
// epilogue finds a line's position with shifts. For tap (r, s) the positions of the operand it reads then
// form a box too, every step-th column and row (the stride), from a corner the tap moves: one tensor copy.
// PositionTiles numbers the boxes, and finds a box's corner and a line's position in it; with_tile_width and
// with_tile_and_line_width pick the instantiation (tile width BN, line width) a layer takes.
#pragma once

#include <algorithm>
#include <cstdint>

#include "kernels/ladder/tma.cuh"

namespace kiln::kernels::conv2d_ladder {

inline constexpr int kTilePositions = 128;  // a tile's positions: two consumer warpgroups of 64 rows

// BW = 2^log_w columns x BH = 2^log_h rows x BI images, BW BH BI = 128.
struct PositionBox {
  int log_w = 0, log_h = 0;
  __host__ __device__ int width() const { return 1 << log_w; }
  __host__ __device__ int height() const { return 1 << log_h; }
  __host__ __device__ int images() const { return kTilePositions >> (log_w + log_h); }
};

// A position of an NHWC tensor (its image, row and column), or an offset from one.
struct Position {
  int n, h, w;
};

// Positions N x H x W cut into boxes, numbered w fastest, then h, then n; what a kernel carries.
struct PositionTiles {
  PositionBox box;
  int tiles_w, tiles_h;  // boxes along W and along H (per BI images)
  int tiles;             // boxes in all

  // Box `tile`'s first position.
  __host__ __device__ Position corner(int tile) const {
    return {tile / (tiles_w * tiles_h) * box.images(), tile / tiles_w % tiles_h << box.log_h,
            tile % tiles_w << box.log_w};
  }
  // Line `line`'s position in a box, from its corner: the order in which the copy engine lands a box's
  // lines, w fastest, then h, then n.
  __host__ __device__ Position line(int line) const {
    return {line >> (box.log_w + box.log_h), line >> box.log_w & (box.height() - 1),
            line & (box.width() - 1)};
  }
};

// The box for positions `height` x `width` whose reads step by step_h, step_w (1 to 8): BW the power of two
// at or above the width, BH likewise, each at most what 128 positions leave and at most 256 / step (a tensor
// copy spans at most 256 elements a dimension). ResNet's 32 x 32 maps: 32 x 4 x 1; 16 x 16: 16 x 8 x 1;
// 8 x 8: 8 x 8 x 2, nothing wasted; 7 x 7: 8 x 8 x 2, 49 of every 64 positions used.
inline PositionBox position_box(std::int64_t height, std::int64_t width, int step_h, int step_w) {
  const auto log_at_least = [](std::int64_t value, int cap) {  // cap: a power of two
    int log = 0;
    while ((std::int64_t{1} << log) < value && (1 << log) < cap) ++log;
    return log;
  };
  const auto power_at_most = [](int limit) {
    int power = 1;
    while (2 * power <= limit) power *= 2;
    return power;
  };
  PositionBox box;
  box.log_w = log_at_least(width, std::min(kTilePositions, power_at_most(256 / step_w)));
  box.log_h = log_at_least(height, std::min(kTilePositions >> box.log_w, power_at_most(256 / step_h)));
  return box;
}

// The boxes (position_box) covering N x H x W positions, and their count.
inline PositionTiles position_tiles(std::int64_t n, std::int64_t h, std::int64_t w, int step_h, int step_w) {
  PositionTiles tiles;
  tiles.box = position_box(h, w, step_h, step_w);
  const auto per = [](std::int64_t extent, int box) { return static_cast<int>((extent + box - 1) / box); };
  tiles.tiles_w = per(w, tiles.box.width());
  tiles.tiles_h = per(h, tiles.box.height());
  // Every box holds at least one of the positions, so tiles <= N H W, below 2^31 for any tensor kiln allows.
  tiles.tiles = per(n, tiles.box.images()) * tiles.tiles_h * tiles.tiles_w;
  return tiles;
}

// An NHWC tensor [N][H][W][C] as a rank-4 map, dimensions (C, W, H, N): boxes of `line_channels` (16, 32 or
// 64) channels x BW columns every step_w-th x BH rows every step_h-th x BI images, 128 lines, one position
// each.
inline ladder::TensorMapShape nhwc_box_shape(std::int64_t n, std::int64_t h, std::int64_t w, std::int64_t c,
                                             int line_channels, const PositionBox& box, int step_h,
                                             int step_w) {
  ladder::TensorMapShape shape;
  shape.rank = 4;
  const std::int64_t sizes[] = {c, w, h, n}, strides[] = {1, c, w * c, h * w * c};
  const int extents[] = {line_channels, box.width(), box.height(), box.images()};
  const int steps[] = {1, step_w, step_h, 1};
  for (int i = 0; i < 4; ++i) {
    shape.sizes[i] = sizes[i];
    shape.strides[i] = strides[i];
    shape.box[i] = extents[i];
    shape.steps[i] = steps[i];
  }
  return shape;
}

// A filter w [K][R][S][C] as a rank-3 map [K][R S][C], dimensions (C, tap, K): boxes of `line_channels` (16,
// 32 or 64) channels x one tap x `filters` filters, a line per filter.
inline ladder::TensorMapShape filter_box_shape(std::int64_t k, std::int64_t taps, std::int64_t c,
                                               int line_channels, int filters) {
  ladder::TensorMapShape shape;
  shape.rank = 3;
  shape.sizes[0] = c;
  shape.sizes[1] = taps;
  shape.sizes[2] = k;
  shape.strides[1] = c;
  shape.strides[2] = taps * c;
  shape.box[0] = line_channels;
  shape.box[1] = 1;
  shape.box[2] = filters;
  return shape;
}

// The instantiation a launch takes: launch.template operator()<BN>() with BN the smallest of 16, 32, 64 and
// 128 that holds `columns` (the tile's N: filters or channels), 128 past that.
template <typename Launch>
void with_tile_width(std::int64_t columns, const Launch& launch) {
  if (columns <= 16) {
    launch.template operator()<16>();
  } else if (columns <= 32) {
    launch.template operator()<32>();
  } else if (columns <= 64) {
    launch.template operator()<64>();
  } else {
    launch.template operator()<128>();
  }
}

// As with_tile_width, with a line width too: launch.template operator()<BN, L>(), L the narrowest of 16, 32
// and 64 elements that holds `line_elements` (a line's channels), 64 past that.
template <typename Launch>
void with_tile_and_line_width(std::int64_t columns, std::int64_t line_elements, const Launch& launch) {
  with_tile_width(columns, [&]<int BN>() {
    if (line_elements <= 16) {
      launch.template operator()<BN, 16>();
    } else if (line_elements <= 32) {
      launch.template operator()<BN, 32>();
    } else {
      launch.template operator()<BN, 64>();
    }
  });
}

}  // namespace kiln::kernels::conv2d_ladder
