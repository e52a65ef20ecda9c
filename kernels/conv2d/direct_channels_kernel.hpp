// Direct convolution vectorized along the output channels: the strip of direct_strip.hpp read one output row
// at a time, so no junk position is ever computed.
//
// direct_kernel.hpp's forward tile puts output positions in the vectors: 32 consecutive strip indices, some
// of which are junk (the strip's padding column and rows: 21% of the work at 8x8, 12% at 16x16). This tile
// turns the roles around, as oneDNN's blocked kernels do:
//
//   acc[j][lane] = sum over k = (ci, kh, kw) of  strip[offsets[k] + q0 + j] * packed[k][lane]
//
// for kPositions consecutive outputs q0 + j of one output row (broadcast, one strip float each) by
// kVectors vectors of output channels (the packed weights, loaded). Each k step loads kVectors weight
// vectors and broadcasts kPositions strip floats for kPositions x kVectors FMAs: the GEMM micro-kernel's
// shape with A and B swapped. A row's last tile is moved back to end at the row's last output, recomputing
// a few outputs with the same bits rather than computing junk; a row shorter than a tile computes a whole
// tile on the strip's slack and writes only the row.
//
// The accumulators hold outputs channels-last ([position][channel]); the epilogue adds the bias and turns
// each 8 x 8 block into NCHW rows with the register transpose (kernels/simd/transpose_8x8.hpp).
//
// Backward-data runs the same tile over a strip of gy, one phase of the input gradient at a time (below), so
// it takes any stride, padding and dilation. There is no weight gradient here: direct_kernel.hpp's already
// visits real outputs only.
//
// Threads and bits: every output is computed by one thread, summing its k in a fixed order, whatever chunk
// of images it falls in; so the batch is cut into a multiple of the thread count (batch_chunks::balanced)
// and the result is still the same on any thread count.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "kernels/conv2d/batch_chunks.hpp"
#include "kernels/conv2d/conv2d.hpp"
#include "kernels/conv2d/direct_kernel.hpp"
#include "kernels/conv2d/direct_strip.hpp"
#include "kernels/simd/transpose_8x8.hpp"

namespace kiln::kernels::direct_channels {

// y[c * plane + j * column_stride] for c < channels, j < positions = sum over k < depth of
// strip_at[offsets[k] + j * step] * panel[k][c] (+ bias[c]). panel is [depth][kVectors * width]; bias, when
// not null, has kVectors * width floats. Consecutive outputs read the strip kStep floats apart: 1, or the
// stride when the tile walks the stride-1 strip of a strided forward, 2 for the common stride-2 layers; a
// constant the broadcasts fold into their addresses. kStep 0 takes the runtime `step` instead (strides past
// 2), at the price of an address sum per broadcast: with 8 positions, 8 of them beside the 16 FMAs of a k
// step, which held the 7x7 stride-2 stem to about 70% of the FMA rate.
template <typename V, int kPositions, int kVectors, int kStep = 1>
void channel_tile(std::int64_t depth, const float* panel, const std::int64_t* offsets, const float* strip_at,
                  const float* bias, float* y, std::int64_t plane, std::int64_t column_stride,
                  std::int64_t channels, std::int64_t positions, std::int64_t step = 1) {
  using Reg = typename V::Reg;
  constexpr int kChannels = kVectors * V::width;
  const std::int64_t input_step = kStep > 0 ? kStep : step;
  Reg acc[kPositions][kVectors];
#pragma GCC unroll 16
  for (int j = 0; j < kPositions; ++j) {
#pragma GCC unroll 4
    for (int v = 0; v < kVectors; ++v) acc[j][v] = V::zero();
  }
  for (std::int64_t k = 0; k < depth; ++k) {
    const float* column = strip_at + offsets[k];
    Reg weights[kVectors];
#pragma GCC unroll 4
    for (int v = 0; v < kVectors; ++v) weights[v] = V::load(panel + v * V::width);
#pragma GCC unroll 16
    for (int j = 0; j < kPositions; ++j) {
      const Reg input = V::broadcast(column[j * input_step]);
#pragma GCC unroll 4
      for (int v = 0; v < kVectors; ++v) acc[j][v] = V::fmadd(input, weights[v], acc[j][v]);
    }
    panel += kChannels;
  }

  // sum + bias is bias + sum, bit for bit: adding it here gives what adding it in NCHW would.
  alignas(64) float tile[kPositions][kChannels];
#pragma GCC unroll 16
  for (int j = 0; j < kPositions; ++j) {
#pragma GCC unroll 4
    for (int v = 0; v < kVectors; ++v) {
      const Reg sum = bias ? V::add(acc[j][v], V::load(bias + v * V::width)) : acc[j][v];
      V::store(tile[j] + v * V::width, sum);
    }
  }
  if (kPositions % 8 == 0 && positions == kPositions && column_stride == 1) {
    const std::int64_t blocks = channels / 8 * 8;
    for (int j = 0; j < kPositions; j += 8) {
      for (std::int64_t c = 0; c < blocks; c += 8)
        transpose_8x8(&tile[j][c], kChannels, y + c * plane + j, plane);
    }
    for (std::int64_t c = blocks; c < channels; ++c) {
      for (int j = 0; j < kPositions; ++j) y[c * plane + j] = tile[j][c];
    }
    return;
  }
  for (std::int64_t c = 0; c < channels; ++c) {
    for (std::int64_t j = 0; j < positions; ++j) y[c * plane + j * column_stride] = tile[j][c];
  }
}

// The tiles of one pass over `images` images of `rows` x `columns` outputs, `panels` panels of channels:
// tile t is panel t / per_panel(), then an image, a row, and a run of kPositions outputs in the row (the
// row's last run moved back to end at the row's end, or, in a row shorter than a tile, its start). (Templates
// on V only so that the two instruction sets never share a compiled function: direct_strip.hpp.)
template <typename V, int kPositions>
struct RowTiles {
  std::int64_t panels, images, rows, columns;

