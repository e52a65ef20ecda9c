// Convolution ladder, step 02, forward: direct convolution from shared memory. A block stages an input tile
// (with its halo) and the matching slice of the filters in shared memory, then computes an output tile of 16
// channels from there.
//
//   x [N, C, H, W]    w [K, C/groups, R, S]    y [N, K, P, Q]      (NCHW, float, y overwritten)
//   y[n, k, p, q] = sum over c in group(k), r, s of x[n, c, p*stride_h - pad_h + r*dil_h, q*stride_w - pad_w
//                   + s*dil_w] * w[k, c - group_start, r, s]      (taps outside the image read 0)
//
// What changes from step 01. There every thread fetched its C/groups*R*S inputs and as many weights from
// global memory (through the caches), so the 1024 outputs of an 8 x 8 x 16 tile issued 1024*C/groups*R*S
// loads of each. Here the block fetches each value of its input tile and each weight of its slice once, into
// shared memory, and every thread reads them from there: an input value serves the R*S taps that cover it
// and the block's 16 output channels; a weight serves the block's 64 output positions. Global (L1/L2)
// traffic drops by roughly that reuse, and the inner loop runs from shared memory and registers.
//
// The tiling (the numbers are the constexprs below):
//   block    an 8 x 8 tile of output positions (p0..p0+7, q0..q0+7) of image n, times 16 output channels
//            k0..k0+15 of one group: 1024 outputs; 256 threads
//   thread   one output position (i, j) of the tile (threadIdx.x % 64 = i * 8 + j) and 4 consecutive output
//            channels (the quad threadIdx.x / 64): 4 sums in registers. A warp is 32 positions of one quad,
//            so its filter reads are one address (a broadcast) and its input reads 32 neighbouring addresses.
//   stages   the group's C/groups input channels in chunks of up to 8 (fewer when the halo is large, so the
//            stage fits in 48 KiB): for each chunk, stage, __syncthreads, accumulate, __syncthreads.
//
// The halo. Output row p reads input rows p*stride_h - pad_h + r*dil_h for r < R, so the tile's rows p0..p0+7
// read input rows from ih0 = p0*stride_h - pad_h (p = p0, r = 0) to (p0+7)*stride_h - pad_h + (R-1)*dil_h
// (p = p0+7, r = R-1):
//   halo_h = 7*stride_h + (R-1)*dil_h + 1 rows, starting at ih0;  halo_w = 7*stride_w + (S-1)*dil_w + 1 cols
// from iw0 = q0*stride_w - pad_w. Output (i, j) of the tile, tap (r, s), reads the halo's element
// (i*stride_h + r*dil_h, j*stride_w + s*dil_w). Halo positions outside the image (the padding, or past the
// edge) are staged as 0, so the inner loop has no bounds tests. For 3x3, stride 1, dilation 1: a 10 x 10 halo
// for 8 x 8 outputs; stride 2: 17 x 17. A 1x1 stride-2 convolution stages 15 x 15 to use 8 x 8 of it (the
// price of a rectangle). Every tap of every channel must fit in one stage of one channel:
//   requirement: halo_h * halo_w + 16*R*S <= 12288 floats (48 KiB), true for any ordinary geometry (a 7x7
//   stride-2 stem needs 21*21 + 16*49 = 1225); any groups (a block's 16 channels never cross a group, so
//   depthwise convolution runs, with 15 of 16 channels idle), stride, padding and dilation.
//
// Shared memory per block: stage_channels * (16*R*S + halo_h*halo_w) floats, dynamic: for 3x3 stride 1,
// 8 * (144 + 100) * 4 = 7808 bytes. Layout: the filters first, w_tile[c][r][s][16 channels] (a multiple of
// 16 floats per input channel, so x_tile behind it and every float4 read stays 16-byte aligned), then
// x_tile[c][halo_h][halo_w].
#include <algorithm>
#include <cstdint>

#include "kernels/conv2d/ladder/ladder.hpp"
#include "kernels/ladder/launch.cuh"

