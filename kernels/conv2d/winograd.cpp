// Winograd F(2x2, 3x3) forward convolution (Lavin & Gray, "Fast Algorithms for Convolutional Neural
// Networks", 2015), for 3x3 kernels with stride 1, dilation 1, groups 1, any padding.
//
// Each 2x2 block of outputs ("tile") is computed from the 4x4 input patch under it with 16 multiplies per
// (input channel, output channel) pair instead of the direct method's 36:
//
//   U = G g G^T        (4x4, per weight kernel g [3, 3]; once per call)
//   V = B^T d B        (4x4, per input patch d [4, 4]: a tile's patch, zeros in the padding)
//   M = U (.) V        summed over input channels: for each of the 16 positions k, one GEMM
//                      M_k [C_out, T] = U_k [C_out, C_in] x V_k [C_in, T]   over the T tiles of a chunk
//   Y = A^T M A        (2x2 outputs per tile; those past the output's edge are dropped)
//
//   B^T = [1  0 -1  0]    G = [1    0    0  ]    A^T = [1  1  1  0]
//         [0  1  1  0]        [1/2  1/2  1/2]          [0  1 -1 -1]
//         [0 -1  1  0]        [1/2 -1/2  1/2]
//         [0  1  0 -1]        [0    0    1  ]
//
// Images are taken in chunks of about kChunkTiles tiles (batch_chunks.hpp), so the transformed input
// V [16, C_in, T] and the products M [16, C_out, T] stay a few MiB. The rounding differs from direct
// convolution (the transforms add and subtract inputs before multiplying) but stays within float32
// tolerance of the reference for these small transforms.
#include <algorithm>
#include <vector>

#include "kernels/conv2d/batch_chunks.hpp"
#include "kernels/conv2d/conv2d.hpp"
#include "kernels/gemm/gemm.hpp"

