// bfloat16 convolutions on AMX tiles (kernels/amx/amx.hpp) for channels-last activations: the forward, the
// backward data that is one at stride 1, and the weight gradient. The forward is the
// implicit GEMM y[p][k] = sum over taps (r, s) and channels c of x[p + (r, s)][c] w[k][c][r][s] with no
// im2col, because in [N, H, W, C] the C channels a tap reads at one position are contiguous, and the 16
// positions of a tile row, consecutive output columns, lie a fixed stride apart: one tile load each.
//
//   x  [N, H, W, C_in] bfloat16 (channels-last)      w  [C_out, C_in, KH, KW] bfloat16 (kiln's layout)
//   y  [N, OH, OW, C_out] bfloat16 (channels-last)   bias [C_out] bfloat16 or null
//
// Products of bfloat16 are exact in float; each tile multiply adds pairs of them in float (AMX's order,
// not the float kernels': results agree with them within float rounding, and both are rounded once to
// bfloat16). One more difference: the tile multiply reads a subnormal bfloat16 (below 2^-126) as zero, where
// the float kernels keep it (checked on this project's Sapphire Rapids: 2^-127 x 1 gives 0); activations and
// weights in training are nowhere near. amx_bf16_conv.cpp says how the tiles are laid out.
#pragma once

#include <algorithm>
#include <cstdint>

#include "core/bfloat16.hpp"
#include "kernels/conv2d/conv2d.hpp"
#include "kernels/cpu_cache.hpp"

