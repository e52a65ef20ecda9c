// Convolutions on small planes as GEMMs over the batch, one per kernel tap and run of output positions.
//
// Deep in a network on photos of 80 to 110 pixels the planes are 3x3 (ResNet-18's last stage, and the
// stride-2 layer into it from 6x6), with 256 or 512 channels a side. F(2x2, 3x3) covers a 3x3 plane with 2x2
// tiles, 16 outputs for 9, and its transformed filter (16 x C_in x C_out floats, 16 MiB at 512 -> 512) is
// re-read for every block of tiles; the strip and im2col multiply the padding, which a 3x3 plane's border
// taps mostly read (49 of its 81 position-tap pairs reach the input). Across the batch the same layer is
// large and plain: at one output position o, tap t adds
//
//   Y[o] [N, C_out] += X[i] [N, C_in] . W_t^T [C_in, C_out],   i the input position tap t reads from o,
//
// with the N images as the GEMM's rows. So the batch is laid out position by position, each position an
// [N, C] matrix ("batch by position", BP), and every (tap, output position) pair that reaches the input is a
// slice of one GEMM: consecutive output columns read consecutive input columns, so a tap's valid columns of
// an output row are one GEMM of run * N rows, and where a tap reaches the whole width the rows join too.
// Every multiply-add is one the convolution has; nothing multiplies the padding.
//
//   forward          Yt[o-run]  += Xt[i-run] . Wt[t]^T      per (tap, run), taps in kernel order
//   backward-data    GXt[i-run] += GYt[o-run] . Wt[t]       the same runs, written into the input's slots
//   backward-weight  GWt[t]     += GYt[o-run]^T . Xt[i-run] a tap's runs in order
//
//   Xt, GXt [input slots][N][C_in]   Yt, GYt [OH*OW][N][C_out]   Wt, GWt [KH*KW][C_out][C_in]
//
// Strides: the input's positions are laid out phase by phase (stride phases (ih % sh, iw % sw), each a
// plane of ceil(H / sh) x ceil(W / sw) positions), so that at any stride a tap reads consecutive slots along
// an output row (input column ow * sw + offset: one phase, consecutive columns within it). Dilation only
// moves the offsets. One group.
//
// The transposes into and out of BP take one pass over each operand (a 3x3 plane's batch is about a MiB), and
// the weights one over the filter; the GEMMs keep their own threads. The layout is the same from NCHW and
// channels-last tensors (a channel run of the latter is a row of an [N, C] matrix), so both give the same
// bits, with no conversion around the call. Batch 64, 2 threads of a Xeon with AVX-512, 512 -> 512 at 3x3,
// ms, forward / backward-data / weight gradient: F(2x2, 3x3) 12.8 / 16.3 / 15.6, im2col + GEMM 17.6 / 19.3
// / 13.4, this way 7.3 / 7.3 / 6.5, its GEMMs near the machine's peak; the filter's transpose into taps is
// a tenth of the forward, the GEMMs' packing another (each run packs its tap's matrix; algorithm.cpp's rule
// 3 says which planes it takes).
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "kernels/conv2d/conv2d.hpp"
#include "kernels/conv2d/im2col.hpp"  // im2col_valid_outputs
#include "kernels/cpu_scratch.hpp"
#include "kernels/gemm/gemm.hpp"

namespace kiln::kernels::tap_gemm {
namespace {

// Below this many floats a transpose runs on one thread: threads would cost more than they save.
constexpr std::int64_t kParallelFloats = std::int64_t{1} << 15;

// Where the input's positions sit in BP: phase by phase, each phase a plane of rows x columns slots (the
// last rows or columns of a phase unused where H or W is not a multiple of the stride).
struct InputSlots {
  std::int64_t stride_h, stride_w, rows, columns;

