// The pieces both vectorized batch-norm walks share (vectorized_batchnorm.hpp over NCHW planes,
// channels_last_batchnorm.hpp over channels-last rows), written once over a vector trait V and the
// activations' storage type T (float, or bfloat16: loaded into float lanes, rounded once when stored).
#pragma once

#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>

#include "core/bfloat16.hpp"
#include "kernels/batchnorm/batchnorm.hpp"
#include "kernels/simd/hard_activations.hpp"

namespace kiln::kernels::vectorized {
namespace {

inline constexpr std::int64_t kParallelThreshold = 32768;  // below this many elements, threads cost more

// sum of a and sum of a * b over a channel, where a = p - shift_p and b = q - shift_q: the two sums every
// batchnorm kernel needs.
//   forward:   p = q = x, shifts = one value of x      -> sum d, sum d^2
//   backward:  p = gy (shift 0), q = x (shift mean)     -> sum gy, sum gy * (x - mean)
struct PairSums {
  double sum_a = 0, sum_ab = 0;
};

// ---- the fused ReLU, and its cap ------------------------------------------------------------------------
// Forward, y = min(upper, max(0, v)) (BatchNorm2dGeometry::fused_relu, relu_upper: +inf for the plain ReLU,
// 6 for ReLU6). Backward, gy * (0 < y <= highest ? 1 : 0), where `highest` is the largest value whose
// gradient passes the cap: the largest float that T stores below `upper` (+inf without a cap). y is stored
// in T, so y <= highest is y < upper, the clamp's rule; and v, the float the forward rounded to y, passes
// exactly when y does (the recomputed mask below).

// The largest float whose value stored in T (rounded to nearest even) is below upper, for upper > 0 stored
// exactly in T; +inf for +inf. Positive floats order as their bits, so a search over the bits finds it: from
// 0 (stored as 0, below) to upper (stored as itself, not below).
template <class T>
float highest_stored_below(float upper) {
  if (std::isinf(upper)) return upper;
  std::uint32_t below = std::bit_cast<std::uint32_t>(0.0f), not_below = std::bit_cast<std::uint32_t>(upper);
  while (not_below - below > 1) {
    const std::uint32_t middle = below + (not_below - below) / 2;
    const float value = std::bit_cast<float>(middle);
    (static_cast<float>(static_cast<T>(value)) < upper ? below : not_below) = middle;
  }
  return std::bit_cast<float>(below);
}

// The fused activation as the forward applies it: the ReLU (capped at `upper`), or batch norm's hard swish
// (BatchNorm2dGeometry::fused_hardswish; a convolution's stores at inference take the ReLU only).
struct OutputActivation {
  bool relu = false;
  float upper = std::numeric_limits<float>::infinity();
  bool hardswish = false;
};
inline OutputActivation output_activation(const BatchNorm2dGeometry& g) {
  return {g.fused_relu, g.relu_upper, g.fused_hardswish};
}

// min(upper, max(0, v)) when fused: max and min return their second operand when either is NaN, so a NaN v
// passes through, as the elementwise relu and clamp let it. Without a cap, min(+inf, v) is v.
template <class V>
typename V::Reg apply_relu(bool fused, typename V::Reg upper, typename V::Reg v) {
  return fused ? V::min(upper, V::max(V::zero(), v)) : v;
}

// The output activation of v: the hard swish (the elementwise kernels' own, simd/hard_activations.hpp, so a
// float y is their bits on batch norm's output), else the ReLU when fused. `upper`: activation.upper's
// broadcast, loaded once by the caller.
template <class V>
typename V::Reg apply_activation(const OutputActivation& activation, typename V::Reg upper,
                                 typename V::Reg v) {
  return activation.hardswish ? simd::hard_swish<V>(v) : apply_relu<V>(activation.relu, upper, v);
}

// gy * (0 < y <= highest ? 1 : 0): the rule from the output, multiplied in as the elementwise kernels do, so
// a zero gradient keeps its sign and an infinite gy times 0 is NaN, exactly as there.
template <class V>
typename V::Reg relu_gradient(typename V::Reg gy, typename V::Reg y, typename V::Reg highest) {
  const auto passes = V::both(V::greater(y, V::zero()), V::less_equal(y, highest));
  return V::mul(gy, V::select(passes, V::broadcast(1.0f), V::zero()));
}

// gy at [i, i + lanes), through the rule at y when y is given (the fused backward). T is the activations'
// storage, float or bfloat16 (the trait widens it into float lanes).
template <class V, class T>
typename V::Reg load_gradient(const T* gy, const T* y, std::int64_t i, std::int64_t lanes,
                              typename V::Reg highest) {
  const typename V::Reg g = V::load_partial(gy + i, lanes);
  return y ? relu_gradient<V>(g, V::load_partial(y + i, lanes), highest) : g;
}

// ---- the fused ReLU's mask, recomputed from x ------------------------------------------------------------
// The train forward stores y = relu(v), v = (x - mean) * scale + beta: one fma on float lanes, the same in
// every walk, from per-channel floats the backward holds too (mean and invstd are saved, gamma and beta are
// the parameters). So the backward can take y > 0 from x, which it reads anyway, instead of reading y: the
// fused BN -> ReLU backward then makes five passes over memory, not seven (both of its passes read y).
// Bit for bit y's mask, provided both sides compute v alike; hence the one formula for scale below, and the
// thresholds that account for the rounding to T (at zero here, at the cap in highest_stored_below).

// The forward's normalizing scale from the saved float invstd: a float product, which the backward
// repeats exactly.
inline float normalizing_scale(float save_invstd, float gamma) { return save_invstd * gamma; }

// The largest float that T stores as zero: relu(v) stored in T is > 0 exactly when v > this. 0 for float.
// bfloat16 rounds to nearest even: positive floats up to 2^-134, the tie between 0 and the smallest
// bfloat16 (2^-133), become +0 (tests/kernels/batchnorm_fast_test.cpp checks every float up to there).
template <class T>
inline constexpr float largest_stored_as_zero = 0.0f;
template <>
inline constexpr float largest_stored_as_zero<bfloat16> = 0x1p-134f;

// gy * (0 < y <= highest ? 1 : 0), y's test recomputed from d = x - mean and the channel's scale and offset
// (beta) as v's; a NaN v fails the comparisons, as relu(NaN) = NaN fails y > 0.
template <class V, class T>
typename V::Reg relu_gradient_recomputed(typename V::Reg gy, typename V::Reg d, typename V::Reg scale,
                                         typename V::Reg offset, typename V::Reg highest) {
  const typename V::Reg v = V::fmadd(d, scale, offset);
  const auto passes =
      V::both(V::greater(v, V::broadcast(largest_stored_as_zero<T>)), V::less_equal(v, highest));
  return V::mul(gy, V::select(passes, V::broadcast(1.0f), V::zero()));
}
// The same on one value, for scalar tails (std::fma rounds once, as the vector fmadd does).
template <class T>
float relu_gradient_recomputed(float gy, float d, float scale, float offset, float highest) {
  const float v = std::fma(d, scale, offset);
  return gy * (v > largest_stored_as_zero<T> && v <= highest ? 1.0f : 0.0f);
}

// ---- the fused hard swish's gradient, from x -------------------------------------------------------------
// gy * hardswish'(v), v = (x - mean) * scale + offset recomputed as the forward computed it (the same fma on
// the same floats: for float the value the separate ops' hard swish backward would read; for bfloat16 the
// value before its rounding to T). The hard swish has no rule from its output: it is not monotonic.
template <class V>
typename V::Reg hard_swish_gradient_recomputed(typename V::Reg gy, typename V::Reg d, typename V::Reg scale,
                                               typename V::Reg offset) {
  return simd::hard_swish_gradient<V>(V::fmadd(d, scale, offset), gy);
}
inline float hard_swish_gradient_recomputed(float gy, float d, float scale, float offset) {
  return simd::hard_swish_gradient(std::fma(d, scale, offset), gy);
}

// How the fused backward takes gy through the activation. ReLU's mask comes from `output`, the forward's y
// (read: after a residual was added in, or in eval mode), or from `scale` and `offset`, the per-channel
// coefficients above (recomputed from x); `highest`: the cap's test, highest_stored_below(relu_upper). The
// hard swish (`hardswish`) always recomputes: scale and offset. None of them: no fused activation. The walks
// over rows take per-column coefficients (repeat_per_column).
template <class T>
struct ActivationRule {
  const T* output = nullptr;
  const float* scale = nullptr;
  const float* offset = nullptr;
  float highest = std::numeric_limits<float>::infinity();
  bool hardswish = false;

