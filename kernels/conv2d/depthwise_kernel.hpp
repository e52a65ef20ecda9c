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
//   forward          y[oh, ow]  = bias + sum_taps w[tap] * phases[tap_offset + oh*stride_h*row + ow]
//   backward-data    stride 1: a forward convolution of gy with the flipped kernel (backward_data_by_gather);
//                    otherwise the forward loop with each multiply-add reversed,
//                    phases_grad[...] += w[tap] * gy[oh, ow], then the padding is cut off to give gx [H, W]
//   backward-weight  gw[tap] = sum over n, oh, ow of gy[n, oh, ow] * phases_n[tap_offset + ...], with one
//                    vector accumulator per tap (hence at most 32 taps; algorithm.cpp checks)
//
// Threads: forward and backward-data over (n, c) planes; backward-weight over channels, each walking the
// whole batch in order. Every output is computed by one thread in a fixed order: any thread count gives
// the same bits.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "kernels/conv2d/conv2d.hpp"

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

// phases = the padded, phase-split copy of plane [H, W].
template <typename V>
void split_into_phases(const Conv2dGeometry& g, const PhaseLayout<V>& layout, const float* plane,
                       float* phases) {
  std::fill(phases, phases + layout.size(), 0.0f);
  for (std::int64_t phase = 0; phase < layout.phases; ++phase) {
    const PhaseColumns columns = phase_columns<V>(g, phase);
    for (std::int64_t ih = 0; ih < g.in_height; ++ih) {
      const float* row = plane + ih * g.in_width;
      float* to = phases + (phase * layout.rows + ih + g.pad_h) * layout.phase_width + columns.first_column;
      if (layout.phases == 1) {
        std::copy(row, row + g.in_width, to);
      } else {
        for (std::int64_t iw = columns.first_input, j = 0; iw < g.in_width; iw += g.stride_w, ++j)
          to[j] = row[iw];
      }
    }
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
        std::copy(from, from + g.in_width, row);
      } else {
        for (std::int64_t iw = columns.first_input, j = 0; iw < g.in_width; iw += g.stride_w, ++j)
          row[iw] = from[j];
      }
    }
  }
}

// y_plane [OH, OW] from one phase-split input plane and one kernel w [KH*KW].
template <typename V>
void forward_plane(const Conv2dGeometry& g, const PhaseLayout<V>& layout, const float* phases, const float* w,
                   float bias, float* y_plane) {
  using Vector = typename V::Reg;
  const std::int64_t out_h = g.out_height(), out_w = g.out_width();
  for (std::int64_t oh = 0; oh < out_h; ++oh) {
    const float* row_base = phases + oh * g.stride_h * layout.phase_width;
    for (std::int64_t ow = 0; ow < out_w; ow += V::width) {
      Vector sum = V::broadcast(bias);
      for (std::int64_t tap = 0; tap < layout.taps; ++tap) {
        sum = V::fmadd(V::broadcast(w[tap]), V::load(row_base + layout.tap_offsets[tap] + ow), sum);
      }
      V::store_partial(y_plane + oh * out_w + ow, sum, std::min<std::int64_t>(V::width, out_w - ow));
    }
  }
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

// ---- whole tensors -------------------------------------------------------------------------------------

template <typename V>
void forward(const Conv2dGeometry& g, const float* x, const float* w, const float* bias, float* y) {
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
      forward_plane(g, layout, phases.data(), w + c * layout.taps, bias ? bias[c] : 0.0f,
                    y + plane * plane_out);
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

template <typename V>
void backward_data_by_gather(const Conv2dGeometry& g, const float* gy, const float* w, float* gx) {
  const Conv2dGeometry transposed = transposed_convolution(g);
  const PhaseLayout<V> layout(transposed);
  const std::int64_t planes = g.batch * g.in_channels, plane_in = g.in_height * g.in_width;
  const std::int64_t plane_out = g.out_height() * g.out_width();
#pragma omp parallel if (worth_threads <V>(g))
  {
    std::vector<float> phases(static_cast<std::size_t>(layout.size()));
    std::vector<float> flipped(static_cast<std::size_t>(layout.taps));
#pragma omp for schedule(static)
    for (std::int64_t plane = 0; plane < planes; ++plane) {
      const float* w_channel = w + (plane % g.in_channels) * layout.taps;
      for (std::int64_t tap = 0; tap < layout.taps; ++tap) flipped[tap] = w_channel[layout.taps - 1 - tap];
      split_into_phases(transposed, layout, gy + plane * plane_out, phases.data());
      forward_plane(transposed, layout, phases.data(), flipped.data(), 0.0f, gx + plane * plane_in);
    }
  }
}

template <typename V>
void backward_data(const Conv2dGeometry& g, const float* gy, const float* w, float* gx) {
  if (backward_data_as_forward<V>(g)) return backward_data_by_gather<V>(g, gy, w, gx);
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
template <typename V>
void backward_weight(const Conv2dGeometry& g, const float* gy, const float* x, float* gw) {
  using Vector = typename V::Reg;
  const PhaseLayout<V> layout(g);
  const std::int64_t channels = g.in_channels, plane_in = g.in_height * g.in_width;
  const std::int64_t plane_out = g.out_height() * g.out_width();
#pragma omp parallel if (worth_threads <V>(g))
  {
    std::vector<float> phases(static_cast<std::size_t>(layout.size()));
#pragma omp for schedule(static)
    for (std::int64_t c = 0; c < channels; ++c) {
      double totals[kMaxTaps] = {};
      for (std::int64_t n = 0; n < g.batch; ++n) {
        Vector sums[kMaxTaps];
        for (std::int64_t tap = 0; tap < layout.taps; ++tap) sums[tap] = V::zero();
        const std::int64_t plane = n * channels + c;
        split_into_phases(g, layout, x + plane * plane_in, phases.data());
        backward_weight_plane(g, layout, gy + plane * plane_out, phases.data(), sums);
        for (std::int64_t tap = 0; tap < layout.taps; ++tap)
          totals[tap] += static_cast<double>(V::sum(sums[tap]));
      }
      for (std::int64_t tap = 0; tap < layout.taps; ++tap)
        gw[c * layout.taps + tap] = static_cast<float>(totals[tap]);
    }
  }
}

}  // namespace kiln::kernels::depthwise