  struct Place {
    std::int64_t panel, image, row, column;
  };
  std::int64_t per_row() const { return (columns + kPositions - 1) / kPositions; }
  std::int64_t per_panel() const { return images * rows * per_row(); }
  std::int64_t count() const { return panels * per_panel(); }
  std::int64_t written() const { return std::min<std::int64_t>(kPositions, columns); }  // outputs per tile
  Place place(std::int64_t tile) const {
    const std::int64_t at = tile % per_panel(), run = at % per_row();
    return {tile / per_panel(), at / (rows * per_row()), at / per_row() % rows,
            std::min(run * kPositions, std::max<std::int64_t>(columns - kPositions, 0))};
  }
};

// The forward convolution. At a stride the tiles walk the stride-1 strip of the same padding, dilation and
// kernel, s_w floats from one output to the next (direct_strip.hpp's StridedOutputs): they read it one float
// at a time, so the strip need not be split into phases, and filling it is a plain copy of each row.
template <typename V, int kPositions, int kVectors>
void forward(const Conv2dGeometry& g, const float* x, const float* w, const float* bias, float* y) {
  constexpr std::int64_t kChannels = kVectors * V::width;
  const std::int64_t cg = g.in_channels_per_group(), cog = g.out_channels_per_group();
  const std::int64_t depth = cg * g.kernel_h * g.kernel_w;
  const std::int64_t panels = (cog + kChannels - 1) / kChannels;
  const std::int64_t plane_in = g.in_height * g.in_width, plane_out = g.out_height() * g.out_width();

  // A row shorter than a tile computes kPositions outputs: reads up to s_w * kPositions past its start.
  const Conv2dGeometry dense = direct::unit_stride(g);
  const std::int64_t slack = kPositions * g.stride_w;
  const direct::Strip<V> probe(dense, 1, 1, slack);
  const batch_chunks::Chunking chunks =
      batch_chunks::balanced(direct::chunk_images<V>(g, cg * probe.image_stride, direct::kForwardChunkFloats),
                             g.batch, compute_threads());
  const direct::Strip<V> strip(dense, chunks.images_per_chunk, 1, slack);
  const direct::StridedOutputs outputs(g, strip);

  // packed[group][panel][k][lane] = w[group * Cog + panel * kChannels + lane, k], lanes past Cog zero; and
  // the bias the same way.
  const std::int64_t packed_floats = g.groups * panels * depth * kChannels;
  const CpuScratch packed = cpu_scratch(packed_floats);
  std::fill(packed.get(), packed.get() + packed_floats, 0.0f);
  std::vector<float> packed_bias(static_cast<std::size_t>(g.groups * panels * kChannels), 0.0f);
  for (std::int64_t co = 0; co < g.out_channels; ++co) {
    const std::int64_t group = co / cog, panel = co % cog / kChannels, lane = co % cog % kChannels;
    float* sliver = packed.get() + (group * panels + panel) * depth * kChannels;
    for (std::int64_t k = 0; k < depth; ++k) sliver[k * kChannels + lane] = w[co * depth + k];
    if (bias) packed_bias[static_cast<std::size_t>((group * panels + panel) * kChannels + lane)] = bias[co];
  }
  const std::vector<std::int64_t> offsets = direct::tap_offsets<V>(dense, strip, 0);

  const auto run = [&]<int kStep>() {
    batch_chunks::for_each_chunk(
        chunks.chunk_count, strip.floats(cg), [&](std::int64_t chunk, float* x_strip) {
          const std::int64_t first = chunks.first_image(chunk);
          const RowTiles<V, kPositions> tiles{panels, chunks.images_in(chunk, g.batch), g.out_height(),
                                              g.out_width()};
          for (std::int64_t group = 0; group < g.groups; ++group) {
            strip.fill_input(x + (first * g.in_channels + group * cg) * plane_in, g.in_channels * plane_in,
                             tiles.images, cg, x_strip);
            direct::for_each_tile<V>(tiles.count(), [&](std::int64_t tile) {
              const auto at = tiles.place(tile);
              const std::int64_t co = at.panel * kChannels, panel = group * panels + at.panel;
              channel_tile<V, kPositions, kVectors, kStep>(
                  depth, packed.get() + panel * depth * kChannels, offsets.data(),
                  x_strip + outputs.first(at.image, at.row) + at.column * outputs.column_step,
                  bias ? packed_bias.data() + panel * kChannels : nullptr,
                  y + ((first + at.image) * g.out_channels + group * cog + co) * plane_out +
                      at.row * tiles.columns + at.column,
                  plane_out, 1, std::min(kChannels, cog - co), tiles.written(), outputs.column_step);
            });
          }
        });
  };
  if (g.stride_w == 1) {
    run.template operator()<1>();
  } else if (g.stride_w == 2) {
    run.template operator()<2>();
  } else {
    run.template operator()<0>();
  }
}

// ---- backward-data: the input gradient, one phase at a time -----------------------------------------------
//
// gx[n, ci, ih, iw] = sum of gy[n, co, oh, ow] * w[co, ci, kh, kw] over ih = oh * s - p + kh * d (and the
// same along w). Split the input rows by phase, ih = s * i + ph: tap kh reaches phase ph when ph + p - kh * d
// is a multiple of s, and row i of the phase then reads gy row i + shift, shift = (ph + p - kh * d) / s. So
// each phase is a stride-1 sum over a strip of gy, every (co, kh, kw) one constant offset: the forward tile
// again, with the phase's taps as k, C_in as the vectors' channels, and the outputs landing s rows and s
// columns apart in gx. At stride 1 there is one phase, and this is the transposed convolution; at stride 2
// there are four, which im2col + GEMM would instead serve with a col2im of overlapping adds. A phase no tap
// reaches (a 1x1 kernel at stride 2) is zero.

// One axis of the phases: for each phase, how many gx positions it has, its taps and their shifts.
template <typename V>
struct PhaseAxis {
  struct Phase {
    std::int64_t outputs = 0;
    std::vector<std::int64_t> taps, shifts;
    bool reached() const { return outputs > 0 && !taps.empty(); }
  };
  std::vector<Phase> phases;
  std::int64_t pad = 0;  // zeros each side of gy in the strip: every shift of every output stays inside

