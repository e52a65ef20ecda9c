// Direct depthwise convolution (groups == C_in == C_out), vectorized along the output row, written once
// against a float vector trait V (simd::FloatVector512 or FloatVector256, kernels/simd/) and
// instantiated by avx512_depthwise.cpp and avx2_depthwise.cpp. Every function here is a template on V,
// so the two instruction sets never share a compiled function.
//
// Each channel is its own tiny convolution of one plane x [H, W] with one kernel w [KH, KW]. The trick
// that makes every tap a contiguous vector load, for any stride, padding and dilation:
//
//   1. copy the plane into a zero-padded buffer split into stride_w column phases:
//        phases[phase][r][j] = padded[r][j * stride_w + phase],  padded = x with pad_h / pad_w zeros around
//   2. output (oh, ow) reads padded[oh*stride_h + kh*dilation_h][ow*stride_w + kw*dilation_w], and with
//      t = kw*dilation_w that is phases[t % stride_w][oh*stride_h + kh*dilation_h][ow + t / stride_w]:
//      consecutive ow read consecutive floats.
//
// So each tap (kh, kw) is one offset into the phase buffer ("tap_offsets"), and a vector of V::width
// outputs is V::width-wide multiply-adds, one per tap. Phase rows are wide enough that a full vector read
// past the last output stays inside the (zeroed) buffer; stores of the last partial vector are masked.
//
//   forward          y[oh, ow]  = bias + sum_taps w[tap] * phases[tap_offset + oh*stride_h*row + ow],
//                    8 output rows down a column at a time (4 on AVX2) for 3x3 and 5x5 kernels at stride
//                    1 or 2 down the rows (forward_plane_rows: each input row vector loaded once for the
//                    rows it meets), 4 output vectors at a time otherwise (forward_plane_any); the same
//                    sums either way
//   backward-data    stride 1: a forward convolution of gy with the flipped kernel; stride 2: the same
//                    over gy upsampled, zeros between its values (both backward_data_by_forward);
//                    otherwise the forward loop with each multiply-add reversed,
//                    phases_grad[...] += w[tap] * gy[oh, ow], then the padding is cut off to give gx [H, W]
//   backward-weight  gw[tap] = sum over n, oh, ow of gy[n, oh, ow] * phases_n[tap_offset + ...], with one
//                    vector accumulator per tap (hence at most 32 taps; algorithm.cpp checks)
//
// A train-mode batch norm before the convolution (InputNormalization, conv2d.hpp: an inverted residual
// block's expansion, normalized and activated) runs inside the forward and backward-weight passes: each
// plane is normalized in the phase buffer once split (normalize_phases), so its output is never stored.
//
// Threads: forward, backward-data and backward-weight over (n, c) planes, backward-weight then adding each
// channel's plane sums in image order. Every output is computed by one thread in a fixed order: any thread
// count gives the same bits.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "kernels/conv2d/bias_kernel.hpp"
#include "kernels/conv2d/conv2d.hpp"
#include "kernels/conv2d/direct_strip.hpp"  // copy_floats: rows by vectors
#include "kernels/conv2d/input_normalization.hpp"

namespace kiln::kernels::depthwise {

constexpr std::int64_t kMaxTaps = 32;

// Below this many multiply-adds a call runs on one thread: starting and joining a parallel region costs
// microseconds on a quiet machine and a scheduler time slice on a busy one. (Which thread computes an
// output never changes its bits, so this choice cannot change results.)
constexpr std::int64_t kMinParallelMultiplyAdds = std::int64_t{1} << 16;

template <typename V>
bool worth_threads(const Conv2dGeometry& g) {
  return g.batch * g.out_channels * g.out_height() * g.out_width() * g.kernel_h * g.kernel_w >=
         kMinParallelMultiplyAdds;
}

// Where the phase-split padded plane lives and where each tap reads it.
template <typename V>
struct PhaseLayout {
  std::int64_t rows = 0;         // padded rows: H + 2 * pad_h
  std::int64_t phase_width = 0;  // floats per phase row
  std::int64_t phases = 1;       // stride_w
  std::int64_t taps = 0;
  std::int64_t tap_offsets[kMaxTaps] = {};  // tap (kh, kw) reads from here, plus oh*stride_h*phase_width + ow