  explicit InputSlots(const Conv2dGeometry& g)
      : stride_h(g.stride_h),
        stride_w(g.stride_w),
        rows((g.in_height + g.stride_h - 1) / g.stride_h),
        columns((g.in_width + g.stride_w - 1) / g.stride_w) {}
  std::int64_t count() const { return stride_h * stride_w * rows * columns; }
  std::int64_t slot(std::int64_t ih, std::int64_t iw) const {
    const std::int64_t phase = ih % stride_h * stride_w + iw % stride_w;
    return (phase * rows + ih / stride_h) * columns + iw / stride_w;
  }
};

// One GEMM's worth of (tap, output position) pairs: `positions` consecutive output slots from out_slot,
// reading as many consecutive input slots from in_slot.
struct Run {
  std::int64_t tap, out_slot, in_slot, positions;
};

// Every tap's runs, taps in kernel order, each tap's runs in output order: for each output row the tap
// reaches, its valid columns (im2col's range); all those rows as one run where the tap reaches every column
// and the input phase's rows are as wide as the output's, so that both sides' slots run on across rows.
std::vector<Run> runs_of(const Conv2dGeometry& g, const InputSlots& slots) {
  std::vector<Run> runs;
  const std::int64_t out_width = g.out_width();
  for (std::int64_t kh = 0; kh < g.kernel_h; ++kh) {
    const std::int64_t row_offset = kh * g.dilation_h - g.pad_h;
    const Im2colRange rows = im2col_valid_outputs(row_offset, g.stride_h, g.in_height, g.out_height());
    for (std::int64_t kw = 0; kw < g.kernel_w; ++kw) {
      const std::int64_t column_offset = kw * g.dilation_w - g.pad_w;
      const Im2colRange columns = im2col_valid_outputs(column_offset, g.stride_w, g.in_width, out_width);
      if (rows.begin == rows.end || columns.begin == columns.end) continue;
      const std::int64_t tap = kh * g.kernel_w + kw;
      const auto run_from = [&](std::int64_t oh, std::int64_t positions) {
        runs.push_back({tap, oh * out_width + columns.begin,
                        slots.slot(oh * g.stride_h + row_offset, columns.begin * g.stride_w + column_offset),
                        positions});
      };
      const bool whole_rows = columns.begin == 0 && columns.end == out_width && slots.columns == out_width;
      if (whole_rows) {
        run_from(rows.begin, (rows.end - rows.begin) * out_width);
        continue;
      }
      for (std::int64_t oh = rows.begin; oh < rows.end; ++oh) run_from(oh, columns.end - columns.begin);
    }
  }
  return runs;
}

// An activation tensor [N, C, P] (NCHW) or [N, P, C] (channels-last) and its BP form [slot(p)][N][C].
struct Activation {
  std::int64_t batch, channels, positions;
  bool channels_last;