  PhaseAxis(std::int64_t size, std::int64_t out, std::int64_t kernel, std::int64_t stride, std::int64_t pad_,
            std::int64_t dilation) {
    for (std::int64_t phase = 0; phase < stride; ++phase) {
      Phase& p = phases.emplace_back();
      p.outputs = size > phase ? (size - phase + stride - 1) / stride : 0;
      for (std::int64_t tap = 0; tap < kernel; ++tap) {
        const std::int64_t reach = phase + pad_ - tap * dilation;
        if (reach % stride != 0) continue;
        p.taps.push_back(tap);
        p.shifts.push_back(reach / stride);
        if (p.outputs > 0)
          pad = std::max({pad, -p.shifts.back(), p.outputs - 1 + p.shifts.back() - (out - 1)});
      }
    }
  }
  const Phase& operator[](std::int64_t phase) const { return phases[static_cast<std::size_t>(phase)]; }
};

// The strip of gy the phases read: a stride-1 layout padded by their reach, whose "kernel" of 2 * pad + 1
// taps makes the strip hold every read. Padded gy position (r, c) of image b sits at output_index(b, r, c).
template <typename V>
Conv2dGeometry gy_strip_geometry(const Conv2dGeometry& g, const PhaseAxis<V>& rows,
                                 const PhaseAxis<V>& columns) {
  Conv2dGeometry layout = g;
  layout.in_channels = g.out_channels;
  layout.in_height = g.out_height();
  layout.in_width = g.out_width();
  layout.pad_h = rows.pad;
  layout.pad_w = columns.pad;
  layout.kernel_h = 2 * rows.pad + 1;
  layout.kernel_w = 2 * columns.pad + 1;
  layout.stride_h = layout.stride_w = layout.dilation_h = layout.dilation_w = 1;
  return layout;
}

// One phase (ph, pw) that some tap reaches: its k = (co, the phase's kh, its kw), the strip offset of each,
// and packed[group][panel][k][lane] = w[group * Cog + co, panel * kChannels + lane, kh, kw], lanes past Cg
// zero.
template <typename V, int kChannels>
struct PhasePanels {
  std::int64_t ph, pw, rows, columns, depth;
  std::vector<std::int64_t> offsets;
  CpuScratch packed;

