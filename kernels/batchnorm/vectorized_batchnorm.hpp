// Vectorized batch normalization over NCHW tensors, written once over a vector trait V
// (simd::FloatVector512 or FloatVector256) and the activations' storage type T, and instantiated by
// avx512.cpp and avx2.cpp for float and for bfloat16 (`--precision bf16`: x, y, gy and gx in bfloat16,
// loaded into float lanes and rounded once when stored; parameters, statistics and every sum as for float).
// Channels-last tensors (BatchNorm2dGeometry::channels_last) take the same passes and per-channel arithmetic,
// walking memory through channels_last_batchnorm.hpp instead.
//
//   x, y, gy, gx  [N, C, H, W];  gamma, beta, running_*, save_*, ggamma, gbeta  [C];  m = N*H*W
//
// These kernels are memory-bound: a float is loaded, touched by one or two flops and stored. So the design
// is about passes over memory, not arithmetic:
//   forward train   2 passes: statistics (sum and sum of squares together), then normalize
//   backward train  2 passes: sum(gy) and sum(gy * (x - mean)) together, then gx
//   forward eval    1 pass;  backward eval 2 passes (the sums, then gx)
// The reference needs 3 (forward) and 2 passes.
//
// One-pass statistics: the variance as E[d^2] - E[d]^2 cancels catastrophically when the mean is large next
// to the spread. Taking d = x - shift, with shift = one value of the channel (x[0, c, 0, 0]), makes E[d] of
// the order of the spread, so the difference keeps its digits. The sums themselves are accumulated in
// float vector registers and emptied into double every kChunk values (PairAccumulator): a float lane sums
// at most about 2 * kChunk / (2 * width) values, and a long channel (131072 values for [128, 16, 32, 32])
// is summed in double across chunks.
//
// Both passes walk memory in order, threads splitting the N*C planes; per-plane sums are combined per
// channel in a fixed order (all_channel_pair_sums), so results are bitwise the same for any thread count.
// Large NCHW tensors in train mode take both passes a group of channels at a time instead, threads
// splitting the groups, so the second pass reads the group from L2 (channel_groups.hpp); same bits.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <vector>

#include "kernels/batchnorm/batchnorm.hpp"
#include "kernels/batchnorm/batchnorm_vector_ops.hpp"
#include "kernels/batchnorm/channel_groups.hpp"
#include "kernels/batchnorm/channels_last_batchnorm.hpp"
#include "kernels/cpu_cache.hpp"
#include "kernels/parallel.hpp"

namespace kiln::kernels::vectorized {
namespace {

inline constexpr std::int64_t kChunk = 1024;  // floats summed in float before going to double

// Float-lane partial sums, emptied into double once they hold kChunk values. They run across plane
// boundaries: a small plane (64 values for 8x8) is far shorter than a chunk, and emptying the lanes (a
// horizontal sum) once per plane would cost more than summing the plane.
template <class V>
struct PairAccumulator {
  using Reg = typename V::Reg;
  // Two register pairs, so consecutive adds do not wait on each other.
  Reg a0 = V::zero(), a1 = V::zero(), ab0 = V::zero(), ab1 = V::zero();
  std::int64_t pending = 0;  // values added to the lanes since they were last emptied
  PairSums sums;

  void empty_lanes() {
    sums.sum_a += V::sum_in_double(V::add(a0, a1));
    sums.sum_ab += V::sum_in_double(V::add(ab0, ab1));
    a0 = a1 = ab0 = ab1 = V::zero();
    pending = 0;
  }