  const float* channel_run(const float* tensor, std::int64_t n, std::int64_t p) const {
    return tensor + (n * positions + p) * channels;
  }
  float* channel_run(float* tensor, std::int64_t n, std::int64_t p) const {
    return tensor + (n * positions + p) * channels;
  }
};

// bp[slot_of(p)][n][c] = tensor's (n, c, p), each image on one thread.
template <typename SlotOf>
void to_batch_by_position(const Activation& a, const float* tensor, SlotOf slot_of, float* bp) {
#pragma omp parallel for schedule(static) if (a.batch * a.channels * a.positions >= kParallelFloats)
  for (std::int64_t n = 0; n < a.batch; ++n) {
    for (std::int64_t p = 0; p < a.positions; ++p) {
      float* row = bp + (slot_of(p) * a.batch + n) * a.channels;
      if (a.channels_last) {
        std::memcpy(row, a.channel_run(tensor, n, p), static_cast<std::size_t>(a.channels) * sizeof(float));
        continue;
      }
      const float* plane = tensor + n * a.channels * a.positions + p;
      for (std::int64_t c = 0; c < a.channels; ++c) row[c] = plane[c * a.positions];
    }
  }
}

// tensor's (n, c, p) = bp[slot_of(p)][n][c] (+ bias[c] when not null).
template <typename SlotOf>
void from_batch_by_position(const Activation& a, const float* bp, SlotOf slot_of, const float* bias,
                            float* tensor) {
#pragma omp parallel for schedule(static) if (a.batch * a.channels * a.positions >= kParallelFloats)
  for (std::int64_t n = 0; n < a.batch; ++n) {
    for (std::int64_t p = 0; p < a.positions; ++p) {
      const float* row = bp + (slot_of(p) * a.batch + n) * a.channels;
      if (a.channels_last) {
        float* run = a.channel_run(tensor, n, p);
        for (std::int64_t c = 0; c < a.channels; ++c) run[c] = bias ? row[c] + bias[c] : row[c];
        continue;
      }
      float* plane = tensor + n * a.channels * a.positions + p;
      for (std::int64_t c = 0; c < a.channels; ++c) plane[c * a.positions] = bias ? row[c] + bias[c] : row[c];
    }
  }
}

std::int64_t weight_elements(const Conv2dGeometry& g) {
  return g.out_channels * g.in_channels * g.kernel_h * g.kernel_w;
}

Activation input_of(const Conv2dGeometry& g) {
  return {g.batch, g.in_channels, g.in_height * g.in_width, g.channels_last};
}
Activation output_of(const Conv2dGeometry& g) {
  return {g.batch, g.out_channels, g.out_height() * g.out_width(), g.channels_last};
}

// The input's BP slot of position p = ih * W + iw, and the output's (its own order).
auto input_slot_of(const Conv2dGeometry& g, const InputSlots& slots) {
  return [&g, &slots](std::int64_t p) { return slots.slot(p / g.in_width, p % g.in_width); };
}
auto output_slot_of() {
  return [](std::int64_t p) { return p; };
}

// w [C_out, C_in, taps] <-> wt [taps][C_out][C_in]: each tap's matrix one GEMM operand.
void taps_apart(const Conv2dGeometry& g, const float* w, float* wt) {
  const std::int64_t taps = g.kernel_h * g.kernel_w, pairs = g.out_channels * g.in_channels;
#pragma omp parallel for schedule(static) if (pairs * taps >= kParallelFloats)
  for (std::int64_t pair = 0; pair < pairs; ++pair) {
    for (std::int64_t t = 0; t < taps; ++t) wt[t * pairs + pair] = w[pair * taps + t];
  }
}
void taps_together(const Conv2dGeometry& g, const float* wt, float* w) {
  const std::int64_t taps = g.kernel_h * g.kernel_w, pairs = g.out_channels * g.in_channels;
#pragma omp parallel for schedule(static) if (pairs * taps >= kParallelFloats)
  for (std::int64_t pair = 0; pair < pairs; ++pair) {
    for (std::int64_t t = 0; t < taps; ++t) w[pair * taps + t] = wt[t * pairs + pair];
  }
}

}  // namespace

bool serves(const Conv2dGeometry& g) { return g.groups == 1; }

void conv2d_forward(const Conv2dGeometry& g, const float* x, const float* w, const float* bias, float* y) {
  const InputSlots slots(g);
  const Activation in = input_of(g), out = output_of(g);
  const std::int64_t n = g.batch, c_in = g.in_channels, c_out = g.out_channels;
  const CpuScratch xt = cpu_scratch(slots.count() * n * c_in), wt = cpu_scratch(weight_elements(g)),
                   yt = cpu_scratch(out.positions * n * c_out);
  to_batch_by_position(in, x, input_slot_of(g, slots), xt.get());
  taps_apart(g, w, wt.get());
  std::fill_n(yt.get(), out.positions * n * c_out, 0.0f);
  for (const Run& run : runs_of(g, slots)) {
    const GemmGeometry product{.m = run.positions * n,
                               .n = c_out,
                               .k = c_in,
                               .trans_b = true,
                               .lda = c_in,
                               .ldb = c_in,
                               .ldc = c_out};
    gemm<float>(Device::cpu(), product, 1.0f, xt.get() + run.in_slot * n * c_in,
                wt.get() + run.tap * c_out * c_in, 1.0f, yt.get() + run.out_slot * n * c_out);
  }
  from_batch_by_position(out, yt.get(), output_slot_of(), bias, y);
}

void conv2d_backward_data(const Conv2dGeometry& g, const float* gy, const float* w, float* gx) {
  const InputSlots slots(g);
  const Activation in = input_of(g), out = output_of(g);
  const std::int64_t n = g.batch, c_in = g.in_channels, c_out = g.out_channels;
  const CpuScratch gyt = cpu_scratch(out.positions * n * c_out), wt = cpu_scratch(weight_elements(g)),
                   gxt = cpu_scratch(slots.count() * n * c_in);
  to_batch_by_position(out, gy, output_slot_of(), gyt.get());
  taps_apart(g, w, wt.get());
  std::fill_n(gxt.get(), slots.count() * n * c_in, 0.0f);  // inputs no tap reaches get 0
  for (const Run& run : runs_of(g, slots)) {
    const GemmGeometry product{
        .m = run.positions * n, .n = c_in, .k = c_out, .lda = c_out, .ldb = c_in, .ldc = c_in};
    gemm<float>(Device::cpu(), product, 1.0f, gyt.get() + run.out_slot * n * c_out,
                wt.get() + run.tap * c_out * c_in, 1.0f, gxt.get() + run.in_slot * n * c_in);
  }
  from_batch_by_position(in, gxt.get(), input_slot_of(g, slots), nullptr, gx);
}

void conv2d_backward_weight(const Conv2dGeometry& g, const float* gy, const float* x, float* gw) {
  const InputSlots slots(g);
  const Activation in = input_of(g), out = output_of(g);
  const std::int64_t n = g.batch, c_in = g.in_channels, c_out = g.out_channels;
  const std::int64_t taps = g.kernel_h * g.kernel_w;
  const CpuScratch gyt = cpu_scratch(out.positions * n * c_out), xt = cpu_scratch(slots.count() * n * c_in),
                   gwt = cpu_scratch(weight_elements(g));
  to_batch_by_position(out, gy, output_slot_of(), gyt.get());
  to_batch_by_position(in, x, input_slot_of(g, slots), xt.get());
  std::vector<char> reached(static_cast<std::size_t>(taps), 0);  // whether the tap's sum has begun
  for (const Run& run : runs_of(g, slots)) {
    char& begun = reached[static_cast<std::size_t>(run.tap)];
    const GemmGeometry product{.m = c_out,
                               .n = c_in,
                               .k = run.positions * n,
                               .trans_a = true,
                               .lda = c_out,
                               .ldb = c_in,
                               .ldc = c_in};
    gemm<float>(Device::cpu(), product, 1.0f, gyt.get() + run.out_slot * n * c_out,
                xt.get() + run.in_slot * n * c_in, begun ? 1.0f : 0.0f, gwt.get() + run.tap * c_out * c_in);
    begun = 1;
  }
  for (std::int64_t t = 0; t < taps; ++t) {  // a tap that reads only padding: no gradient
    if (!reached[static_cast<std::size_t>(t)]) std::fill_n(gwt.get() + t * c_out * c_in, c_out * c_in, 0.0f);
  }
  taps_together(g, gwt.get(), gw);
}

}  // namespace kiln::kernels::tap_gemm
