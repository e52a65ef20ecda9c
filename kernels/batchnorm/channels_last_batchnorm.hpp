// vectorized_batchnorm.hpp's memory walks for channels-last tensors (BatchNorm2dGeometry::channels_last):
//
//   x, y, gy, gx  [N, H, W, C], read as rows = N*H*W rows of C floats
//
// A channel is one lane of every row, so the vectors run along the channels: each row is C / width vectors
// (the last one partial when C is not a whole number of vectors), and the per-channel coefficients are
// vectors loaded beside them instead of one broadcast per plane.
//
// Sums: the rows are cut into fixed blocks of kBlockRows, each block's per-channel sums go into a table, and
// each channel adds its blocks' sums in block order, so the bits do not depend on the thread count. Within a
// block, rows of up to kGroupVectors channel vectors keep their float sums in registers (two sets, even
// and odd rows, so consecutive adds do not wait on each other); wider rows take spans of up to
// kSpanChannels channels, read in memory order, their float sums in L1 (span_pair_sums). A float lane sums
// kFlushRows values before they go to double, as the NCHW walk's lanes sum about kChunk / (2 * width).
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>

#include "kernels/batchnorm/batchnorm.hpp"
#include "kernels/batchnorm/batchnorm_vector_ops.hpp"

namespace kiln::kernels::vectorized::channels_last {
namespace {

inline constexpr std::int64_t kBlockRows = 256;
inline constexpr std::int64_t kFlushRows = 32;
inline constexpr int kGroupVectors = 4;

// The pair sums (PairSums: sum a and sum a * b, a = p - shift_p or p through the fused activation's rule,
// that one stored to kept_through_relu when it is not null, b = q - shift_q) of channels [c0, c0 + kVectors *
// width) over rows [first, last), added into sums[c - c0]. rule: the activation's, read or recomputed
// (batchnorm_vector_ops.hpp).
template <class V, int kVectors, class T>
void group_pair_sums(std::int64_t channels, std::int64_t c0, std::int64_t first, std::int64_t last,
                     const T* p, const float* shift_p, const T* q, const float* shift_q,
                     const ActivationRule<T>& rule, T* kept_through_relu, PairSums* sums) {
  using Reg = typename V::Reg;
  const std::int64_t lanes_in_group = std::min<std::int64_t>(kVectors * V::width, channels - c0);
  const auto lanes = [&](int k) {
    return std::clamp<std::int64_t>(lanes_in_group - k * V::width, 0, V::width);
  };
  Reg vshift_p[kVectors], vshift_q[kVectors], vscale[kVectors], voffset[kVectors];
  const Reg vhighest = V::broadcast(rule.highest);
  for (int k = 0; k < kVectors; ++k) {
    vshift_p[k] = shift_p ? V::load_partial(shift_p + c0 + k * V::width, lanes(k)) : V::zero();
    vshift_q[k] = V::load_partial(shift_q + c0 + k * V::width, lanes(k));
    vscale[k] = rule.recomputed() ? V::load_partial(rule.scale + c0 + k * V::width, lanes(k)) : V::zero();
    voffset[k] = rule.recomputed() ? V::load_partial(rule.offset + c0 + k * V::width, lanes(k)) : V::zero();
  }
  const auto a_of = [&](std::int64_t at, int k, Reg db) {
    if (!rule.fused()) return V::sub(V::load_partial(p + at, lanes(k)), vshift_p[k]);
    const Reg masked = load_gradient<V>(p, rule, at, lanes(k), db, vscale[k], voffset[k], vhighest);
    if (kept_through_relu) V::store_partial(kept_through_relu + at, masked, lanes(k));
    return masked;
  };
  // Two sets of float sums, even and odd rows, each named by a constant: indexed by the row's parity they
  // were an array the compiler kept on the stack, every add a load and a store. Each flush adds the float
  // lanes into double lanes, flat arrays the compiler vectorizes (it was a scalar add per lane). Both: bf16
  // [128, 512, 4, 4] forward 190 -> 154 us, backward 287 -> 239; [128, 16, 32, 32] 388 -> 309, 537 -> 465.
  double lane_sums_a[kVectors * V::width] = {}, lane_sums_ab[kVectors * V::width] = {};
  const auto add_row = [&](std::int64_t row, Reg(&a)[kVectors], Reg(&ab)[kVectors]) {
#pragma GCC unroll 4
    for (int k = 0; k < kVectors; ++k) {
      const std::int64_t at = row * channels + c0 + k * V::width;
      const Reg db = V::sub(V::load_partial(q + at, lanes(k)), vshift_q[k]), da = a_of(at, k, db);
      a[k] = V::add(a[k], da);
      ab[k] = V::fmadd(da, db, ab[k]);
    }
  };
  for (std::int64_t start = first; start < last; start += kFlushRows) {
    const std::int64_t end = std::min(last, start + kFlushRows);
    Reg even_a[kVectors], even_ab[kVectors], odd_a[kVectors], odd_ab[kVectors];
    for (int k = 0; k < kVectors; ++k) even_a[k] = even_ab[k] = odd_a[k] = odd_ab[k] = V::zero();
    // `first` is a multiple of kBlockRows, so `start` is even: its row goes to the even set.
    std::int64_t row = start;
    for (; row + 1 < end; row += 2) {
      add_row(row, even_a, even_ab);
      add_row(row + 1, odd_a, odd_ab);
    }
    if (row < end) add_row(row, even_a, even_ab);
    alignas(64) float flushed_a[kVectors * V::width], flushed_ab[kVectors * V::width];
    for (int k = 0; k < kVectors; ++k) {
      V::store(flushed_a + k * V::width, V::add(even_a[k], odd_a[k]));
      V::store(flushed_ab + k * V::width, V::add(even_ab[k], odd_ab[k]));
    }
    for (int l = 0; l < kVectors * V::width; ++l) {
      lane_sums_a[l] += flushed_a[l];
      lane_sums_ab[l] += flushed_ab[l];
    }
  }
  for (std::int64_t l = 0; l < lanes_in_group; ++l) {
    sums[l].sum_a += lane_sums_a[l];
    sums[l].sum_ab += lane_sums_ab[l];
  }
}

// Rows wider than kGroupVectors vectors (MobileNet's 128 to 1024 channels; NCHW small planes read as rows of
// C * H * W) take their sums in memory order instead: group_pair_sums, walking a block once per group of
// 4 vectors, would read 128 bytes (bfloat16) of every row and jump a row ahead, a stride the hardware
// prefetchers do not follow. Here each row's span of up to kSpanChannels channels is read in order, and the
// float sums live in L1 beside it, loaded and stored once per kSpanRows rows, whose vectors at one channel
// are added in registers between (each row's loads their own instructions, streams in order). Same
// contract as group_pair_sums, over channels [c0, c1). Measured from memory, 2 threads, forward and fused
// ReLU backward: bfloat16 channels-last [128, 512, 4, 4] 494 -> 366 us and 674 -> 489; float NCHW
// [128, 512, 4, 4] (rows of 8192) 776 -> 601 and 1047 -> 821. In cache, where the group walk's registers
// win, up to 10% slower (bfloat16 forward 139 -> 155). One row at a time, the sums' loads and stores cost
// more than the order gained (the same forward from memory 531 us).
inline constexpr std::int64_t kSpanChannels = 1024;
inline constexpr std::int64_t kSpanRows = 4;

template <class V, class T>
void span_pair_sums(std::int64_t channels, std::int64_t c0, std::int64_t c1, std::int64_t first,
                    std::int64_t last, const T* p, const float* shift_p, const T* q, const float* shift_q,
                    const ActivationRule<T>& rule, T* kept_through_relu, PairSums* sums) {
  using Reg = typename V::Reg;
  alignas(64) float float_a[kSpanChannels], float_ab[kSpanChannels];
  double lane_sums_a[kSpanChannels] = {}, lane_sums_ab[kSpanChannels] = {};
  const std::int64_t span = c1 - c0;
  const Reg vhighest = V::broadcast(rule.highest);
  const auto per_channel = [](const float* values, std::int64_t c, std::int64_t lanes) {
    return values ? V::load_partial(values + c, lanes) : V::zero();
  };
  for (std::int64_t start = first; start < last; start += kFlushRows) {
    const std::int64_t end = std::min(last, start + kFlushRows);
    std::fill_n(float_a, span, 0.0f);
    std::fill_n(float_ab, span, 0.0f);
    for (std::int64_t row0 = start; row0 < end; row0 += kSpanRows) {
      const std::int64_t rows_here = std::min(kSpanRows, end - row0);
      for (std::int64_t c = c0; c < c1; c += V::width) {
        const std::int64_t lanes = std::min<std::int64_t>(V::width, c1 - c);
        const Reg vshift_q = V::load_partial(shift_q + c, lanes), vshift_p = per_channel(shift_p, c, lanes);
        const Reg vscale = per_channel(rule.scale, c, lanes), voffset = per_channel(rule.offset, c, lanes);
        float* a_sums = float_a + (c - c0);
        float* ab_sums = float_ab + (c - c0);
        Reg a = V::load_partial(a_sums, lanes), ab = V::load_partial(ab_sums, lanes);
        const auto add_row = [&](std::int64_t row) {
          const std::int64_t at = row * channels + c;
          const Reg db = V::sub(V::load_partial(q + at, lanes), vshift_q);
          Reg da;
          if (rule.fused()) {
            da = load_gradient<V>(p, rule, at, lanes, db, vscale, voffset, vhighest);
            if (kept_through_relu) V::store_partial(kept_through_relu + at, da, lanes);
          } else {
            da = V::sub(V::load_partial(p + at, lanes), vshift_p);
          }
          a = V::add(a, da);
          ab = V::fmadd(da, db, ab);
        };
        // Whole steps unrolled: each row's loads are their own instructions, each a stream in order that the
        // per-instruction prefetcher follows.
        if (rows_here == kSpanRows) {
#pragma GCC unroll 4
          for (std::int64_t r = 0; r < kSpanRows; ++r) add_row(row0 + r);
        } else {
          for (std::int64_t r = 0; r < rows_here; ++r) add_row(row0 + r);
        }
        V::store_partial(a_sums, a, lanes);
        V::store_partial(ab_sums, ab, lanes);
      }
    }
    for (std::int64_t l = 0; l < span; ++l) {
      lane_sums_a[l] += float_a[l];
      lane_sums_ab[l] += float_ab[l];
    }
  }
  for (std::int64_t l = 0; l < span; ++l) {
    sums[l].sum_a += lane_sums_a[l];
    sums[l].sum_ab += lane_sums_ab[l];
  }
}

// channel_sums[c] for every channel, as vectorized_batchnorm.hpp's all_channel_pair_sums.
template <class V, class T>
void all_channel_pair_sums(const BatchNorm2dGeometry& g, const T* p, const float* shift_p, const T* q,
                           const float* shift_q, const ActivationRule<T>& rule, T* kept_through_relu,
                           PairSums* channel_sums) {
  const std::int64_t channels = g.channels, rows = g.batch * g.height * g.width;
  const std::int64_t blocks = (rows + kBlockRows - 1) / kBlockRows;
  const std::unique_ptr<PairSums[]> block_sums(new PairSums[static_cast<std::size_t>(blocks * channels)]);
  // Threads share the (block, group) pairs, each writing its own entries of the table: a batch of small
  // planes read as rows (vectorized_batchnorm.hpp, as_rows) is one block of 128 rows but many groups. A group
  // is kGroupVectors vectors, or for wider rows a span of kSpanChannels (span_pair_sums).
  const bool spans = channels > kGroupVectors * V::width;
  const std::int64_t group_channels = spans ? kSpanChannels : kGroupVectors * V::width;
  const std::int64_t groups = (channels + group_channels - 1) / group_channels;
#pragma omp parallel for schedule(static) if (rows * channels >= kParallelThreshold)
  for (std::int64_t unit = 0; unit < blocks * groups; ++unit) {
    const std::int64_t block = unit / groups, c0 = unit % groups * group_channels;
    PairSums* sums = block_sums.get() + block * channels;
    const std::int64_t first = block * kBlockRows, last = std::min(rows, first + kBlockRows);
    if (spans) {
      span_pair_sums<V, T>(channels, c0, std::min(channels, c0 + group_channels), first, last, p, shift_p, q,
                           shift_q, rule, kept_through_relu, sums + c0);
      continue;
    }
    const std::int64_t vectors =
        std::min<std::int64_t>(kGroupVectors, (channels - c0 + V::width - 1) / V::width);
    switch (vectors) {
      case 1:
        group_pair_sums<V, 1, T>(channels, c0, first, last, p, shift_p, q, shift_q, rule, kept_through_relu,
                                 sums + c0);
        break;
      case 2:
        group_pair_sums<V, 2, T>(channels, c0, first, last, p, shift_p, q, shift_q, rule, kept_through_relu,
                                 sums + c0);
        break;
      case 3:
        group_pair_sums<V, 3, T>(channels, c0, first, last, p, shift_p, q, shift_q, rule, kept_through_relu,
                                 sums + c0);
        break;
      default:
        group_pair_sums<V, 4, T>(channels, c0, first, last, p, shift_p, q, shift_q, rule, kept_through_relu,
                                 sums + c0);
    }
  }
  for (std::int64_t c = 0; c < channels; ++c) {
    PairSums total;
    for (std::int64_t block = 0; block < blocks; ++block) {
      total.sum_a += block_sums[static_cast<std::size_t>(block * channels + c)].sum_a;
      total.sum_ab += block_sums[static_cast<std::size_t>(block * channels + c)].sum_ab;
    }
    channel_sums[c] = total;
  }
}

// The elementwise passes (the forward's normalization, the backward's gx) walk the rows, each a pass type
// of two parts: coefficients(c0, lanes), the per-channel registers of channels [c0, c0 + lanes), and
// apply(at, coefficients, lanes) on the row's floats [at, at + lanes) of those channels.
//
// Rows of up to kHeldVectors whole vectors (16 to 64 channels on AVX-512: every CIFAR ResNet layer and
// VGG's first two stages; 8 to 32 on AVX2) load each vector's coefficients once per thread and keep them in
// registers for all its rows. Loaded beside every vector, as wider rows load them, they cost the backward six
// loads per vector of gx on top of its two, and its 16- and 32-channel passes ran slower than NCHW's, which
// broadcasts them once per plane. Held, float, 2 threads, from memory (`batchnorm_bench`,
// *_relu_channels_last_cold), forward / backward, us: [128, 16, 32, 32] 543-628 / 918-1004 -> 443-456 /
// 727-797, [128, 32, 16, 16] 303-314 / 571-588 -> 248-296 / 352-371, [128, 64, 8, 8] 173 / 237-270 -> 125-147
// / 189-201; a channels-last fp32 ResNet-20 step's batch norms 18.7-19.8 -> 15.8-17.0 ms. (bfloat16's, whose
// loads widen and stores round, moved within the noise.)
//
// Each thread takes its own copy of the pass, whose pointers are values: the vector stores (intrinsics on
// may_alias types) could otherwise write anything, so a pass shared through OpenMP's closure, holding
// references, had every pointer and the relu flag loaded again, twice over, for each vector. With 16
// channels a row is one vector, and those loads made up much of the loop: bf16 [128, 16, 32, 32] forward
// 356 -> 337 us, backward 531 -> 474 (2 threads).
inline constexpr std::int64_t kHeldVectors = 4;

template <class V, int kVectors, class Pass>
void rows_of_held_vectors(std::int64_t rows, Pass pass) {
  constexpr std::int64_t channels = kVectors * V::width;
#pragma omp parallel if (rows * channels >= kParallelThreshold)
  {
    const Pass own = pass;
    typename Pass::Coefficients held[kVectors];
    for (int k = 0; k < kVectors; ++k) held[k] = own.coefficients(k * V::width, V::width);
#pragma omp for schedule(static)
    for (std::int64_t row = 0; row < rows; ++row) {
#pragma GCC unroll 4
      for (int k = 0; k < kVectors; ++k) own.apply(row * channels + k * V::width, held[k], V::width);
    }
  }
}

template <class V, class Pass>
void for_each_vector(const BatchNorm2dGeometry& g, Pass pass) {
  const std::int64_t channels = g.channels, rows = g.batch * g.height * g.width;
  if (channels % V::width == 0) {
    switch (channels / V::width) {
      case 1:
        return rows_of_held_vectors<V, 1>(rows, pass);
      case 2:
        return rows_of_held_vectors<V, 2>(rows, pass);
      case 3:
        return rows_of_held_vectors<V, 3>(rows, pass);
      case kHeldVectors:
        return rows_of_held_vectors<V, kHeldVectors>(rows, pass);
      default:
        break;
    }
  }
  // Wider rows, or a partial last vector: each vector's coefficients loaded beside it. Rows of whole
  // vectors pass a constant width, so the partial loads and stores become plain ones.
  if (channels % V::width == 0) {
#pragma omp parallel for schedule(static) firstprivate(pass) if (rows * channels >= kParallelThreshold)
    for (std::int64_t row = 0; row < rows; ++row) {
      for (std::int64_t c0 = 0; c0 < channels; c0 += V::width)
        pass.apply(row * channels + c0, pass.coefficients(c0, V::width), V::width);
    }
    return;
  }
#pragma omp parallel for schedule(static) firstprivate(pass) if (rows * channels >= kParallelThreshold)
  for (std::int64_t row = 0; row < rows; ++row) {
    for (std::int64_t c0 = 0; c0 < channels; c0 += V::width) {
      const std::int64_t lanes = std::min<std::int64_t>(V::width, channels - c0);
      pass.apply(row * channels + c0, pass.coefficients(c0, lanes), lanes);
    }
  }
}

// y = (x - shift_c) * scale_c + offset_c, plus residual when not null, the fused activation of that
// (apply_activation).
template <class V, class T>
struct ShiftScaleOffset {
  using Reg = typename V::Reg;
  const T* x;
  const float *shift, *scale, *offset;
  const T* residual;
  OutputActivation activation;
  T* y;