  // Adds n contiguous values of p and q (n <= kChunk): a = p - shift_p, b = q - shift_q. With a fused
  // activation (rule.fused(); shift_p is then 0, p is gy, q is x and shift_q the mean), a = p through its
  // rule. For a ReLU, p * relu'(y), (0 < y <= rule.highest ? 1 : 0), as the elementwise relu or clamp
  // backward makes it (exact in T: p times 1 or 0), stored to kept_through_relu when that is not null; y > 0
  // read from rule.output (these n values') or recomputed from b with the coefficients at rule.scale and
  // rule.offset (this plane's channel's). For the hard swish, p * hardswish'(v), v recomputed so. Either way
  // the same loop adds it, so the fused backward's sums are the bits of batch norm's plain backward run on
  // the activation's backward output (for float; for bfloat16 the separate ops would round it to T first).
  template <class T>
  void add(const T* p, float shift_p, const T* q, float shift_q, const ActivationRule<T>& rule,
           T* kept_through_relu, std::int64_t n) {
    const Reg vshift_p = V::broadcast(shift_p), vshift_q = V::broadcast(shift_q);
    const Reg vscale = rule.recomputed() ? V::broadcast(*rule.scale) : V::zero();
    const Reg voffset = rule.recomputed() ? V::broadcast(*rule.offset) : V::zero();
    const Reg vhighest = V::broadcast(rule.highest);
    const auto a_at = [&](std::int64_t i, Reg db) {
      if (!rule.fused()) return V::sub(V::load(p + i), vshift_p);
      const Reg masked = load_gradient<V>(p, rule, i, V::width, db, vscale, voffset, vhighest);
      if (kept_through_relu) V::store(kept_through_relu + i, masked);
      return masked;
    };
    std::int64_t i = 0;
    for (; i + 2 * V::width <= n; i += 2 * V::width) {
      const Reg db0 = V::sub(V::load(q + i), vshift_q), da0 = a_at(i, db0);
      const Reg db1 = V::sub(V::load(q + i + V::width), vshift_q), da1 = a_at(i + V::width, db1);
      a0 = V::add(a0, da0);
      ab0 = V::fmadd(da0, db0, ab0);
      a1 = V::add(a1, da1);
      ab1 = V::fmadd(da1, db1, ab1);
    }
    for (; i + V::width <= n; i += V::width) {
      const Reg db = V::sub(V::load(q + i), vshift_q), da = a_at(i, db);
      a0 = V::add(a0, da);
      ab0 = V::fmadd(da, db, ab0);
    }
    for (; i < n; ++i) {  // scalar tail, fewer than width values, straight into double
      const float b = q[i] - shift_q;
      float a = p[i] - shift_p;
      if (rule.fused()) {
        a = load_gradient(p, rule, i, b, 0);
        if (kept_through_relu) kept_through_relu[i] = static_cast<T>(a);
      }
      const double da = a, db = b;
      sums.sum_a += da;
      sums.sum_ab += da * db;
    }
    pending += n;
    if (pending >= kChunk) empty_lanes();
  }
};

// Small planes. A plane shorter than a vector wastes most of every one, and every plane pays its loop
// setup and, in the sums, two horizontal reductions into double: [128, 1024, 2, 2] normalized at 2.7 GB/s
// where [128, 16, 32, 32] runs at 51. But an NCHW image whose planes hold P values is one row of C * P
// floats, value j in channel j / P: the channels-last walk (channels_last_batchnorm.hpp) over N rows of
// C * P "channels", with each per-channel coefficient repeated P times, is the same computation with
// every lane useful; each channel's sums are then its P columns' sums, added in order.
//
// The sums take the rows walk for planes of fewer than kRowSumsVectors vectors, where the per-plane walk's
// two horizontal reductions into double per plane cost more than its adds. The normalization and gx passes
// take it only for planes shorter than one vector: from a whole vector up, the per-plane walk's coefficients
// are one broadcast per plane, where the rows walk loads one vector of each per vector of data (for
// [128, 512, 4, 4], three rows of 8192 floats, more than L1 holds).
inline constexpr std::int64_t kRowSumsVectors = 4;

template <class V>
bool sums_as_rows(const BatchNorm2dGeometry& g) {
  return !g.channels_last && g.height * g.width < kRowSumsVectors * V::width;
}
template <class V>
bool as_rows(const BatchNorm2dGeometry& g) {
  return !g.channels_last && g.height * g.width < V::width;
}

BatchNorm2dGeometry rows_geometry(const BatchNorm2dGeometry& g) {
  return {.batch = g.batch,
          .channels = g.channels * g.height * g.width,
          .height = 1,
          .width = 1,
          .fused_relu = g.fused_relu,
          .relu_upper = g.relu_upper,
          .fused_hardswish = g.fused_hardswish,
          .channels_last = true};
}

// per_channel[c] repeated over channel c's P columns of a row (null stays null).
std::unique_ptr<float[]> repeat_per_column(const BatchNorm2dGeometry& g, const float* per_channel) {
  if (!per_channel) return nullptr;
  const std::int64_t plane = g.height * g.width;
  std::unique_ptr<float[]> columns(new float[static_cast<std::size_t>(g.channels * plane)]);
  for (std::int64_t c = 0; c < g.channels; ++c) std::fill_n(columns.get() + c * plane, plane, per_channel[c]);
  return columns;
}

// The pair sums of plane nc (image nc / C, channel nc % C), its lanes emptied per kChunk piece and at its
// end, so a plane's sums are the same bits whichever walk takes it.
template <class V, class T>
PairSums plane_pair_sums(const BatchNorm2dGeometry& g, std::int64_t nc, const T* p, const float* shift_p,
                         const T* q, const float* shift_q, const ActivationRule<T>& rule,
                         T* kept_through_relu) {
  const std::int64_t plane = g.height * g.width, c = nc % g.channels;
  const float sp = shift_p ? shift_p[c] : 0.0f, sq = shift_q[c];
  PairAccumulator<V> accumulator;
  for (std::int64_t piece = 0; piece < plane; piece += kChunk) {
    const std::int64_t start = nc * plane + piece;
    accumulator.add(p + start, sp, q + start, sq, rule.from(start, c),
                    kept_through_relu ? kept_through_relu + start : nullptr, std::min(kChunk, plane - piece));
  }
  accumulator.empty_lanes();
  return accumulator.sums;
}

// Channel c's sums: its N plane sums (a table indexed by plane, n * C + c) added in n order.
inline PairSums channel_of_plane_sums(const BatchNorm2dGeometry& g, std::int64_t c,
                                      const PairSums* plane_sums) {
  PairSums sums;
  for (std::int64_t n = 0; n < g.batch; ++n) {
    const PairSums& one = plane_sums[n * g.channels + c];
    sums.sum_a += one.sum_a;
    sums.sum_ab += one.sum_ab;
  }
  return sums;
}

// The pair sums of every channel, with per-channel shifts (shift_p null means 0; with a fused ReLU, p is
// masked by relu's derivative, and kept so in kept_through_relu when that is not null; shift_p must then be
// null). Memory is walked in its own order: threads split the N*C planes, each plane's sums (lanes emptied
// per kChunk piece and at the plane's end) go into a table, and each channel then adds its N plane sums in n
// order. Walking a channel's planes instead would jump C planes ahead after every plane (64 KiB for [128, 16,
// 32, 32]), which the hardware prefetcher does not follow. The table's order is fixed, so the sums are the
// same for any thread count.
template <class V, class T>
void all_channel_pair_sums(const BatchNorm2dGeometry& g, const T* p, const float* shift_p, const T* q,
                           const float* shift_q, const ActivationRule<T>& rule, T* kept_through_relu,
                           PairSums* channel_sums) {
  if (g.channels_last) {
    return channels_last::all_channel_pair_sums<V>(g, p, shift_p, q, shift_q, rule, kept_through_relu,
                                                   channel_sums);
  }
  const std::int64_t plane = g.height * g.width, planes = g.batch * g.channels;
  if (sums_as_rows<V>(g)) {
    const BatchNorm2dGeometry rows = rows_geometry(g);
    const std::unique_ptr<PairSums[]> column_sums(new PairSums[static_cast<std::size_t>(rows.channels)]);
    const auto rule_scale = repeat_per_column(g, rule.scale), rule_offset = repeat_per_column(g, rule.offset);
    channels_last::all_channel_pair_sums<V>(
        rows, p, repeat_per_column(g, shift_p).get(), q, repeat_per_column(g, shift_q).get(),
        rule.with_coefficients(rule_scale.get(), rule_offset.get()), kept_through_relu, column_sums.get());
    for (std::int64_t c = 0; c < g.channels; ++c) {
      PairSums sums;
      for (std::int64_t i = c * plane; i < (c + 1) * plane; ++i) {
        sums.sum_a += column_sums[static_cast<std::size_t>(i)].sum_a;
        sums.sum_ab += column_sums[static_cast<std::size_t>(i)].sum_ab;
      }
      channel_sums[c] = sums;
    }
    return;
  }
  const std::unique_ptr<PairSums[]> plane_sums(new PairSums[static_cast<std::size_t>(planes)]);
#pragma omp parallel for schedule(static) if (planes * plane >= kParallelThreshold)
  for (std::int64_t nc = 0; nc < planes; ++nc) {
    plane_sums[static_cast<std::size_t>(nc)] =
        plane_pair_sums<V>(g, nc, p, shift_p, q, shift_q, rule, kept_through_relu);
  }
  for (std::int64_t c = 0; c < g.channels; ++c)
    channel_sums[c] = channel_of_plane_sums(g, c, plane_sums.get());
}

// Per-channel float coefficients for the second pass, indexed by channel.
struct ChannelCoefficients {
  explicit ChannelCoefficients(std::int64_t channels)
      : shift(new float[static_cast<std::size_t>(channels)]),
        centre(new float[static_cast<std::size_t>(channels)]),
        slope(new float[static_cast<std::size_t>(channels)]),
        scale(new float[static_cast<std::size_t>(channels)]) {}
  std::unique_ptr<float[]> shift, centre, slope, scale;
};

// gx = a * ((gy - gy_mean) - k * (x - mean)) over n contiguous floats: the train backward's gx with its
// per-channel coefficients folded. The differences are taken before scaling by a = gamma * invstd, which
// is large when the variance is small: scaling first would leave two large terms to cancel in float.
// rule: the plane's view (ActivationRule::from), as in load_gradient.
template <class V, class T>
void train_backward_gx(const T* x, const T* gy, const ActivationRule<T>& rule, std::int64_t n, float mean,
                       float gy_mean, float k, float a, T* gx) {
  using Reg = typename V::Reg;
  const Reg vmean = V::broadcast(mean), vgy_mean = V::broadcast(gy_mean);
  const Reg minus_k = V::broadcast(-k), va = V::broadcast(a);
  const Reg vscale = rule.recomputed() ? V::broadcast(*rule.scale) : V::zero();
  const Reg voffset = rule.recomputed() ? V::broadcast(*rule.offset) : V::zero();
  const Reg vhighest = V::broadcast(rule.highest);
  for (std::int64_t i = 0; i < n; i += V::width) {
    const std::int64_t lanes = std::min<std::int64_t>(V::width, n - i);
    const Reg d = V::sub(V::load_partial(x + i, lanes), vmean);
    const Reg centered_gy =
        V::sub(load_gradient<V>(gy, rule, i, lanes, d, vscale, voffset, vhighest), vgy_mean);
    V::store_partial(gx + i, V::mul(va, V::fmadd(minus_k, d, centered_gy)), lanes);
  }
}

// ---- the channel-group walk ----------------------------------------------------------------------------
// Large NCHW tensors take both train-mode passes a group of channels at a time, so that the second pass
// finds the group in L2 (channel_groups.hpp says when, how many channels, and what it measured). Each
// plane's sums are the same bits whichever walk takes them (plane_pair_sums), and a channel adds its planes'
// sums in n order either way, so the two walks give the same bits.

// Channels per group, or 0 for the walk in memory order (also for small planes, which the sums walk as rows).
template <class V, class T>
std::int64_t channels_per_group(const BatchNorm2dGeometry& g, int tensors_read) {
  if (sums_as_rows<V>(g)) return 0;
  return kernels::channel_group(g, sizeof(T), tensors_read, per_core_l2_bytes(), compute_threads());
}

// Both passes of a train-mode kernel over channel groups, threads splitting the groups. For each group: the
// pair sums of its planes into plane_sums (indexed n * C + c), then finish(c, sums) for each of its
// channels (the per-channel coefficients), then second_pass(nc) for each of its planes, in memory order.
template <class V, class T, class Finish, class SecondPass>
void grouped_passes(const BatchNorm2dGeometry& g, std::int64_t group, const T* p, const float* shift_p,
                    const T* q, const float* shift_q, const ActivationRule<T>& rule, T* kept_through_relu,
                    Finish&& finish, SecondPass&& second_pass) {
  const std::int64_t groups = (g.channels + group - 1) / group;
  const std::unique_ptr<PairSums[]> plane_sums(new PairSums[static_cast<std::size_t>(g.batch * g.channels)]);
#pragma omp parallel for schedule(static)
  for (std::int64_t i = 0; i < groups; ++i) {
    const std::int64_t c0 = i * group, c1 = std::min(g.channels, c0 + group);
    for (std::int64_t n = 0; n < g.batch; ++n) {
      for (std::int64_t nc = n * g.channels + c0; nc < n * g.channels + c1; ++nc)
        plane_sums[static_cast<std::size_t>(nc)] =
            plane_pair_sums<V>(g, nc, p, shift_p, q, shift_q, rule, kept_through_relu);
    }
    for (std::int64_t c = c0; c < c1; ++c) finish(c, channel_of_plane_sums(g, c, plane_sums.get()));
    for (std::int64_t n = 0; n < g.batch; ++n) {
      for (std::int64_t nc = n * g.channels + c0; nc < n * g.channels + c1; ++nc) second_pass(nc);
    }
  }
}

}  // namespace

// ---- train mode --------------------------------------------------------------------------------------

template <class V, class T>
void batchnorm2d_forward_train(const BatchNorm2dGeometry& g, const T* x, const float* gamma,
                               const float* beta, float eps, float momentum, float* running_mean,
                               float* running_var, T* y, float* save_mean, float* save_invstd,
                               const T* residual) {
  const std::int64_t plane = g.height * g.width, planes = g.batch * g.channels;
  const std::int64_t m = g.batch * plane;  // values per channel
  // Pass 1 sums d and d^2, d = x - shift_c, with shift_c = x[0, c, 0, 0].
  const std::unique_ptr<float[]> shifts(new float[static_cast<std::size_t>(g.channels)]);
  for (std::int64_t c = 0; c < g.channels; ++c)
    shifts[static_cast<std::size_t>(c)] = x[g.channels_last ? c : c * plane];

  ChannelCoefficients normalize(g.channels);  // y = (x - mean) * scale + beta
  const auto finish = [&](std::int64_t c, const PairSums& sums) {
    const auto k = static_cast<std::size_t>(c);
    const double shifted_mean = sums.sum_a / static_cast<double>(m);
    const double mean = shifts[k] + shifted_mean;
    // E[d^2] - E[d]^2 can round a tiny bit below zero when every value is equal.
    const double biased_var =
        std::max(0.0, sums.sum_ab / static_cast<double>(m) - shifted_mean * shifted_mean);
    const double invstd = 1.0 / std::sqrt(biased_var + eps);
    save_mean[c] = static_cast<float>(mean);
    save_invstd[c] = static_cast<float>(invstd);
    normalize.shift[k] = save_mean[c];
    normalize.scale[k] = normalizing_scale(save_invstd[c], gamma[c]);  // the backward's mask repeats it

    const double unbiased_var =
        m > 1 ? biased_var * static_cast<double>(m) / static_cast<double>(m - 1) : biased_var;
    if (running_mean)
      running_mean[c] = static_cast<float>((1.0 - momentum) * running_mean[c] + momentum * mean);
    if (running_var) {
      running_var[c] = static_cast<float>((1.0 - momentum) * running_var[c] + momentum * unbiased_var);
    }
  };
  // Pass 2 on plane nc: normalize.
  const auto normalize_plane = [&](std::int64_t nc) {
    const auto k = static_cast<std::size_t>(nc % g.channels);
    shift_scale_offset<V>(x + nc * plane, plane, normalize.shift[k], normalize.scale[k], beta[k],
                          residual ? residual + nc * plane : nullptr, output_activation(g), y + nc * plane);
  };

  // (Without y, the statistics alone: a convolution after this batch norm normalizes its input itself,
  // conv2d_forward_normalized_input. The channel-group walk exists for the second pass.)
  if (const std::int64_t group = y ? channels_per_group<V, T>(g, 1) : 0; group > 0) {
    return grouped_passes<V>(g, group, x, shifts.get(), x, shifts.get(), ActivationRule<T>{},
                             static_cast<T*>(nullptr), finish, normalize_plane);
  }
  const std::unique_ptr<PairSums[]> sums(new PairSums[static_cast<std::size_t>(g.channels)]);
  all_channel_pair_sums<V>(g, x, shifts.get(), x, shifts.get(), ActivationRule<T>{}, static_cast<T*>(nullptr),
                           sums.get());
  for (std::int64_t c = 0; c < g.channels; ++c) finish(c, sums[static_cast<std::size_t>(c)]);
  if (!y) return;
  // Pass 2 plane by plane (or row by row) in memory order.
  if (g.channels_last) {
    return channels_last::shift_scale_offset<V>(g, x, normalize.shift.get(), normalize.scale.get(), beta,
                                                residual, output_activation(g), y);
  }
  if (as_rows<V>(g)) {
    return channels_last::shift_scale_offset<V>(
        rows_geometry(g), x, repeat_per_column(g, normalize.shift.get()).get(),
        repeat_per_column(g, normalize.scale.get()).get(), repeat_per_column(g, beta).get(), residual,
        output_activation(g), y);
  }
#pragma omp parallel for schedule(static) if (planes * plane >= kParallelThreshold)
  for (std::int64_t nc = 0; nc < planes; ++nc) normalize_plane(nc);
}

// gbeta = sum gy, ggamma = invstd * sum gy * (x - mean), and
//   gx = gamma * invstd / m * (m * gy - gbeta - xhat * ggamma)
//      = a * ((gy - gbeta / m) - k * (x - mean)),   a = gamma * invstd,  k = invstd * ggamma / m
template <class V, class T>
void batchnorm2d_backward_train(const BatchNorm2dGeometry& g, const T* x, const T* gy, const T* y,
                                const float* gamma, const float* beta, const float* save_mean,
                                const float* save_invstd, T* gx, float* ggamma, float* gbeta,
                                T* gy_through_relu) {
  const std::int64_t plane = g.height * g.width, planes = g.batch * g.channels;
  const double m = static_cast<double>(g.batch * plane);
  // Pass 1 sums gy and gy * (x - mean) (gy through the fused activation's rule first, and for a ReLU kept in
  // gy_through_relu when asked). Pass 2 then reads that kept gradient, where it is, instead of gy and y.
  // The rule is recomputed from x (batchnorm_vector_ops.hpp), except where a gradient is kept: the forward
  // then added a residual before the ReLU, which x does not give, so both passes' mask is y's.
  T* const kept_through_relu = g.fused_relu ? gy_through_relu : nullptr;
  std::unique_ptr<float[]> rule_scale;
  ActivationRule<T> rule{.highest = highest_stored_below<T>(g.relu_upper), .hardswish = g.fused_hardswish};
  if (kept_through_relu) {
    rule.output = y;
  } else if (g.fused_relu || g.fused_hardswish) {
    rule_scale.reset(new float[static_cast<std::size_t>(g.channels)]);
    for (std::int64_t c = 0; c < g.channels; ++c)
      rule_scale[static_cast<std::size_t>(c)] = normalizing_scale(save_invstd[c], gamma[c]);
    rule.scale = rule_scale.get();
    rule.offset = beta;
  }
  const T* pass2_gy = kept_through_relu ? kept_through_relu : gy;
  const ActivationRule<T> pass2_rule = kept_through_relu ? ActivationRule<T>{} : rule;
  ChannelCoefficients gradient(g.channels);  // gx = a * ((gy - centre) - slope * (x - shift))
  const auto finish = [&](std::int64_t c, const PairSums& sums) {
    const auto k = static_cast<std::size_t>(c);
    const double invstd = save_invstd[c];
    const double channel_gbeta = sums.sum_a;
    const double channel_ggamma = invstd * sums.sum_ab;
    ggamma[c] = static_cast<float>(channel_ggamma);
    gbeta[c] = static_cast<float>(channel_gbeta);
    gradient.shift[k] = save_mean[c];
    gradient.centre[k] = static_cast<float>(channel_gbeta / m);
    gradient.slope[k] = static_cast<float>(invstd * channel_ggamma / m);
    gradient.scale[k] = static_cast<float>(gamma[c] * invstd);
  };
  // Pass 2 on plane nc: gx.
  const auto gx_of_plane = [&](std::int64_t nc) {
    const std::int64_t c = nc % g.channels;
    const auto k = static_cast<std::size_t>(c);
    train_backward_gx<V>(x + nc * plane, pass2_gy + nc * plane, pass2_rule.from(nc * plane, c), plane,
                         gradient.shift[k], gradient.centre[k], gradient.slope[k], gradient.scale[k],
                         gx + nc * plane);
  };

  // The first pass touches gy and x, y where the mask is read, and the kept gradient it writes (counted: with
  // it left out, ResNet-20's 16-channel backward overflowed L2 and ran 1.52 ms a call against 1.43).
  const int first_pass_tensors = 2 + (rule.output ? 1 : 0) + (kept_through_relu ? 1 : 0);
  if (const std::int64_t group = channels_per_group<V, T>(g, first_pass_tensors); group > 0) {
    return grouped_passes<V>(g, group, gy, nullptr, x, save_mean, rule, kept_through_relu, finish,
                             gx_of_plane);
  }
  const std::unique_ptr<PairSums[]> sums(new PairSums[static_cast<std::size_t>(g.channels)]);
  all_channel_pair_sums<V>(g, gy, nullptr, x, save_mean, rule, kept_through_relu, sums.get());
  for (std::int64_t c = 0; c < g.channels; ++c) finish(c, sums[static_cast<std::size_t>(c)]);
  // Pass 2 plane by plane (or row by row) in memory order.
  if (g.channels_last) {
    return channels_last::train_backward_gx<V>(g, x, pass2_gy, pass2_rule, gradient.shift.get(),
                                               gradient.centre.get(), gradient.slope.get(),
                                               gradient.scale.get(), gx);
  }
  if (as_rows<V>(g)) {
    const auto rule_scale_columns = repeat_per_column(g, pass2_rule.scale);
    const auto rule_offset_columns = repeat_per_column(g, pass2_rule.offset);
    return channels_last::train_backward_gx<V>(
        rows_geometry(g), x, pass2_gy,
        pass2_rule.with_coefficients(rule_scale_columns.get(), rule_offset_columns.get()),
        repeat_per_column(g, gradient.shift.get()).get(), repeat_per_column(g, gradient.centre.get()).get(),
        repeat_per_column(g, gradient.slope.get()).get(), repeat_per_column(g, gradient.scale.get()).get(),
        gx);
  }
#pragma omp parallel for schedule(static) if (planes * plane >= kParallelThreshold)
  for (std::int64_t nc = 0; nc < planes; ++nc) gx_of_plane(nc);
}

// ---- eval mode ---------------------------------------------------------------------------------------

// y = (x - running_mean_c) * scale_c + beta_c: no reduction, so threads split the N*C planes.
template <class V, class T>
void batchnorm2d_forward_eval(const BatchNorm2dGeometry& g, const T* x, const float* gamma, const float* beta,
                              const float* running_mean, const float* running_var, float eps, T* y,
                              const T* residual) {
  const std::int64_t plane = g.height * g.width;
  const std::int64_t planes = g.batch * g.channels;
  if (g.channels_last || as_rows<V>(g)) {
    const std::unique_ptr<float[]> scale(new float[static_cast<std::size_t>(g.channels)]);
    for (std::int64_t c = 0; c < g.channels; ++c)
      scale[static_cast<std::size_t>(c)] = batchnorm_eval_scale(gamma[c], running_var[c], eps);
    if (g.channels_last)
      return channels_last::shift_scale_offset<V>(g, x, running_mean, scale.get(), beta, residual,
                                                  output_activation(g), y);
    return channels_last::shift_scale_offset<V>(rows_geometry(g), x, repeat_per_column(g, running_mean).get(),
                                                repeat_per_column(g, scale.get()).get(),
                                                repeat_per_column(g, beta).get(), residual,
                                                output_activation(g), y);
  }
#pragma omp parallel for schedule(static) if (planes * plane >= kParallelThreshold)
  for (std::int64_t nc = 0; nc < planes; ++nc) {
    const std::int64_t c = nc % g.channels;
    shift_scale_offset<V>(x + nc * plane, plane, running_mean[c],
                          batchnorm_eval_scale(gamma[c], running_var[c], eps), beta[c],
                          residual ? residual + nc * plane : nullptr, output_activation(g), y + nc * plane);
  }
}

// gx = gy * gamma_c * invstd_c;  ggamma_c = invstd_c * sum gy * (x - running_mean_c);  gbeta_c = sum gy.
template <class V, class T>
void batchnorm2d_backward_eval(const BatchNorm2dGeometry& g, const T* x, const T* gy, const T* y,
                               const float* gamma, const float* beta, const float* running_mean,
                               const float* running_var, float eps, T* gx, float* ggamma, float* gbeta,
                               T* gy_through_relu) {
  const std::int64_t plane = g.height * g.width, planes = g.batch * g.channels;
  const std::unique_ptr<PairSums[]> sums(new PairSums[static_cast<std::size_t>(g.channels)]);
  const std::unique_ptr<float[]> scale(new float[static_cast<std::size_t>(g.channels)]);
  for (std::int64_t c = 0; c < g.channels; ++c)
    scale[static_cast<std::size_t>(c)] = batchnorm_eval_scale(gamma[c], running_var[c], eps);
  const auto finish_sums = [&] {
    for (std::int64_t c = 0; c < g.channels; ++c) {
      const auto k = static_cast<std::size_t>(c);
      const double invstd = 1.0 / std::sqrt(static_cast<double>(running_var[c]) + eps);
      ggamma[c] = static_cast<float>(invstd * sums[k].sum_ab);
      gbeta[c] = static_cast<float>(sums[k].sum_a);
    }
  };
  if (g.fused_hardswish) {
    // The hard swish's input recomputed from x both passes, as the eval forward normalized it (shift the
    // running mean, scale batchnorm_eval_scale, offset beta); gx = a * (gy' - 0 - 0 * (x - shift)) is the
    // train backward's second pass with its centre and slope at zero, a the same scale: gy' * scale.
    const ActivationRule<T> rule{.scale = scale.get(), .offset = beta, .hardswish = true};
    all_channel_pair_sums<V>(g, gy, nullptr, x, running_mean, rule, static_cast<T*>(nullptr), sums.get());
    finish_sums();
    const std::unique_ptr<float[]> zeros(new float[static_cast<std::size_t>(g.channels)]());
    if (g.channels_last || as_rows<V>(g)) {
      // Per-channel coefficients, or, for small NCHW planes walked as rows, each repeated per column.
      std::vector<std::unique_ptr<float[]>> repeated;
      const auto per_column = [&](const float* per_channel) -> const float* {
        if (g.channels_last) return per_channel;
        return repeated.emplace_back(repeat_per_column(g, per_channel)).get();
      };
      const float *column_scale = per_column(scale.get()), *column_zero = per_column(zeros.get());
      return channels_last::train_backward_gx<V>(g.channels_last ? g : rows_geometry(g), x, gy,
                                                 rule.with_coefficients(column_scale, per_column(beta)),
                                                 per_column(running_mean), column_zero, column_zero,
                                                 column_scale, gx);
    }
#pragma omp parallel for schedule(static) if (planes * plane >= kParallelThreshold)
    for (std::int64_t nc = 0; nc < planes; ++nc) {
      const std::int64_t c = nc % g.channels;
      train_backward_gx<V>(x + nc * plane, gy + nc * plane, rule.from(nc * plane, c), plane, running_mean[c],
                           0.0f, 0.0f, scale[static_cast<std::size_t>(c)], gx + nc * plane);
    }
    return;
  }
  // As in the train backward: the sums' pass keeps gy through relu's rule when asked, and gx reads it. The
  // mask is y's (eval mode's backward is rare: fine-tuning with frozen statistics).
  const T* relu_output = g.fused_relu ? y : nullptr;
  const float highest = highest_stored_below<T>(g.relu_upper);
  T* const kept_through_relu = g.fused_relu ? gy_through_relu : nullptr;
  all_channel_pair_sums<V>(g, gy, nullptr, x, running_mean,
                           ActivationRule<T>{.output = relu_output, .highest = highest}, kept_through_relu,
                           sums.get());
  finish_sums();
  if (kept_through_relu) {
    gy = kept_through_relu;
    relu_output = nullptr;
  }
  if (g.channels_last) return channels_last::scale_gradient<V>(g, gy, relu_output, highest, scale.get(), gx);
  if (as_rows<V>(g)) {
    return channels_last::scale_gradient<V>(rows_geometry(g), gy, relu_output, highest,
                                            repeat_per_column(g, scale.get()).get(), gx);
  }
  const typename V::Reg vhighest = V::broadcast(highest);
#pragma omp parallel for schedule(static) if (planes * plane >= kParallelThreshold)
  for (std::int64_t nc = 0; nc < planes; ++nc) {
    // gx = gy * scale (gy through relu's rule first, when fused)
    const typename V::Reg channel_scale = V::broadcast(scale[static_cast<std::size_t>(nc % g.channels)]);
    const T* y_plane = relu_output ? relu_output + nc * plane : nullptr;
    for (std::int64_t i = 0; i < plane; i += V::width) {
      const std::int64_t lanes = std::min<std::int64_t>(V::width, plane - i);
      V::store_partial(gx + nc * plane + i,
                       V::mul(load_gradient<V>(gy + nc * plane, y_plane, i, lanes, vhighest), channel_scale),
                       lanes);
    }
  }
}

}  // namespace kiln::kernels::vectorized
