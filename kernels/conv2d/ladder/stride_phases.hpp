// The stride-phase decomposition of backward data, shared by the steps that use it
// (06_backward_data_stride_phase.cu, fp32 and NCHW; 06_backward_data_stride_phase_bf16.cu, NHWC) and by the
// CPU's bfloat16 backward data by phase (kernels/conv2d/amx_bf16_conv.cpp, avx512_bf16_direct.cpp).
//
// gx at input row h sums over the taps r that read it: h + pad_h - r*dil_h = p * stride_h, 0 <= p < P. Write
// h + pad_h = hq * stride_h + a (a, the row's phase, in [0, stride_h)) and r*dil_h = rq * stride_h + rr: tap
// r reaches row h exactly when rr == a, at p = hq - rq (if 0 <= p < P). So all rows of one phase have the
// same landing taps, and a phase's gx is a dense implicit GEMM over those taps alone, with no tap test but
// the image's edges. The landing taps of a phase are evenly spaced: r*dil_h mod stride_h repeats with period
// tap_step = stride / gcd(dil, stride), and from one landing tap to the next rq grows by tap_q_step =
// dil / gcd(dil, stride). Columns likewise; a 2-D phase (a, b) is an h-phase times a w-phase. A phase with no
// landing tap (a 1x1 filter at stride 2: 3 phases of 4) has an empty reduction: its gx is zero.
#pragma once

#include <algorithm>
#include <cstdint>
#include <numeric>
#include <vector>

namespace kiln::kernels::conv2d_ladder {

// One phase along one axis (h, say): the positions h with (h + pad_h) % stride_h == a and the taps r with
// r*dil_h % stride_h == a, the only ones that reach them.
struct AxisPhase {
  int first;   // its first position: h = first + i * stride, i < count
  int count;   // its positions, >= 1 (axis_phases lists no empty phase)
  int q0;      // (first + pad) / stride: position i has hq = q0 + i
  int tap0;    // its first landing tap, when taps > 0
  int taps;    // its landing taps: tap0, tap0 + tap_step, ... (0: every tap misses these positions)
  int tap_q0;  // tap0 * dilation / stride: tap tr has rq = tap_q0 + tr * tap_q_step, output p = hq - rq
};

// One axis's step between landing taps (stride / gcd) and the growth of rq meanwhile (dilation / gcd).
struct AxisTapSteps {
  int tap_step, tap_q_step;
};
inline AxisTapSteps axis_tap_steps(std::int64_t stride, std::int64_t dilation) {
  const std::int64_t gcd = std::gcd(dilation, stride);
  return {static_cast<int>(stride / gcd), static_cast<int>(dilation / gcd)};
}

// The phases of one launch, passed by value as a kernel parameter: block (x, y, z) computes tile x of phase
// (h[y], w[z]).
inline constexpr int kMaxPhasesPerAxis = 8;
struct PhaseTable {
  AxisPhase h[kMaxPhasesPerAxis];
  AxisPhase w[kMaxPhasesPerAxis];
};

// The phases along one axis that hold positions (size positions, padded by pad, a kernel of `kernel` taps at
// `dilation`, `stride`), the most landing taps first (ties in phase order), so that the longest reductions
// start first and the short ones fill the tail.
inline std::vector<AxisPhase> axis_phases(std::int64_t size, std::int64_t pad, std::int64_t stride,
                                          std::int64_t dilation, std::int64_t kernel) {
  // r * dilation % stride repeats with period stride / gcd and takes distinct values within a period: the
  // first period's taps are the first landing tap of each phase that has one.
  const std::int64_t period = stride / std::gcd(dilation, stride);
  std::vector<std::int64_t> first_tap(static_cast<std::size_t>(stride), -1);
  for (std::int64_t r = 0; r < std::min(kernel, period); ++r)
    first_tap[static_cast<std::size_t>(r * dilation % stride)] = r;  // r * dilation < 2^31 (out size >= 1)

  std::vector<AxisPhase> phases;
  for (std::int64_t a = 0; a < stride; ++a) {
    // Positions x = q * stride + a - pad in [0, size): q from ceil((pad - a) / stride) (pad - a > -stride,
    // so the numerator below is >= 0) to below ceil((size + pad - a) / stride).
    const std::int64_t q_begin = (pad - a + stride - 1) / stride;
    const std::int64_t q_end = (size + pad - a + stride - 1) / stride;
    if (q_end <= q_begin) continue;  // no position has this phase
    const std::int64_t tap0 = first_tap[static_cast<std::size_t>(a)];
    AxisPhase phase{};
    phase.first = static_cast<int>(q_begin * stride + a - pad);
    phase.count = static_cast<int>(q_end - q_begin);
    phase.q0 = static_cast<int>(q_begin);
    phase.tap0 = tap0 < 0 ? 0 : static_cast<int>(tap0);
    phase.taps = tap0 < 0 ? 0 : static_cast<int>((kernel - 1 - tap0) / period + 1);
    phase.tap_q0 = tap0 < 0 ? 0 : static_cast<int>(tap0 * dilation / stride);
    phases.push_back(phase);
  }
  std::stable_sort(phases.begin(), phases.end(),
                   [](const AxisPhase& x, const AxisPhase& y) { return x.taps > y.taps; });
  return phases;
}

// Both axes of one convolution (Conv2dGeometry, or any geometry with its fields): their phases and tap
// steps, every h-phase to be taken with every w-phase, as the CPU's backward data by phase walks them
// (amx_bf16_conv.cpp, avx512_bf16_direct.cpp).
struct PhaseGrid {
  std::vector<AxisPhase> h, w;
  AxisTapSteps steps_h, steps_w;
};
template <typename Geometry>
PhaseGrid phase_grid(const Geometry& g) {
  return {axis_phases(g.in_height, g.pad_h, g.stride_h, g.dilation_h, g.kernel_h),
          axis_phases(g.in_width, g.pad_w, g.stride_w, g.dilation_w, g.kernel_w),
          axis_tap_steps(g.stride_h, g.dilation_h), axis_tap_steps(g.stride_w, g.dilation_w)};
}

// Calls launch(table, phases_h_in_table, phases_w_in_table, most_h, most_w) once per block of up to 8 x 8
// (h-phase, w-phase) pairs (one call for strides up to 8), with the table filled and the largest phase's
// positions per image along each axis (grid.x must cover the largest phase's tiles).
template <typename Launch>
void for_each_phase_table(const std::vector<AxisPhase>& phases_h, const std::vector<AxisPhase>& phases_w,
                          const Launch& launch) {
  const std::size_t per_axis = kMaxPhasesPerAxis;
  for (std::size_t h0 = 0; h0 < phases_h.size(); h0 += per_axis) {
    for (std::size_t w0 = 0; w0 < phases_w.size(); w0 += per_axis) {
      const std::size_t count_h = std::min(per_axis, phases_h.size() - h0);
      const std::size_t count_w = std::min(per_axis, phases_w.size() - w0);
      PhaseTable table{};
      int most_h = 0, most_w = 0;
      for (std::size_t i = 0; i < count_h; ++i) {
        table.h[i] = phases_h[h0 + i];
        most_h = std::max(most_h, table.h[i].count);
      }
      for (std::size_t i = 0; i < count_w; ++i) {
        table.w[i] = phases_w[w0 + i];
        most_w = std::max(most_w, table.w[i].count);
      }
      launch(table, static_cast<unsigned>(count_h), static_cast<unsigned>(count_w), most_h, most_w);
    }
  }
}

}  // namespace kiln::kernels::conv2d_ladder