  struct Coefficients {
    Reg shift, scale, offset, upper;
  };
  Coefficients coefficients(std::int64_t c0, std::int64_t lanes) const {
    return {V::load_partial(shift + c0, lanes), V::load_partial(scale + c0, lanes),
            V::load_partial(offset + c0, lanes), V::broadcast(activation.upper)};
  }
  void apply(std::int64_t at, const Coefficients& k, std::int64_t lanes) const {
    Reg v = normalized<V>(V::load_partial(x + at, lanes), k.shift, k.scale, k.offset);
    if (residual) v = V::add(v, V::load_partial(residual + at, lanes));
    V::store_partial(y + at, apply_activation<V>(activation, k.upper, v), lanes);
  }
};

template <class V, class T>
void shift_scale_offset(const BatchNorm2dGeometry& g, const T* x, const float* shift, const float* scale,
                        const float* offset, const T* residual, OutputActivation activation, T* y) {
  for_each_vector<V>(g, ShiftScaleOffset<V, T>{x, shift, scale, offset, residual, activation, y});
}

// gx = a_c * ((gy - centre_c) - slope_c * (x - shift_c)), gy through the fused activation's rule first
// (train_backward_gx's formula, per channel vector).
template <class V, class T>
struct TrainBackwardGx {
  using Reg = typename V::Reg;
  const T *x, *gy;
  ActivationRule<T> rule;
  const float *shift, *centre, *slope, *scale;
  T* gx;