namespace kiln::kernels::conv2d_ladder {
namespace {
namespace forward_shared_tiled {  // this step's names (its ladder compiles as one unit)

constexpr int kTileP = 8, kTileQ = 8;                // output positions per block: 8 rows x 8 columns
constexpr int kTileK = 16;                           // output channels per block
constexpr int kChannelsPerThread = 4;                // one float4 of the filter tile
constexpr int kQuads = kTileK / kChannelsPerThread;  // 4 groups of 4 channels
constexpr int kThreads = kTileP * kTileQ * kQuads;   // 256: one per (position, quad)
constexpr int kMaxStageChannels = 8;                 // input channels staged at once, at most
constexpr int kSharedFloats = 48 * 1024 / 4;         // 12288: the default dynamic shared-memory limit

// The geometry in int, with the output size and the per-group channel counts worked out once on the host.
struct Shape {
  int batch, channels, height, width;              // x [N, C, H, W]
  int out_channels, kernel_h, kernel_w;            // w [K, C/groups, R, S]
  int out_height, out_width;                       // y [N, K, P, Q]
  int channels_per_group, out_channels_per_group;  // C/groups, K/groups
  int stride_h, stride_w, pad_h, pad_w, dilation_h, dilation_w, groups;
};

Shape int_shape(const Conv2dGeometry& g) {
  const auto i = [](std::int64_t v) { return static_cast<int>(v); };
  Shape s{};
  s.batch = i(g.batch), s.channels = i(g.in_channels), s.height = i(g.in_height), s.width = i(g.in_width);
  s.out_channels = i(g.out_channels), s.kernel_h = i(g.kernel_h), s.kernel_w = i(g.kernel_w);
  s.out_height = i(g.out_height()), s.out_width = i(g.out_width());
  s.channels_per_group = i(g.in_channels_per_group());
  s.out_channels_per_group = i(g.out_channels_per_group());
  s.stride_h = i(g.stride_h), s.stride_w = i(g.stride_w), s.pad_h = i(g.pad_h), s.pad_w = i(g.pad_w);
  s.dilation_h = i(g.dilation_h), s.dilation_w = i(g.dilation_w), s.groups = i(g.groups);
  return s;
}

// The halo's extent along one axis (see the top of the file): the input rows (or columns) that kTile outputs
// with this stride read through a kernel of `taps` taps with this dilation. 64-bit: takes() may see any size.
constexpr std::int64_t halo_extent(int tile, std::int64_t stride, std::int64_t taps, std::int64_t dilation) {
  return (tile - 1) * stride + (taps - 1) * dilation + 1;
}

// How the launcher cut the work: the blocks, the halo and the stage size.
struct Tiling {
  int tiles_q, tiles_p;   // ceil(Q / 8), ceil(P / 8)
  int k_tiles_per_group;  // ceil((K/groups) / 16)
  int halo_h, halo_w;     // the staged input tile of one channel
  int stage_channels;     // input channels per stage, 1..8
};

__global__ void __launch_bounds__(kThreads)
    forward_shared_tiled_kernel(Shape g, Tiling t, const float* x, const float* w, float* y) {
  KILN_DYNAMIC_SHARED_MEMORY(shared_memory);  // unsigned char*, 16-byte aligned
  const int taps = g.kernel_h * g.kernel_w, halo_size = t.halo_h * t.halo_w;
  float* w_tile = reinterpret_cast<float*>(shared_memory);    // [stage_channels][R * S][16]
  float* x_tile = w_tile + t.stage_channels * taps * kTileK;  // [stage_channels][halo_h][halo_w]

  // Which tile: blockIdx.x = ((n * tiles_p + tile_p) * tiles_q + tile_q) * channel_tiles + channel_tile, the
  // channel tile fastest so that the blocks sharing an input tile run side by side (it stays in L2).
  const int channel_tiles = g.groups * t.k_tiles_per_group;
  int block = static_cast<int>(blockIdx.x);
  const int channel_tile = block % channel_tiles;
  block /= channel_tiles;
  const int tile_q = block % t.tiles_q;
  block /= t.tiles_q;
  const int tile_p = block % t.tiles_p;
  const int n = block / t.tiles_p;
  const int group = channel_tile / t.k_tiles_per_group;
  const int k_first = group * g.out_channels_per_group;                    // the group's channels are
  const int k_end = k_first + g.out_channels_per_group;                    // [k_first, k_end)
  const int k0 = k_first + (channel_tile % t.k_tiles_per_group) * kTileK;  // this block's 16: [k0, k0+16)
  const int c_first = group * g.channels_per_group;                        // the group's input channels
  const int p0 = tile_p * kTileP, q0 = tile_q * kTileQ;
  const int ih0 = p0 * g.stride_h - g.pad_h, iw0 = q0 * g.stride_w - g.pad_w;  // the halo's corner

  // This thread's output: position (i, j) of the tile, channels k0 + quad*4 .. k0 + quad*4 + 3.
  const int tid = static_cast<int>(threadIdx.x);
  const int i = (tid % (kTileP * kTileQ)) / kTileQ, j = tid % kTileQ, quad = tid / (kTileP * kTileQ);
  float sum[kChannelsPerThread] = {0.0f, 0.0f, 0.0f, 0.0f};

  for (int c0 = 0; c0 < g.channels_per_group; c0 += t.stage_channels) {
    const int stage = min(t.stage_channels, g.channels_per_group - c0);  // channels in this stage

    // Stage the filters: w_tile[(c * R*S + rs) * 16 + kk] = w[k0 + kk, c0 + c, r, s], zero for channels past
    // the group's end. Element e is (c * R*S + rs, kk) with kk fastest, so the shared stores are contiguous;
    // a warp's global loads hit 16 filters at 2 taps each, and the other warps of the stage read the rest of
    // those sectors (from L1).
    const int stage_taps = stage * taps;
    for (int e = tid; e < stage_taps * kTileK; e += kThreads) {
      const int kk = e % kTileK, tap = e / kTileK;  // tap = c * R*S + rs
      const int k = k0 + kk;
      w_tile[e] = k < k_end ? w[(k * g.channels_per_group + c0) * taps + tap] : 0.0f;
    }
    // Stage the halo: x_tile[c][hh][ww] = x[n, c_first + c0 + c, ih0 + hh, iw0 + ww], 0 outside the image.
    // Element e runs along ww, so a warp reads a run of one input row (coalesced).
    const float* x_stage = x + (n * g.channels + c_first + c0) * g.height * g.width;  // x[n, c_first + c0]
    for (int e = tid; e < stage * halo_size; e += kThreads) {
      const int c = e / halo_size, hh = (e % halo_size) / t.halo_w, ww = e % t.halo_w;
      const int ih = ih0 + hh, iw = iw0 + ww;
      const bool inside = ih >= 0 && ih < g.height && iw >= 0 && iw < g.width;
      x_tile[e] = inside ? x_stage[(c * g.height + ih) * g.width + iw] : 0.0f;
    }
    __syncthreads();  // the stage has landed

    for (int c = 0; c < stage; ++c) {
      // x_at[r*dil_h*halo_w + s*dil_w] = the halo element under tap (r, s) of output (i, j);
      // w_at[(r * S + s) * 16] = the float4 w[k0 + quad*4 .. +3, c0 + c, r, s].
      const float* x_at = x_tile + c * halo_size + (i * g.stride_h) * t.halo_w + j * g.stride_w;
      const float* w_at = w_tile + c * taps * kTileK + quad * kChannelsPerThread;
      for (int r = 0; r < g.kernel_h; ++r) {
        for (int s = 0; s < g.kernel_w; ++s) {
          const float in = x_at[r * g.dilation_h * t.halo_w + s * g.dilation_w];
          const float4 filter = *reinterpret_cast<const float4*>(w_at + (r * g.kernel_w + s) * kTileK);
          sum[0] += in * filter.x;
          sum[1] += in * filter.y;
          sum[2] += in * filter.z;
          sum[3] += in * filter.w;
        }
      }
    }
    __syncthreads();  // every thread is done with the stage before the next one overwrites it
  }

  // Store the outputs that exist: the tile may hang over the image's edge or the group's last channel.
  const int p = p0 + i, q = q0 + j;
  if (p >= g.out_height || q >= g.out_width) return;
  for (int m = 0; m < kChannelsPerThread; ++m) {
    const int k = k0 + quad * kChannelsPerThread + m;
    if (k < k_end) y[((n * g.out_channels + k) * g.out_height + p) * g.out_width + q] = sum[m];
  }
}

}  // namespace forward_shared_tiled
}  // namespace

void launch_02_forward_shared_tiled(const Conv2dGeometry& g, const float* x, const float* w, float* y) {
  using namespace forward_shared_tiled;
  const std::int64_t halo_h = halo_extent(kTileP, g.stride_h, g.kernel_h, g.dilation_h);
  const std::int64_t halo_w = halo_extent(kTileQ, g.stride_w, g.kernel_w, g.dilation_w);
  const std::int64_t floats_per_channel = kTileK * g.kernel_h * g.kernel_w + halo_h * halo_w;
  require_supported(
      "02_forward_shared_tiled", g, floats_per_channel <= kSharedFloats,
      "(7*stride_h + (R-1)*dilation_h + 1) * (7*stride_w + (S-1)*dilation_w + 1) + 16*R*S <= 12288");
  const Shape shape = int_shape(g);
  Tiling tiling{};
  tiling.tiles_q = (shape.out_width + kTileQ - 1) / kTileQ;
  tiling.tiles_p = (shape.out_height + kTileP - 1) / kTileP;
  tiling.k_tiles_per_group = (shape.out_channels_per_group + kTileK - 1) / kTileK;
  tiling.halo_h = static_cast<int>(halo_h);
  tiling.halo_w = static_cast<int>(halo_w);
  tiling.stage_channels = static_cast<int>(std::min<std::int64_t>(
      {kMaxStageChannels, g.in_channels_per_group(), kSharedFloats / floats_per_channel}));  // >= 1
  // Every block holds at least one output element, and y holds fewer than 2^31: the count fits an int.
  const std::int64_t blocks =
      std::int64_t{shape.batch} * tiling.tiles_p * tiling.tiles_q * shape.groups * tiling.k_tiles_per_group;
  const std::size_t shared_bytes =
      static_cast<std::size_t>(tiling.stage_channels * floats_per_channel) * sizeof(float);  // <= 48 KiB
  ladder::launch("conv2d ladder 02_forward_shared_tiled", forward_shared_tiled_kernel,
                 dim3(static_cast<unsigned>(blocks)), dim3(kThreads), shared_bytes, shape, tiling, x, w, y);
}

}  // namespace kiln::kernels::conv2d_ladder