namespace kiln::kernels::amx {

// Whether conv2d_forward_bf16 serves g: channels-last activations, one group, and C_out a multiple of 16 (an
// accumulator's columns; C_in is padded to 16 with zeros, so the 3-channel stem runs too; grouped
// convolutions take the float path). Inline, so the test runs in the caller's baseline code, not in the
// AMX-compiled file.
inline bool conv2d_forward_bf16_serves(const Conv2dGeometry& g) {
  return g.channels_last && g.groups == 1 && g.out_channels % 16 == 0;
}

// Few input channels (the RGB stems) reduce along a kernel row's window instead, its kernel_w columns of C
// channels one contiguous run in channels-last x, rather than over channels padded to 16 a tap at a time
// (amx_bf16_window_rows.cpp): where C_in < 16, the run fits a 64-byte tile row, and its columns are
// adjacent (dilation 1 along the rows). conv2d_forward_bf16 and conv2d_backward_weight_bf16 take it there.
inline bool window_rows_serve(const Conv2dGeometry& g) {
  return g.channels_last && g.groups == 1 && g.out_channels % 16 == 0 && g.in_channels < 16 &&
         g.in_channels * g.kernel_w <= 32 && g.dilation_w == 1;
}
void conv2d_forward_bf16_window_rows(const Conv2dGeometry& g, const bfloat16* x, const bfloat16* w,
                                     const bfloat16* bias, bfloat16* y);
void conv2d_backward_weight_bf16_window_rows(const Conv2dGeometry& g, const bfloat16* gy, const bfloat16* x,
                                             bfloat16* gw);

// The convolution above. Only where kernels::amx_bf16_usable() and conv2d_forward_bf16_serves(g).
void conv2d_forward_bf16(const Conv2dGeometry& g, const bfloat16* x, const bfloat16* w, const bfloat16* bias,
                         bfloat16* y);

// Two ways to fill a tile's 16 rows of positions, in the forward and in each phase of backward data
// (amx_bf16_conv.cpp). Along an output row: 16 consecutive output columns, whose inputs at a tap lie a
// stride's channel runs apart; a row narrower than 16 leaves tile rows empty, and border positions multiply
// the padding's zeros. Across images: one output position in 16 images, whose inputs at a tap lie an image
// apart; every tile row full, and a tap that falls outside the input there is skipped for all 16 at once.
// Planes of at most 8 columns go across images where the batch fills a tile: ResNet-18's 3x3 layers on
// CIFAR's 32x32 images (4x4, 2x2 and 1x1 planes) filled 4, 2 and 1 tile rows in 16 along a row, and
// multiplied 9 taps where about 7, 4 and 1 reach the input. Inline so a test can see which way a shape goes.
inline constexpr std::int64_t kMaxColumnsAcrossImages = 8;
inline bool tile_rows_across_images(std::int64_t images, std::int64_t out_columns) {
  return images >= 16 && out_columns <= kMaxColumnsAcrossImages;
}

// Backward data is forward convolutions of gy, one for each stride phase of gx (amx_bf16_conv.cpp says how),
// at any stride, padding and dilation; gx's channels, the phases' output channels, a multiple of 16 (gy's are
// padded to 16 with zeros).
inline bool conv2d_backward_data_bf16_serves(const Conv2dGeometry& g) {
  return g.channels_last && g.groups == 1 && g.in_channels % 16 == 0;
}
// gx [N, H, W, C_in] from gy [N, OH, OW, C_out] and w; accumulating, added to gx's values (each rounded,
// then the sum rounded: the bits of a fresh gx and an add). Only where amx_bf16_usable() and
// conv2d_backward_data_bf16_serves(g).
void conv2d_backward_data_bf16(const Conv2dGeometry& g, const bfloat16* gy, const bfloat16* w, bfloat16* gx,
                               bool accumulate = false);

// The weight gradient (amx_bf16_weight_gradient.cpp says how): any stride, padding and dilation, as the
// forward serves.
inline bool conv2d_backward_weight_bf16_serves(const Conv2dGeometry& g) {
  return conv2d_forward_bf16_serves(g);
}
// The positions of an image's phase grid, and the input channels padded to 16 (amx_bf16_weight_gradient.cpp).
inline std::int64_t weight_gradient_grid_positions(const Conv2dGeometry& g) {
  return (g.in_height + 2 * g.pad_h + g.stride_h - 1) / g.stride_h *
         ((g.in_width + 2 * g.pad_w + g.stride_w - 1) / g.stride_w);
}
inline std::int64_t weight_gradient_channels(const Conv2dGeometry& g) {
  return (g.in_channels + 15) / 16 * 16;
}
// A chunk's operands an image (its input's phases in pairs twice, gy's tiles), in bytes.
inline std::int64_t weight_gradient_bytes_per_image(const Conv2dGeometry& g) {
  return weight_gradient_grid_positions(g) * static_cast<std::int64_t>(sizeof(bfloat16)) *
         (2 * g.stride_h * g.stride_w * weight_gradient_channels(g) + g.out_channels);
}
// The float sums of the gradient, [taps][C_out][C], in bytes: one partial gradient.
inline std::int64_t weight_gradient_sums_bytes(const Conv2dGeometry& g) {
  return g.kernel_h * g.kernel_w * g.out_channels * weight_gradient_channels(g) *
         static_cast<std::int64_t>(sizeof(float));
}
// Its chunks of whole images, where each thread takes whole chunks. Two costs pull apart: a chunk's operands
// should stay in L2 (about 1 MiB), and every chunk writes a partial gradient that the end reads back, both
// from memory. So a chunk holds up to the larger of 1 MiB and four partial gradients' worth of operands; and
// the chunks are a multiple of 4 where the batch allows, so that 2 or 4 threads share them evenly. Measured
// on two Sapphire Rapids cores, batch 128 (conv2d_bench --bf16 --channels-last), against the earlier rule (1
// MiB, a multiple of 8): the VGG-style net's 128 -> 128 at 8x8 (576 KiB of sums) 2.81 -> 2.23 ms (8 chunks,
// 16 before), MobileNet-style's 256 -> 512 at 4x4 0.91 -> 0.57 and 128 -> 256 at 8x8 0.65 -> 0.59; the
// layers whose operands are large against their sums (ResNet-20's at 32x32) keep their chunks. A multiple of
// 2 measured better still on two cores (2.04 and 0.49 ms), but would leave most threads of a larger machine
// idle. Fixed by the shape, never by the thread count (the chunks' sums are added in chunk order); inline so
// a test can make several.
inline std::int64_t conv2d_backward_weight_bf16_images_per_chunk(const Conv2dGeometry& g) {
  constexpr std::int64_t kOperandBytes = std::int64_t{1} << 20, kPartials = 4, kChunkMultiple = 4;
  const std::int64_t chunk_bytes = std::max(kOperandBytes, kPartials * weight_gradient_sums_bytes(g));
  const std::int64_t most = std::max<std::int64_t>(1, chunk_bytes / weight_gradient_bytes_per_image(g));
  const std::int64_t chunks =
      ((g.batch + most - 1) / most + kChunkMultiple - 1) / kChunkMultiple * kChunkMultiple;
  return (g.batch + std::min(chunks, g.batch) - 1) / std::min(chunks, g.batch);
}

// Whether its threads split each chunk's passes, the chunks going one after another, rather than taking
// whole chunks with a partial gradient each (amx_bf16_weight_gradient.cpp): where a thread's partial
// gradient, the float sums [taps][C_out][C], would take half its core's L2 or more, leaving no room there
// for the chunk's operands (about 1 MiB). Measured on two Sapphire Rapids cores, batch 128 (conv2d_bench
// --bf16 --channels-last), by chunk against by pass: MobileNet's pointwise layers 512 -> 512 at 4x4 (1 MiB
// of sums) 1.82 against 1.40 ms, 512 -> 1024 at 2x2 (2 MiB) 2.51 against 0.73, 1024 -> 1024 at 2x2 (4 MiB)
// 53 against 1.42; the VGG-style net's 3x3 layers at 8x8, 64 -> 128 (288 KiB) 1.14 against 2.48 and
// 128 -> 128 (576 KiB) 2.68 against 4.49, which the earlier rule (sums larger than a chunk's input) split.
// Inline so a test can take both ways.
inline bool conv2d_backward_weight_bf16_splits_passes(const Conv2dGeometry& g) {
  return 2 * weight_gradient_sums_bytes(g) >= per_core_l2_bytes();
}

// The chunks where the threads split each chunk's passes: the chunks go one after another, every thread
// reading each one, so a chunk is not held to one thread's L2. What matters there is the gradient: every
// chunk after the first loads each accumulator back from the float sums (4 MiB for MobileNet's 1024 -> 1024
// pointwise layer, in rows 4 KiB apart) and stores it again. So the batch is cut into the fewest chunks of at
// most 4 MiB of operands, of equal size. Measured on two Sapphire Rapids cores, batch 128 (conv2d_bench
// --bf16 --channels-last): the 1024 -> 1024 layer at 2x2 3.36 -> 1.41 ms (8 chunks of 16 images before, the
// other way's rule; one chunk now), 512 -> 1024 at 2x2 1.46 -> 0.81, 512 -> 512 at 4x4 1.86 -> 1.44 (two
// chunks); chunks of 2 MiB made that last one 1.37 but the first 2.33.
inline std::int64_t conv2d_backward_weight_bf16_split_images_per_chunk(const Conv2dGeometry& g) {
  constexpr std::int64_t kChunkBytes = std::int64_t{4} << 20;
  const std::int64_t most = std::max<std::int64_t>(1, kChunkBytes / weight_gradient_bytes_per_image(g));
  const std::int64_t chunks = (g.batch + most - 1) / most;
  return (g.batch + chunks - 1) / chunks;
}

// Small planes' weight gradient reduces over the images instead (amx_bf16_weight_gradient_across_images.cpp):
// where the forward's tile rows go across images, the kernel has more than one tap (a 1x1 kernel's phase
// grid is its plane, nothing wasted), and the input channels fill whole tiles. Two Sapphire Rapids cores,
// batch 128, ms, phase grid / across images: ResNet-18's 3x3 layers 256 -> 256 at 2x2 2.18 / 0.38, 128 ->
// 128 at 4x4 0.75 / 0.30, 64 -> 64 at 8x8 0.50 / 0.38; MobileNet's pointwise 512 -> 1024 at 2x2 0.53 / 1.15.
inline bool weight_gradient_across_images(const Conv2dGeometry& g) {
  return g.kernel_h * g.kernel_w > 1 && g.in_channels % 16 == 0 &&
         tile_rows_across_images(g.batch, g.out_width());
}
void conv2d_backward_weight_bf16_across_images(const Conv2dGeometry& g, const bfloat16* gy, const bfloat16* x,
                                               bfloat16* gw);

// gw [C_out, C_in, KH, KW] from gy [N, OH, OW, C_out] and x [N, H, W, C_in]: along the window's rows where
// window_rows_serve(g), across images where weight_gradient_across_images(g), else on the phase grid. Only
// where amx_bf16_usable() and conv2d_backward_weight_bf16_serves(g). images_per_chunk: 0 for the shape's own
// way and chunks (the two functions above, by the way the threads share the work); a test passes a number of
// images to make more chunks, on the phase grid whatever the shape.
void conv2d_backward_weight_bf16(const Conv2dGeometry& g, const bfloat16* gy, const bfloat16* x, bfloat16* gw,
                                 std::int64_t images_per_chunk = 0);

}  // namespace kiln::kernels::amx