  struct Coefficients {
    Reg shift, centre, minus_slope, scale, rule_scale, rule_offset, relu_highest;
  };
  Coefficients coefficients(std::int64_t c0, std::int64_t lanes) const {
    return {V::load_partial(shift + c0, lanes),
            V::load_partial(centre + c0, lanes),
            V::neg(V::load_partial(slope + c0, lanes)),
            V::load_partial(scale + c0, lanes),
            rule.recomputed() ? V::load_partial(rule.scale + c0, lanes) : V::zero(),
            rule.recomputed() ? V::load_partial(rule.offset + c0, lanes) : V::zero(),
            V::broadcast(rule.highest)};
  }
  void apply(std::int64_t at, const Coefficients& k, std::int64_t lanes) const {
    const Reg d = V::sub(V::load_partial(x + at, lanes), k.shift);
    const Reg centred = V::sub(
        load_gradient<V>(gy, rule, at, lanes, d, k.rule_scale, k.rule_offset, k.relu_highest), k.centre);
    V::store_partial(gx + at, V::mul(k.scale, V::fmadd(k.minus_slope, d, centred)), lanes);
  }
};

template <class V, class T>
void train_backward_gx(const BatchNorm2dGeometry& g, const T* x, const T* gy, const ActivationRule<T>& rule,
                       const float* shift, const float* centre, const float* slope, const float* scale,
                       T* gx) {
  for_each_vector<V>(g, TrainBackwardGx<V, T>{x, gy, rule, shift, centre, slope, scale, gx});
}

// gx = gy * scale_c, gy through relu's rule first (0 < y <= relu_highest) when relu_output is given.
template <class V, class T>
struct ScaleGradient {
  using Reg = typename V::Reg;
  const T *gy, *relu_output;
  float relu_highest;
  const float* scale;
  T* gx;

  struct Coefficients {
    Reg scale, relu_highest;
  };
  Coefficients coefficients(std::int64_t c0, std::int64_t lanes) const {
    return {V::load_partial(scale + c0, lanes), V::broadcast(relu_highest)};
  }
  void apply(std::int64_t at, const Coefficients& k, std::int64_t lanes) const {
    V::store_partial(gx + at, V::mul(load_gradient<V>(gy, relu_output, at, lanes, k.relu_highest), k.scale),
                     lanes);
  }
};

template <class V, class T>
void scale_gradient(const BatchNorm2dGeometry& g, const T* gy, const T* relu_output, float relu_highest,
                    const float* scale, T* gx) {
  for_each_vector<V>(g, ScaleGradient<V, T>{gy, relu_output, relu_highest, scale, gx});
}

}  // namespace
}  // namespace kiln::kernels::vectorized::channels_last