  explicit PhaseLayout(const Conv2dGeometry& g) : rows(g.in_height + 2 * g.pad_h), phases(g.stride_w) {
    const std::int64_t padded_width = g.in_width + 2 * g.pad_w;
    const std::int64_t vector_outputs = (g.out_width() + V::width - 1) / V::width * V::width;
    const std::int64_t widest_shift = (g.kernel_w - 1) * g.dilation_w / g.stride_w;
    phase_width = std::max((padded_width + phases - 1) / phases, vector_outputs + widest_shift);
    taps = g.kernel_h * g.kernel_w;
    for (std::int64_t kh = 0; kh < g.kernel_h; ++kh) {
      for (std::int64_t kw = 0; kw < g.kernel_w; ++kw) {
        const std::int64_t t = kw * g.dilation_w;
        tap_offsets[kh * g.kernel_w + kw] =
            ((t % phases) * rows + kh * g.dilation_h) * phase_width + t / phases;
      }
    }
  }
  std::int64_t size() const { return phases * rows * phase_width; }
};

// Phase p holds padded columns j * stride_w + p, that is input columns iw = j * stride_w + p - pad_w. The
// first of them inside the input is at phase column first_column, input column first_input; the rest
// follow stride_w input columns apart, one phase column apart. (No division in the copy loops below.)
struct PhaseColumns {
  std::int64_t first_input, first_column;
};
template <typename V>
PhaseColumns phase_columns(const Conv2dGeometry& g, std::int64_t phase) {
  const std::int64_t first_column = phase >= g.pad_w ? 0 : (g.pad_w - phase + g.stride_w - 1) / g.stride_w;
  return {first_column * g.stride_w + phase - g.pad_w, first_column};
}

// A row's even elements into `evens`, its odd ones into `odds`, in order: 2 * V::width at a time, one
// V::deinterleave giving both (a plain loop took 86% of a 64-channel stride-2 forward pass at 32x32;
// direct_strip.hpp's copy_every_other, once for each parity, 25% longer than this).
template <typename V>
void split_row_by_parity(const float* row, std::int64_t count, float* evens, float* odds) {
  std::int64_t i = 0;
  for (; i + 2 * V::width <= count; i += 2 * V::width) {
    typename V::Reg even, odd;
    V::deinterleave(V::load(row + i), V::load(row + i + V::width), even, odd);
    V::store(evens + i / 2, even);
    V::store(odds + i / 2, odd);
  }
  if (i < count) {  // fewer than 2 * V::width left: the same through partial loads and stores
    const std::int64_t left = count - i, low = std::min(left, V::width);
    typename V::Reg even, odd;
    V::deinterleave(V::load_partial(row + i, low), V::load_partial(row + i + low, left - low), even, odd);
    V::store_partial(evens + i / 2, even, (left + 1) / 2);
    V::store_partial(odds + i / 2, odd, left / 2);
  }
}

// phases = the padded, phase-split copy of plane [H, W]. Every plane of a geometry writes the same
// positions of the buffer, so the border and the spare columns stay as they were: `phases` must hold zeros
// there, as a buffer zeroed once when it is made does for every plane after.
template <typename V>
void split_into_phases(const Conv2dGeometry& g, const PhaseLayout<V>& layout, const float* plane,
                       float* phases) {
  // Where input row ih's columns of phase p start in the buffer; the first of them is input column
  // phase_columns(g, p).first_input.
  const auto phase_row = [&](std::int64_t phase, std::int64_t ih) {
    return phases + (phase * layout.rows + ih + g.pad_h) * layout.phase_width +
           phase_columns<V>(g, phase).first_column;
  };
  if (layout.phases == 2) {
    // Phase p's first input column is 0 or 1 (below the stride), so one phase takes the row's even columns
    // and the other its odd ones.
    const std::int64_t even_phase = phase_columns<V>(g, 0).first_input == 0 ? 0 : 1;
    for (std::int64_t ih = 0; ih < g.in_height; ++ih)
      split_row_by_parity<V>(plane + ih * g.in_width, g.in_width, phase_row(even_phase, ih),
                             phase_row(1 - even_phase, ih));
    return;
  }
  for (std::int64_t phase = 0; phase < layout.phases; ++phase) {
    const PhaseColumns columns = phase_columns<V>(g, phase);
    for (std::int64_t ih = 0; ih < g.in_height; ++ih) {
      const float* row = plane + ih * g.in_width;
      float* to = phase_row(phase, ih);
      if (layout.phases == 1) {
        direct::copy_floats<V>(row, g.in_width, to);
      } else {
        for (std::int64_t iw = columns.first_input, j = 0; iw < g.in_width; iw += g.stride_w, ++j)
          to[j] = row[iw];
      }
    }
  }
}

// The input positions of a phase-split buffer normalized in place (an input normalization's channel, as
// conv2d_input::Normalizer applies it), phase by phase and row by row while the plane is in L1; the padding
// around them stays zero, as the normalized tensor's padding is.
template <typename V>
void normalize_phases(const Conv2dGeometry& g, const PhaseLayout<V>& layout,
                      const conv2d_input::Normalizer<V>& normalize, float* phases) {
  for (std::int64_t phase = 0; phase < layout.phases; ++phase) {
    const PhaseColumns columns = phase_columns<V>(g, phase);
    if (columns.first_input >= g.in_width) continue;
    const std::int64_t count = (g.in_width - columns.first_input + g.stride_w - 1) / g.stride_w;
    for (std::int64_t ih = 0; ih < g.in_height; ++ih)
      normalize.run(phases + (phase * layout.rows + ih + g.pad_h) * layout.phase_width + columns.first_column,
                    count);
  }
}

// plane [H, W] = the input positions of a phase-split buffer (its padding is dropped): split's inverse.
template <typename V>
void join_phases(const Conv2dGeometry& g, const PhaseLayout<V>& layout, const float* phases, float* plane) {
  for (std::int64_t phase = 0; phase < layout.phases; ++phase) {
    const PhaseColumns columns = phase_columns<V>(g, phase);
    for (std::int64_t ih = 0; ih < g.in_height; ++ih) {
      float* row = plane + ih * g.in_width;
      const float* from =
          phases + (phase * layout.rows + ih + g.pad_h) * layout.phase_width + columns.first_column;
      if (layout.phases == 1) {
        direct::copy_floats<V>(from, g.in_width, row);
      } else {
        for (std::int64_t iw = columns.first_input, j = 0; iw < g.in_width; iw += g.stride_w, ++j)
          row[iw] = from[j];
      }
    }
  }
}

// Output vectors computed at once by forward_plane_any: independent sums, so their multiply-adds' latency
// overlaps (one vector at a time waits out each tap's multiply-add before the next), and each tap's weight
// vector and offset serve all of them.
inline constexpr int kOutputRun = 4;

// One output vector of a plane: where its taps' reads start, where it goes, how many of its lanes are real.
struct OutputVector {
  const float* in;
  float* out;
  std::int64_t lanes;
};

// y_plane [OH, OW] from one phase-split input plane and one kernel w [KH*KW], any geometry. The plane's
// output vectors, each row's V::width-wide pieces row after row, go kOutputRun at a time, so a run may span
// two rows (a 32-wide row is two AVX-512 vectors): each vector's sum is bias + its taps in tap order,
// whatever run it is in.
template <typename V>
void forward_plane_any(const Conv2dGeometry& g, const PhaseLayout<V>& layout, const float* phases,
                       const typename V::Reg* weights, typename V::Reg start, float* y_plane) {
  using Vector = typename V::Reg;
  const std::int64_t out_h = g.out_height(), out_w = g.out_width();
  const std::int64_t row_vectors = (out_w + V::width - 1) / V::width, vectors = out_h * row_vectors;
  std::int64_t oh = 0, piece = 0;  // the next output vector: row oh, columns from piece * V::width
  const auto next = [&] {
    const std::int64_t ow = piece * V::width;
    const OutputVector v{phases + oh * g.stride_h * layout.phase_width + ow, y_plane + oh * out_w + ow,
                         std::min<std::int64_t>(V::width, out_w - ow)};
    if (++piece == row_vectors) piece = 0, ++oh;
    return v;
  };
  std::int64_t done = 0;
  for (; done + kOutputRun <= vectors; done += kOutputRun) {
    OutputVector run[kOutputRun];
    Vector sums[kOutputRun];
    for (int i = 0; i < kOutputRun; ++i) run[i] = next(), sums[i] = start;
    for (std::int64_t tap = 0; tap < layout.taps; ++tap) {
      const std::int64_t offset = layout.tap_offsets[tap];
      for (int i = 0; i < kOutputRun; ++i)
        sums[i] = V::fmadd(weights[tap], V::load(run[i].in + offset), sums[i]);
    }
    for (int i = 0; i < kOutputRun; ++i) V::store_partial(run[i].out, sums[i], run[i].lanes);
  }
  for (; done < vectors; ++done) {
    const OutputVector v = next();
    Vector sum = start;
    for (std::int64_t tap = 0; tap < layout.taps; ++tap)
      sum = V::fmadd(weights[tap], V::load(v.in + layout.tap_offsets[tap]), sum);
    V::store_partial(v.out, sum, v.lanes);
  }
}

// Stride S (1 or 2) and dilation 1 down the rows (any stride and dilation across them: the phases take
// those) and a KH x KW kernel known at compile time. Input row r of the buffer then meets output rows
// (r - kh) / S, kh < KH, where that divides, each through the same KW column offsets (tap (0, kw)'s), so a
// run of R output rows down a column loads each of its (R - 1) * S + KH input rows' KW vectors once and
// uses it in up to KH / S rows' sums: a 3x3 kernel's 9 multiply-adds an output vector take (R + 2) * 3 / R
// loads at stride 1, where forward_plane_any loads for every one. The input rows come in order, and with
// them each sum's kh, so every sum is still bias, then tap (0, 0), (0, 1), ... in forward_plane_any's
// order: the same bits.
//
// Whether forward_plane runs g by rows: 3x3 or 5x5, stride 1 or 2 and dilation 1 down the rows (algorithm.cpp
// asks too, choosing Depthwise for strided passes: upsampled_backward_data_by_rows below). Plain geometry,
// as the two below, so not a template on V.
inline bool rows_kernel_serves(const Conv2dGeometry& g) {
  const bool kernel = (g.kernel_h == 3 && g.kernel_w == 3) || (g.kernel_h == 5 && g.kernel_w == 5);
  return kernel && (g.stride_h == 1 || g.stride_h == 2) && g.dilation_h == 1;
}

// Output rows a run takes: 8 independent sums where there are 32 vector registers (a sum's KH * KW
// multiply-adds are a chain, and two multiply-add units each 4 cycles deep need 8 chains to stay busy: a
// run of 4 took 30% longer on a Xeon with AMX), 4 among AVX2's 16.
template <typename V>
inline constexpr int kRowRun = V::registers >= 32 ? 8 : 4;

// Output rows [0, kRows) of one column piece: `in` is the piece's first input row in the buffer (row 0 of
// the run, tap (0, 0)), `out` its first output.
template <typename V, int KH, int KW, int S, int kRows>
void forward_row_run(const float* in, std::int64_t in_pitch, const std::int64_t* column_offsets,
                     const typename V::Reg* weights, typename V::Reg start, float* out,
                     std::int64_t out_pitch, std::int64_t lanes) {
  using Vector = typename V::Reg;
  // Each row vector loaded once and kept for its up to KH uses, where the weights, the row and the sums
  // all fit the registers (3x3); the compiler would fold the load into every use (a 3x3 run's 9 * kRows
  // multiply-adds, as many loads, each unaligned across two cache lines: 22% longer on a Xeon with AMX).
  // A 5x5 kernel's 25 weights leave no room: kept, its rows would push weights out to the stack.
  constexpr bool kKeepRows = KH * KW + KW + kRows <= V::registers;
  Vector sums[kRows];
#pragma GCC unroll 8
  for (int i = 0; i < kRows; ++i) sums[i] = start;
#pragma GCC unroll 16
  for (int r = 0; r < (kRows - 1) * S + KH; ++r) {
    Vector row[KW];
#pragma GCC unroll 8
    for (int kw = 0; kw < KW; ++kw) {
      row[kw] = V::load(in + r * in_pitch + column_offsets[kw]);
      if constexpr (kKeepRows) row[kw] = V::in_register(row[kw]);
    }
#pragma GCC unroll 8
    for (int i = 0; i < kRows; ++i) {
      const int kh = r - i * S;  // known at compile time once the loops unroll
      if (kh < 0 || kh >= KH) continue;
#pragma GCC unroll 8
      for (int kw = 0; kw < KW; ++kw) sums[i] = V::fmadd(weights[kh * KW + kw], row[kw], sums[i]);
    }
  }
#pragma GCC unroll 8
  for (int i = 0; i < kRows; ++i) V::store_partial(out + i * out_pitch, sums[i], lanes);
}

// The last `rows` rows of a column piece (fewer than a run): the run of exactly that many, chosen among
// kRows, kRows - 1, ..., 1.
template <typename V, int KH, int KW, int S, int kRows>
void forward_last_rows(std::int64_t rows, const float* in, std::int64_t in_pitch,
                       const std::int64_t* column_offsets, const typename V::Reg* weights,
                       typename V::Reg start, float* out, std::int64_t out_pitch, std::int64_t lanes) {
  if constexpr (kRows > 0) {
    if (rows == kRows)
      return forward_row_run<V, KH, KW, S, kRows>(in, in_pitch, column_offsets, weights, start, out,
                                                  out_pitch, lanes);
    forward_last_rows<V, KH, KW, S, kRows - 1>(rows, in, in_pitch, column_offsets, weights, start, out,
                                               out_pitch, lanes);
  }
}

template <typename V, int KH, int KW, int S>
void forward_plane_rows(const Conv2dGeometry& g, const PhaseLayout<V>& layout, const float* phases,
                        const typename V::Reg* weights, typename V::Reg start, float* y_plane) {
  constexpr int kRun = kRowRun<V>;
  const std::int64_t out_h = g.out_height(), out_w = g.out_width(), pitch = layout.phase_width;
  const std::int64_t* column_offsets = layout.tap_offsets;  // taps (0, kw): row 0's
  for (std::int64_t ow = 0; ow < out_w; ow += V::width) {
    const std::int64_t lanes = std::min<std::int64_t>(V::width, out_w - ow);
    std::int64_t oh = 0;
    for (; oh + kRun <= out_h; oh += kRun)
      forward_row_run<V, KH, KW, S, kRun>(phases + oh * S * pitch + ow, pitch, column_offsets, weights, start,
                                          y_plane + oh * out_w + ow, out_w, lanes);
    forward_last_rows<V, KH, KW, S, kRun - 1>(out_h - oh, phases + oh * S * pitch + ow, pitch, column_offsets,
                                              weights, start, y_plane + oh * out_w + ow, out_w, lanes);
  }
}

// y_plane [OH, OW] from one phase-split input plane and one kernel w [KH*KW]: 3x3 and 5x5 kernels at stride
// 1 or 2 down the rows by rows, everything else by vectors.
template <typename V>
void forward_plane(const Conv2dGeometry& g, const PhaseLayout<V>& layout, const float* phases, const float* w,
                   float bias, float* y_plane) {
  typename V::Reg weights[kMaxTaps];
  for (std::int64_t tap = 0; tap < layout.taps; ++tap) weights[tap] = V::broadcast(w[tap]);
  const typename V::Reg start = V::broadcast(bias);
  if (!rows_kernel_serves(g)) return forward_plane_any<V>(g, layout, phases, weights, start, y_plane);
  if (g.kernel_h == 3) {
    return g.stride_h == 1 ? forward_plane_rows<V, 3, 3, 1>(g, layout, phases, weights, start, y_plane)
                           : forward_plane_rows<V, 3, 3, 2>(g, layout, phases, weights, start, y_plane);
  }
  return g.stride_h == 1 ? forward_plane_rows<V, 5, 5, 1>(g, layout, phases, weights, start, y_plane)
                         : forward_plane_rows<V, 5, 5, 2>(g, layout, phases, weights, start, y_plane);
}

// phases_grad += the scatter of gy_plane [OH, OW] through kernel w: the transpose of forward_plane.
template <typename V>
void backward_data_plane(const Conv2dGeometry& g, const PhaseLayout<V>& layout, const float* gy_plane,
                         const float* w, float* phases_grad) {
  using Vector = typename V::Reg;
  const std::int64_t out_h = g.out_height(), out_w = g.out_width();
  for (std::int64_t oh = 0; oh < out_h; ++oh) {
    float* row_base = phases_grad + oh * g.stride_h * layout.phase_width;
    for (std::int64_t ow = 0; ow < out_w; ow += V::width) {
      // Lanes past the row's end read as zero, so they add nothing to the buffer's spare columns.
      const Vector grad =
          V::load_partial(gy_plane + oh * out_w + ow, std::min<std::int64_t>(V::width, out_w - ow));
      for (std::int64_t tap = 0; tap < layout.taps; ++tap) {
        float* at = row_base + layout.tap_offsets[tap] + ow;
        V::store(at, V::fmadd(V::broadcast(w[tap]), grad, V::load(at)));
      }
    }
  }
}

// sums[tap] += sum over oh, ow of gy_plane[oh, ow] * the input that tap read, one vector per tap.
template <typename V>
void backward_weight_plane(const Conv2dGeometry& g, const PhaseLayout<V>& layout, const float* gy_plane,
                           const float* phases, typename V::Reg* sums) {
  using Vector = typename V::Reg;
  const std::int64_t out_h = g.out_height(), out_w = g.out_width();
  for (std::int64_t oh = 0; oh < out_h; ++oh) {
    const float* row_base = phases + oh * g.stride_h * layout.phase_width;
    for (std::int64_t ow = 0; ow < out_w; ow += V::width) {
      const Vector grad =
          V::load_partial(gy_plane + oh * out_w + ow, std::min<std::int64_t>(V::width, out_w - ow));
      for (std::int64_t tap = 0; tap < layout.taps; ++tap) {
        sums[tap] = V::fmadd(grad, V::load(row_base + layout.tap_offsets[tap] + ow), sums[tap]);
      }
    }
  }
}

// The same for a kernel of kTaps taps known at compile time (3x3: 9), the sums in registers: with the count
// known only at run time they stay in the caller's array, and each multiply-add is a load, an fma and a
// store, every one of a tap's waiting on the last through memory. The same multiply-adds in the same order,
// so the same bits. With backward_weight's walk in memory order (below), 2 threads, batch 128, ms: 32
// channels at 32x32 1.86 -> 1.38, 128 at 16x16 2.29 -> 1.67, 256 at 8x8 2.21 -> 1.93 (DepthwiseChannels,
// which rule 2 keeps for them: 1.33, 1.23, 0.65).
template <typename V, int kTaps>
void backward_weight_plane_fixed(const Conv2dGeometry& g, const PhaseLayout<V>& layout, const float* gy_plane,
                                 const float* phases, typename V::Reg* sums) {
  using Vector = typename V::Reg;
  const std::int64_t out_h = g.out_height(), out_w = g.out_width();
  Vector acc[kTaps];
  std::int64_t offsets[kTaps];
#pragma GCC unroll 32
  for (int tap = 0; tap < kTaps; ++tap) acc[tap] = sums[tap], offsets[tap] = layout.tap_offsets[tap];
  for (std::int64_t oh = 0; oh < out_h; ++oh) {
    const float* row_base = phases + oh * g.stride_h * layout.phase_width;
    for (std::int64_t ow = 0; ow < out_w; ow += V::width) {
      const Vector grad =
          V::load_partial(gy_plane + oh * out_w + ow, std::min<std::int64_t>(V::width, out_w - ow));
#pragma GCC unroll 32
      for (int tap = 0; tap < kTaps; ++tap)
        acc[tap] = V::fmadd(grad, V::load(row_base + offsets[tap] + ow), acc[tap]);
    }
  }
#pragma GCC unroll 32
  for (int tap = 0; tap < kTaps; ++tap) sums[tap] = acc[tap];
}

// ---- whole tensors -------------------------------------------------------------------------------------

// With `normalization`, each output plane is normalized as soon as it is computed, in L1 (conv2d.hpp's
// OutputNormalization, through batch norm's own run: the eval kernel's bits). With `input`, each input plane
// as soon as it is split (InputNormalization: a train-mode batch norm's bits, never stored).
template <typename V>
void forward(const Conv2dGeometry& g, const float* x, const float* w, const float* bias, float* y,
             const OutputNormalization* normalization = nullptr, const InputNormalization* input = nullptr) {
  const PhaseLayout<V> layout(g);
  const std::int64_t planes = g.batch * g.in_channels, plane_in = g.in_height * g.in_width;
  const std::int64_t plane_out = g.out_height() * g.out_width();
#pragma omp parallel if (worth_threads <V>(g))
  {
    std::vector<float> phases(static_cast<std::size_t>(layout.size()));
#pragma omp for schedule(static)
    for (std::int64_t plane = 0; plane < planes; ++plane) {
      const std::int64_t c = plane % g.in_channels;
      split_into_phases(g, layout, x + plane * plane_in, phases.data());
      if (input)
        normalize_phases(g, layout, conv2d_input::Normalizer<V>::for_channel(*input, c), phases.data());
      forward_plane(g, layout, phases.data(), w + c * layout.taps, bias ? bias[c] : 0.0f,
                    y + plane * plane_out);
      if (normalization) conv2d_bias::normalize_plane<V>(*normalization, plane, g.in_channels, plane_out, y);
    }
  }
}

// With stride 1, backward-data is itself a forward depthwise convolution: gy, padded by
// (K-1)*dilation - pad, through the kernel flipped in both axes (tap order reversed):
//   gx[ih, iw] = sum over taps of gy[ih - pad' + kh*d, iw - pad' + kw*d] * w[KH-1-kh, KW-1-kw].
// That gathers each gx vector in registers, where the scatter form does a load-add-store per tap on
// overlapping, misaligned addresses (store-to-load forwarding stalls). Strided convolutions scatter.
template <typename V>
bool backward_data_as_forward(const Conv2dGeometry& g) {
  return g.stride_h == 1 && g.stride_w == 1 && (g.kernel_h - 1) * g.dilation_h >= g.pad_h &&
         (g.kernel_w - 1) * g.dilation_w >= g.pad_w;
}

// At stride 2 (both axes), backward-data is the forward pass of gy upsampled, u[2 m][2 n] = gy[m][n] and
// zeros between, through the flipped kernel at stride 1, padded by (K - 1) * dilation - pad: the same sum
// as the stride-1 case's over u. A quarter of its multiply-adds meet a gy value, the rest zeros, which add
// nothing (a sum starts at +0, and +0 or any other sum plus a product +-0 is itself); the rows kernel
// pays that and still runs at the memory's pace, where the scatter below, load-add-stores on overlapping
// addresses, took 5.1 ms for 64 channels at 32x32 (batch 128, 2 threads; 1.7 ms this way, against 2.4 for
// DepthwiseChannels, whose transposes in and out the NCHW pass pays).
inline bool backward_data_by_upsampling_fits(const Conv2dGeometry& g) {
  return g.stride_h == 2 && g.stride_w == 2 && (g.kernel_h - 1) * g.dilation_h >= g.pad_h &&
         (g.kernel_w - 1) * g.dilation_w >= g.pad_w;
}

// The stride-1 convolution of u whose forward pass gives gx [H, W]: u has (OH - 1) * 2 + 1 rows and the
// one more where the stride's division dropped a remainder (zeros, never written), H + 2 pad - (K - 1) d.
inline Conv2dGeometry upsampled_transposed(const Conv2dGeometry& g) {
  Conv2dGeometry t = g;
  const std::int64_t reach_h = (g.kernel_h - 1) * g.dilation_h, reach_w = (g.kernel_w - 1) * g.dilation_w;
  t.in_height = g.in_height + 2 * g.pad_h - reach_h;
  t.in_width = g.in_width + 2 * g.pad_w - reach_w;
  t.pad_h = reach_h - g.pad_h;
  t.pad_w = reach_w - g.pad_w;
  t.stride_h = t.stride_w = 1;
  return t;
}

// Whether backward_data runs g's stride-2 backward-data as the rows kernel's forward pass over upsampled gy.
inline bool upsampled_backward_data_by_rows(const Conv2dGeometry& g) {
  return backward_data_by_upsampling_fits(g) && rows_kernel_serves(upsampled_transposed(g));
}

// to[2 i] = from[i] for i < count, zeros at to[2 i + 1] between them (none after the last), V::width
// values at a time through V::interleave.
template <typename V>
void spread_row(const float* from, std::int64_t count, float* to) {
  for (std::int64_t i = 0; i < count; i += V::width) {
    const std::int64_t values = std::min(V::width, count - i);
    const std::int64_t positions = std::min(2 * V::width, 2 * (count - i) - 1);
    typename V::Reg low, high;
    V::interleave(V::load_partial(from + i, values), V::zero(), low, high);
    V::store_partial(to + 2 * i, low, std::min(positions, V::width));
    if (positions > V::width) V::store_partial(to + 2 * i + V::width, high, positions - V::width);
  }
}

// The buffer of t's (stride-1) layout = gy_plane [OH, OW] upsampled: gy row m at the buffer's row 2 m +
// t.pad_h, spread from column t.pad_w. Every plane writes the same positions; the rest stay zero, as in
// split_into_phases.
template <typename V>
void upsample_into(const Conv2dGeometry& g, const Conv2dGeometry& t, const PhaseLayout<V>& layout,
                   const float* gy_plane, float* buffer) {
  const std::int64_t out_w = g.out_width();
  for (std::int64_t m = 0; m < g.out_height(); ++m)
    spread_row<V>(gy_plane + m * out_w, out_w, buffer + (2 * m + t.pad_h) * layout.phase_width + t.pad_w);
}

// gx as the forward pass over gy (split into t's buffer by `fill`) of the kernel flipped in both axes (tap
// order reversed), t being the stride-1 geometry that pass runs: backward_data_as_forward's, or
// upsampled_transposed's.
template <typename V, typename Fill>
void backward_data_by_forward(const Conv2dGeometry& g, const Conv2dGeometry& t, const float* gy,
                              const float* w, float* gx, Fill fill) {
  const PhaseLayout<V> layout(t);
  const std::int64_t planes = g.batch * g.in_channels, plane_in = g.in_height * g.in_width;
  const std::int64_t plane_out = g.out_height() * g.out_width();
#pragma omp parallel if (worth_threads <V>(g))
  {
    std::vector<float> buffer(static_cast<std::size_t>(layout.size()));
    std::vector<float> flipped(static_cast<std::size_t>(layout.taps));
#pragma omp for schedule(static)
    for (std::int64_t plane = 0; plane < planes; ++plane) {
      const float* w_channel = w + (plane % g.in_channels) * layout.taps;
      for (std::int64_t tap = 0; tap < layout.taps; ++tap) flipped[tap] = w_channel[layout.taps - 1 - tap];
      fill(layout, gy + plane * plane_out, buffer.data());
      forward_plane(t, layout, buffer.data(), flipped.data(), 0.0f, gx + plane * plane_in);
    }
  }
}

template <typename V>
void backward_data(const Conv2dGeometry& g, const float* gy, const float* w, float* gx) {
  if (backward_data_as_forward<V>(g)) {
    const Conv2dGeometry t = transposed_convolution(g);
    return backward_data_by_forward<V>(
        g, t, gy, w, gx, [&](const PhaseLayout<V>& layout, const float* gy_plane, float* buffer) {
          split_into_phases(t, layout, gy_plane, buffer);
        });
  }
  if (backward_data_by_upsampling_fits(g)) {
    const Conv2dGeometry t = upsampled_transposed(g);
    return backward_data_by_forward<V>(
        g, t, gy, w, gx, [&](const PhaseLayout<V>& layout, const float* gy_plane, float* buffer) {
          upsample_into(g, t, layout, gy_plane, buffer);
        });
  }
  // Otherwise the scatter: each gy value times the kernel added into a zeroed, phase-split gx.
  const PhaseLayout<V> layout(g);
  const std::int64_t planes = g.batch * g.in_channels, plane_in = g.in_height * g.in_width;
  const std::int64_t plane_out = g.out_height() * g.out_width();
#pragma omp parallel if (worth_threads <V>(g))
  {
    std::vector<float> phases_grad(static_cast<std::size_t>(layout.size()));
#pragma omp for schedule(static)
    for (std::int64_t plane = 0; plane < planes; ++plane) {
      const std::int64_t c = plane % g.in_channels;
      std::fill(phases_grad.begin(), phases_grad.end(), 0.0f);
      backward_data_plane(g, layout, gy + plane * plane_out, w + c * layout.taps, phases_grad.data());
      join_phases(g, layout, phases_grad.data(), gx + plane * plane_in);  // cut the padding off again
    }
  }
}

// Per channel: vector sums over one image, then added into a double per tap, image after image in order
// (so a batch of 128 32x32 images is 128 float sums of 1024 / width terms each, not one long float sum).
// The planes go in memory order, threads splitting them, each plane's sums into a table that each channel
// then adds up in image order: walking a channel's planes image by image jumps C planes ahead each time,
// which the hardware prefetchers do not follow. The same sums in the same order either way.
template <typename V>
void backward_weight(const Conv2dGeometry& g, const float* gy, const float* x, float* gw,
                     const InputNormalization* input = nullptr) {
  using Vector = typename V::Reg;
  const PhaseLayout<V> layout(g);
  const std::int64_t channels = g.in_channels, plane_in = g.in_height * g.in_width;
  const std::int64_t plane_out = g.out_height() * g.out_width(), planes = g.batch * channels;
  std::vector<double> plane_sums(static_cast<std::size_t>(planes * layout.taps));
#pragma omp parallel if (worth_threads <V>(g))
  {
    std::vector<float> phases(static_cast<std::size_t>(layout.size()));
#pragma omp for schedule(static)
    for (std::int64_t plane = 0; plane < planes; ++plane) {
      Vector sums[kMaxTaps];
      for (std::int64_t tap = 0; tap < layout.taps; ++tap) sums[tap] = V::zero();
      split_into_phases(g, layout, x + plane * plane_in, phases.data());
      if (input) {
        const conv2d_input::Normalizer<V> normalize =
            conv2d_input::Normalizer<V>::for_channel(*input, plane % channels);
        normalize_phases(g, layout, normalize, phases.data());
      }
      if (layout.taps == 9) {
        backward_weight_plane_fixed<V, 9>(g, layout, gy + plane * plane_out, phases.data(), sums);
      } else {
        backward_weight_plane(g, layout, gy + plane * plane_out, phases.data(), sums);
      }
      for (std::int64_t tap = 0; tap < layout.taps; ++tap)
        plane_sums[static_cast<std::size_t>(plane * layout.taps + tap)] =
            static_cast<double>(V::sum(sums[tap]));
    }
  }
  for (std::int64_t c = 0; c < channels; ++c) {
    for (std::int64_t tap = 0; tap < layout.taps; ++tap) {
      double total = 0;
      for (std::int64_t n = 0; n < g.batch; ++n)
        total += plane_sums[static_cast<std::size_t>((n * channels + c) * layout.taps + tap)];
      gw[c * layout.taps + tap] = static_cast<float>(total);
    }
  }
}

}  // namespace kiln::kernels::depthwise