  PhasePanels(const Conv2dGeometry& g, const float* w, const direct::Strip<V>& strip,
              const PhaseAxis<V>& row_axis, const PhaseAxis<V>& column_axis, std::int64_t ph_,
              std::int64_t pw_, std::int64_t panels)
      : ph(ph_), pw(pw_), rows(row_axis[ph_].outputs), columns(column_axis[pw_].outputs) {
    const auto& row = row_axis[ph];
    const auto& column = column_axis[pw];
    const std::int64_t cg = g.in_channels_per_group(), cog = g.out_channels_per_group();
    const std::int64_t taps = g.kernel_h * g.kernel_w;
    depth = cog * static_cast<std::int64_t>(row.taps.size() * column.taps.size());
    const std::int64_t packed_floats = g.groups * panels * depth * kChannels;
    packed = cpu_scratch(packed_floats);
    std::fill(packed.get(), packed.get() + packed_floats, 0.0f);
    std::int64_t k = 0;
    for (std::int64_t co = 0; co < cog; ++co) {
      for (std::size_t h = 0; h < row.taps.size(); ++h) {
        for (std::size_t v = 0; v < column.taps.size(); ++v, ++k) {
          offsets.push_back(co * strip.channel_stride + strip.tap_offset(row.shifts[h] + row_axis.pad,
                                                                         column.shifts[v] + column_axis.pad));
          const std::int64_t tap = row.taps[h] * g.kernel_w + column.taps[v];
          for (std::int64_t group = 0; group < g.groups; ++group) {
            const float* weights =
                w + (group * cog + co) * cg * taps + tap;  // w[group * Cog + co, 0, kh, kw]
            for (std::int64_t ci = 0; ci < cg; ++ci) {
              float* sliver = packed.get() + (group * panels + ci / kChannels) * depth * kChannels;
              sliver[k * kChannels + ci % kChannels] = weights[ci * taps];
            }
          }
        }
      }
    }
  }
};

// gx = 0 on the phases no tap reaches, for images [first, first + count).
template <typename V>
void zero_unreached_phases(const Conv2dGeometry& g, const PhaseAxis<V>& rows, const PhaseAxis<V>& columns,
                           std::int64_t first, std::int64_t count, float* gx) {
  for (std::int64_t ph = 0; ph < g.stride_h; ++ph) {
    for (std::int64_t pw = 0; pw < g.stride_w; ++pw) {
      if (rows[ph].reached() && columns[pw].reached()) continue;  // backward_data writes it
      for (std::int64_t plane = first * g.in_channels; plane < (first + count) * g.in_channels; ++plane) {
        float* gx_plane = gx + plane * g.in_height * g.in_width;
        for (std::int64_t ih = ph; ih < g.in_height; ih += g.stride_h) {
          for (std::int64_t iw = pw; iw < g.in_width; iw += g.stride_w) gx_plane[ih * g.in_width + iw] = 0;
        }
      }
    }
  }
}

template <typename V, int kPositions, int kVectors>
void backward_data(const Conv2dGeometry& g, const float* gy, const float* w, float* gx) {
  constexpr std::int64_t kChannels = kVectors * V::width;
  const std::int64_t cg = g.in_channels_per_group(), cog = g.out_channels_per_group();
  const std::int64_t panels = (cg + kChannels - 1) / kChannels;
  const std::int64_t plane_in = g.in_height * g.in_width, plane_out = g.out_height() * g.out_width();
  const PhaseAxis<V> rows(g.in_height, g.out_height(), g.kernel_h, g.stride_h, g.pad_h, g.dilation_h);
  const PhaseAxis<V> columns(g.in_width, g.out_width(), g.kernel_w, g.stride_w, g.pad_w, g.dilation_w);

  const Conv2dGeometry layout = gy_strip_geometry(g, rows, columns);
  const direct::Strip<V> probe(layout, 1, 1, kPositions);
  const batch_chunks::Chunking chunks = batch_chunks::balanced(
      direct::chunk_images<V>(layout, cog * probe.image_stride, direct::kForwardChunkFloats), g.batch,
      compute_threads());
  const direct::Strip<V> strip(layout, chunks.images_per_chunk, 1, kPositions);

  std::vector<PhasePanels<V, kChannels>> phases;
  for (std::int64_t ph = 0; ph < g.stride_h; ++ph) {
    for (std::int64_t pw = 0; pw < g.stride_w; ++pw) {
      if (rows[ph].reached() && columns[pw].reached())
        phases.emplace_back(g, w, strip, rows, columns, ph, pw, panels);
    }
  }

  batch_chunks::for_each_chunk(
      chunks.chunk_count, strip.floats(cog), [&](std::int64_t chunk, float* gy_strip) {
        const std::int64_t first = chunks.first_image(chunk), count = chunks.images_in(chunk, g.batch);
        zero_unreached_phases(g, rows, columns, first, count, gx);
        for (std::int64_t group = 0; group < g.groups; ++group) {
          strip.fill_input(gy + (first * g.out_channels + group * cog) * plane_out,
                           g.out_channels * plane_out, count, cog, gy_strip);
          for (const PhasePanels<V, kChannels>& phase : phases) {
            const RowTiles<V, kPositions> tiles{panels, count, phase.rows, phase.columns};
            direct::for_each_tile<V>(tiles.count(), [&](std::int64_t tile) {
              const auto at = tiles.place(tile);
              const std::int64_t ci = at.panel * kChannels;
              channel_tile<V, kPositions, kVectors>(
                  phase.depth, phase.packed.get() + (group * panels + at.panel) * phase.depth * kChannels,
                  phase.offsets.data(), gy_strip + strip.output_index(at.image, at.row, at.column), nullptr,
                  gx + ((first + at.image) * g.in_channels + group * cg + ci) * plane_in +
                      (at.row * g.stride_h + phase.ph) * g.in_width + at.column * g.stride_w + phase.pw,
                  plane_in, g.stride_w, std::min(kChannels, cg - ci), tiles.written());
            });
          }
        }
      });
}

}  // namespace kiln::kernels::direct_channels