namespace kiln::kernels::winograd {
namespace {

constexpr std::int64_t kChunkTiles = 1024;
constexpr int kPositions = 16;  // a 4x4 transformed tile

// U [16, C_out, C_in] from w [C_out, C_in, 3, 3].
void transform_weights(const Conv2dGeometry& g, const float* w, float* u) {
  const std::int64_t pairs = g.out_channels * g.in_channels;
  for (std::int64_t pair = 0; pair < pairs; ++pair) {
    const float* k = w + pair * 9;
    float gk[4][3];  // G g: rows of the 4x3 intermediate
    for (int c = 0; c < 3; ++c) {
      gk[0][c] = k[c];
      gk[1][c] = 0.5f * (k[c] + k[3 + c] + k[6 + c]);
      gk[2][c] = 0.5f * (k[c] - k[3 + c] + k[6 + c]);
      gk[3][c] = k[6 + c];
    }
    for (int r = 0; r < 4; ++r) {  // (G g) G^T
      const float row[4] = {gk[r][0], 0.5f * (gk[r][0] + gk[r][1] + gk[r][2]),
                            0.5f * (gk[r][0] - gk[r][1] + gk[r][2]), gk[r][2]};
      for (int c = 0; c < 4; ++c) u[(r * 4 + c) * pairs + pair] = row[c];
    }
  }
}

struct Tiling {
  std::int64_t tiles_h, tiles_w;
  explicit Tiling(const Conv2dGeometry& g)
      : tiles_h((g.out_height() + 1) / 2), tiles_w((g.out_width() + 1) / 2) {}
  std::int64_t per_image() const { return tiles_h * tiles_w; }
};

// V [16, C_in, T] for images [first, first + count): each tile's 4x4 input patch through B^T d B.
void transform_inputs(const Conv2dGeometry& g, const Tiling& tiling, const float* x, std::int64_t first,
                      std::int64_t count, float* v) {
  const std::int64_t tiles = count * tiling.per_image(), plane = g.in_height * g.in_width;
  for (std::int64_t ci = 0; ci < g.in_channels; ++ci) {
    for (std::int64_t b = 0; b < count; ++b) {
      const float* x_plane = x + ((first + b) * g.in_channels + ci) * plane;
      for (std::int64_t th = 0; th < tiling.tiles_h; ++th) {
        for (std::int64_t tw = 0; tw < tiling.tiles_w; ++tw) {
          float d[4][4];
          for (int r = 0; r < 4; ++r) {
            const std::int64_t ih = 2 * th - g.pad_h + r;
            for (int c = 0; c < 4; ++c) {
              const std::int64_t iw = 2 * tw - g.pad_w + c;
              const bool inside = ih >= 0 && ih < g.in_height && iw >= 0 && iw < g.in_width;
              d[r][c] = inside ? x_plane[ih * g.in_width + iw] : 0.0f;
            }
          }
          float t[4][4];  // B^T d
          for (int c = 0; c < 4; ++c) {
            t[0][c] = d[0][c] - d[2][c];
            t[1][c] = d[1][c] + d[2][c];
            t[2][c] = d[2][c] - d[1][c];
            t[3][c] = d[1][c] - d[3][c];
          }
          const std::int64_t tile = (b * tiling.tiles_h + th) * tiling.tiles_w + tw;
          float* to = v + ci * tiles + tile;
          const std::int64_t position_stride = g.in_channels * tiles;
          for (int r = 0; r < 4; ++r) {  // (B^T d) B
            to[(r * 4 + 0) * position_stride] = t[r][0] - t[r][2];
            to[(r * 4 + 1) * position_stride] = t[r][1] + t[r][2];
            to[(r * 4 + 2) * position_stride] = t[r][2] - t[r][1];
            to[(r * 4 + 3) * position_stride] = t[r][1] - t[r][3];
          }
        }
      }
    }
  }
}

// y for images [first, first + count) from M [16, C_out, T]: A^T M A per tile, edges dropped.
void transform_outputs(const Conv2dGeometry& g, const Tiling& tiling, const float* m, std::int64_t first,
                       std::int64_t count, float* y) {
  const std::int64_t tiles = count * tiling.per_image(), out_h = g.out_height(), out_w = g.out_width();
  const std::int64_t position_stride = g.out_channels * tiles;
  for (std::int64_t co = 0; co < g.out_channels; ++co) {
    for (std::int64_t b = 0; b < count; ++b) {
      float* y_plane = y + ((first + b) * g.out_channels + co) * out_h * out_w;
      for (std::int64_t th = 0; th < tiling.tiles_h; ++th) {
        for (std::int64_t tw = 0; tw < tiling.tiles_w; ++tw) {
          const std::int64_t tile = (b * tiling.tiles_h + th) * tiling.tiles_w + tw;
          const float* from = m + co * tiles + tile;
          float p[4][4];
          for (int k = 0; k < kPositions; ++k) p[k / 4][k % 4] = from[k * position_stride];
          float s[2][4];  // A^T M
          for (int c = 0; c < 4; ++c) {
            s[0][c] = p[0][c] + p[1][c] + p[2][c];
            s[1][c] = p[1][c] - p[2][c] - p[3][c];
          }
          for (int r = 0; r < 2; ++r) {  // (A^T M) A
            const float out[2] = {s[r][0] + s[r][1] + s[r][2], s[r][1] - s[r][2] - s[r][3]};
            const std::int64_t oh = 2 * th + r;
            if (oh >= out_h) continue;
            for (int c = 0; c < 2; ++c) {
              const std::int64_t ow = 2 * tw + c;
              if (ow < out_w) y_plane[oh * out_w + ow] = out[c];
            }
          }
        }
      }
    }
  }
}

}  // namespace

void conv2d_forward(const Conv2dGeometry& g, const float* x, const float* w, const float* bias, float* y) {
  const Tiling tiling(g);
  std::vector<float> u(static_cast<std::size_t>(kPositions * g.out_channels * g.in_channels));
  transform_weights(g, w, u.data());
  const batch_chunks::Chunking chunks = batch_chunks::chunk_batch(
      g.batch, tiling.per_image(), kChunkTiles,
      kPositions * (g.in_channels + g.out_channels) * tiling.per_image(), std::int64_t{4} << 20);
  const std::int64_t max_tiles = chunks.images_per_chunk * tiling.per_image();
  batch_chunks::for_each_chunk(
      chunks.chunk_count, kPositions * (g.in_channels + g.out_channels) * max_tiles,
      [&](std::int64_t chunk, float* scratch) {
        const std::int64_t first = chunks.first_image(chunk), count = chunks.images_in(chunk, g.batch);
        const std::int64_t tiles = count * tiling.per_image();
        float* v = scratch;                                           // [16, C_in, tiles]
        float* m = scratch + kPositions * g.in_channels * max_tiles;  // [16, C_out, tiles]
        transform_inputs(g, tiling, x, first, count, v);
        for (int k = 0; k < kPositions; ++k) {
          const GemmGeometry product{.m = g.out_channels,
                                     .n = tiles,
                                     .k = g.in_channels,
                                     .lda = g.in_channels,
                                     .ldb = tiles,
                                     .ldc = tiles};
          gemm(Device::cpu(), product, 1.0f, u.data() + k * g.out_channels * g.in_channels,
               v + k * g.in_channels * tiles, 0.0f, m + k * g.out_channels * tiles);
        }
        transform_outputs(g, tiling, m, first, count, y);
      });
  if (bias) conv2d_add_bias(g, bias, y);
}

}  // namespace kiln::kernels::winograd