  bool fused() const { return output || scale; }
  bool recomputed() const { return scale != nullptr; }
  // The view from value `first` and channel `c` on: an NCHW plane's (its values, its channel's coefficients).
  ActivationRule from(std::int64_t first, std::int64_t c) const {
    return {output ? output + first : nullptr, scale ? scale + c : nullptr, offset ? offset + c : nullptr,
            highest, hardswish};
  }
  // The same rule with other coefficients (a walk over rows: each channel's repeated per column).
  ActivationRule with_coefficients(const float* other_scale, const float* other_offset) const {
    return {output, other_scale, other_offset, highest, hardswish};
  }
};

// gy at [at, at + lanes) through the fused activation's rule, read or recomputed: d is x - mean there, scale
// and offset the coefficients' registers there (read only when recomputed), highest the ReLU mask's
// broadcast.
template <class V, class T>
typename V::Reg load_gradient(const T* gy, const ActivationRule<T>& rule, std::int64_t at, std::int64_t lanes,
                              typename V::Reg d, typename V::Reg scale, typename V::Reg offset,
                              typename V::Reg highest) {
  const typename V::Reg g = V::load_partial(gy + at, lanes);
  if (rule.hardswish) return hard_swish_gradient_recomputed<V>(g, d, scale, offset);
  if (rule.recomputed()) return relu_gradient_recomputed<V, T>(g, d, scale, offset, highest);
  return rule.output ? relu_gradient<V>(g, V::load_partial(rule.output + at, lanes), highest) : g;
}
// The same on one value, for scalar tails: b is x - mean there, `c` the value's index into the coefficients.
template <class T>
float load_gradient(const T* gy, const ActivationRule<T>& rule, std::int64_t at, float b, std::int64_t c) {
  const float g = gy[at];
  if (rule.hardswish) return hard_swish_gradient_recomputed(g, b, rule.scale[c], rule.offset[c]);
  if (rule.recomputed())
    return relu_gradient_recomputed<T>(g, b, rule.scale[c], rule.offset[c], rule.highest);
  if (!rule.output) return g;
  const float y = rule.output[at];
  return g * (y > 0 && y <= rule.highest ? 1.0f : 0.0f);
}

// (x - shift) * scale + offset on float lanes, rounded once (fma): batch norm's normalization, written once
// for every kernel that applies it (the forward kernels' walks over NCHW planes and channels-last rows, and a
// convolution's stores at inference, conv2d_forward_batchnorm_eval), so that all of them give the same bits.
template <class V>
typename V::Reg normalized(typename V::Reg x, typename V::Reg shift, typename V::Reg scale,
                           typename V::Reg offset) {
  return V::fmadd(V::sub(x, shift), scale, offset);
}

// out = (in - shift) * scale + offset over n contiguous floats: the normalization; plus residual when it is
// not null (a float sum, then the one rounding). With a fused activation, out = its value (apply_activation).
// In place (out == in) too: the forward kernels' normalizing pass, and a convolution's outputs at inference
// (conv2d_normalize_outputs).
template <class V, class T>
void shift_scale_offset(const T* in, std::int64_t n, float shift, float scale, float offset,
                        const T* residual, OutputActivation activation, T* out) {
  using Reg = typename V::Reg;
  const Reg vshift = V::broadcast(shift), vscale = V::broadcast(scale), voffset = V::broadcast(offset);
  const Reg upper = V::broadcast(activation.upper);
  const auto finish = [activation, upper, residual](Reg v, std::int64_t i, std::int64_t lanes) {
    if (residual) v = V::add(v, V::load_partial(residual + i, lanes));
    return apply_activation<V>(activation, upper, v);
  };
  std::int64_t i = 0;
  for (; i + V::width <= n; i += V::width) {
    V::store(out + i, finish(normalized<V>(V::load(in + i), vshift, vscale, voffset), i, V::width));
  }
  if (i < n) {
    const Reg v = normalized<V>(V::load_partial(in + i, n - i), vshift, vscale, voffset);
    V::store_partial(out + i, finish(v, i, n - i), n - i);
  }
}

}  // namespace
}  // namespace kiln::kernels::vectorized
