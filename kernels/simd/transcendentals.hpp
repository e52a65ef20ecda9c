// exp, sigmoid, tanh, GELU and SiLU on float lanes, written once over a vector trait V (simd::FloatVector512
// or FloatVector256): what the vectorized elementwise kernels run for the Sigmoid, Tanh, GELU and SiLU
// activations, whose reference computes each value in double and rounds once. These are not that: each is
// within a few float ulps of it (tests/kernels/elementwise_fast_test.cpp measures the worst case over a sweep
// of every float), in exchange for a loop of fmas where the reference calls the C library's double exp or
// tanh for each value (a [128, 144, 32, 32] sigmoid 120 ms on two Zen 5 cores, tanh 212 ms, against 8 ms for
// a ReLU).
//
// NaN passes through every function here, and infinities give their limits (GELU at -infinity is -infinity
// times 0, NaN, as in the reference).
#pragma once

namespace kiln::kernels::simd {

// exp(x), within about 1 ulp. x = n ln2 + r with n = round(x / ln2), so |r| <= ln2 / 2, and exp(x) =
// 2^n exp(r). r is taken in two fmas against ln2 split into its float rounding and the rest, so it is exact
// to about 2^-40 even for n near 128. exp(r) is its Taylor series to r^7 / 7!: the first term left out,
// r^8 / 8! at |r| = ln2 / 2, is 5.6e-9 of exp(r), a tenth of a float ulp; Horner's rule in fmas adds about
// half an ulp. x is clamped to [-104, 89] first: exp underflows to zero below about -103.3 and overflows
// past 88.8, so the clamp changes no result, and keeps n where times_power_of_two is defined. (min and max
// return their second operand when either is NaN, so a NaN x stays NaN through the clamp and the rest.)
// exp(x) as p 2^n, the pieces below before the scaling (SiLU multiplies x into p first: far below zero
// exp(x) is subnormal while x exp(x) is not yet).
template <class V>
struct ExpParts {
  typename V::Reg p, n;
};

template <class V>
ExpParts<V> exp_parts(typename V::Reg x) {
  using Reg = typename V::Reg;
  constexpr float kLog2e = 1.44269504088896341f;
  constexpr float kLn2 = 0.693147180559945309f;  // ln 2 rounded to float
  constexpr float kLn2Rest = static_cast<float>(0.693147180559945309417232 - 0.693147180559945309f);
  x = V::min(V::broadcast(89.0f), V::max(V::broadcast(-104.0f), x));
  const Reg n = V::round(V::mul(x, V::broadcast(kLog2e)));
  Reg r = V::fmadd(n, V::broadcast(-kLn2), x);
  r = V::fmadd(n, V::broadcast(-kLn2Rest), r);
  // 1 + r + r^2 (1/2! + r (1/3! + r (1/4! + r (1/5! + r (1/6! + r / 7!)))))
  Reg p = V::broadcast(1.0f / 5040.0f);
  p = V::fmadd(p, r, V::broadcast(1.0f / 720.0f));
  p = V::fmadd(p, r, V::broadcast(1.0f / 120.0f));
  p = V::fmadd(p, r, V::broadcast(1.0f / 24.0f));
  p = V::fmadd(p, r, V::broadcast(1.0f / 6.0f));
  p = V::fmadd(p, r, V::broadcast(0.5f));
  p = V::fmadd(p, V::mul(r, r), V::add(r, V::broadcast(1.0f)));
  return {p, n};
}

template <class V>
typename V::Reg exp(typename V::Reg x) {
  const ExpParts<V> e = exp_parts<V>(x);
  return V::times_power_of_two(e.p, e.n);
}

// 1 / (1 + exp(-x)): within about 2 ulps. Far below zero exp(-x) overflows to infinity and the result is 0
// (the true value is below 2^-126 there, a subnormal the reference keeps); far above, 1.
template <class V>
typename V::Reg sigmoid(typename V::Reg x) {
  const typename V::Reg one = V::broadcast(1.0f);
  return V::div(one, V::add(one, exp<V>(V::neg(x))));
}

// tanh(x), within about 2 ulps, odd. For |x| >= 0.625, 1 - 2 / (exp(2|x|) + 1) with x's sign: the result is
// above 0.55 there, so the subtraction loses nothing, and exp(2|x|) overflowing gives 1. Below, where that
// subtraction would cancel, x (1 + x^2 P(x^2)), P of degree 4 fitted to (tanh(x) / x - 1) / x^2 by least
// squares weighted for tanh's relative error (numpy, on 20,000 points of [0, 0.625]): 1.7e-8 of tanh at
// worst, with the coefficients rounded to float. (A Taylor series converges too slowly out to 0.625.)
template <class V>
typename V::Reg tanh(typename V::Reg x) {
  using Reg = typename V::Reg;
  const Reg one = V::broadcast(1.0f), magnitude = V::abs(x);
  const Reg e = exp<V>(V::add(magnitude, magnitude));
  Reg large = V::sub(one, V::div(V::broadcast(2.0f), V::add(e, one)));
  large = V::select(V::less(x, V::zero()), V::neg(large), large);
  const Reg u = V::mul(x, x);
  Reg p = V::broadcast(-0.0057981000281870365f);
  p = V::fmadd(p, u, V::broadcast(0.020720280706882477f));
  p = V::fmadd(p, u, V::broadcast(-0.053763799369335175f));
  p = V::fmadd(p, u, V::broadcast(0.13331718742847443f));
  p = V::fmadd(p, u, V::broadcast(-0.33333292603492737f));
  const Reg small = V::mul(x, V::fmadd(u, p, one));  // x (1 + u P(u)): tanh(-0) is -0
  // A NaN x fails the comparison and takes `large`, NaN too.
  return V::select(V::less(magnitude, V::broadcast(0.625f)), small, large);
}

// ---- GELU: x Phi(x), Phi the standard normal CDF -------------------------------------------------------
// Phi(x) = (1 + erf(z)) / 2 with z = x / sqrt 2. For |z| < 0.84, erf(z) = z P(z^2), P of degree 6, and
// 1 + erf(z) >= 0.23 cancels nothing. Beyond, erfc(|z|) = exp(-z^2) Q(t), t = 1 / (1 + |z| / 2), Q of
// degree 10 (Q(t) is erfc(y) exp(y^2), smooth, about 1 / (y sqrt pi) far out), and Phi(x) = erfc(|z|) / 2
// below zero, 1 - erfc(|z|) / 2 above: the far negative tail keeps its relative accuracy. P and Q were fitted
// by least squares weighted for relative error (numpy: erf(z) / z on 20,000 points of [0, 0.84], Q on 40,000
// of [0.84, 11]), 6e-8 and 1.4e-8 of the functions with the coefficients rounded to float. exp(-z^2) takes
// z^2 as a float and its rounding error (an fma), exp(-hi) (1 - lo), so that the tail's large z^2 loses
// nothing. Past |z| = 11 (|x| = 15.6), exp(-z^2) is zero in float: |x| is clamped there, which keeps an
// infinite x from making that fma NaN.
// The pieces of Phi(x): where |z| < 0.84 (near_zero), Phi = near_zero_cdf; elsewhere erfc(|z|) / 2 =
// half_q * gaussian, and Phi that below zero, 1 minus it above. gaussian = exp(-x^2 / 2) serves the density
// too, phi = gaussian / sqrt(2 pi). Kept apart so that GELU can multiply x into half_q before the gaussian:
// far below zero Phi itself is subnormal (below 2^-126 past x = -13.1) while x Phi is not yet.
template <class V>
struct NormalCdf {
  typename V::Mask near_zero;
  typename V::Reg near_zero_cdf, half_q, gaussian;

  typename V::Reg cdf(typename V::Reg x) const {
    const typename V::Reg half_erfc = V::mul(half_q, gaussian);
    return V::select(near_zero, near_zero_cdf,
                     V::select(V::less(x, V::zero()), half_erfc, V::sub(V::broadcast(1.0f), half_erfc)));
  }
  typename V::Reg density() const { return V::mul(gaussian, V::broadcast(0.398942280401432678f)); }
};

template <class V>
NormalCdf<V> normal_cdf(typename V::Reg x) {
  using Reg = typename V::Reg;
  const Reg one = V::broadcast(1.0f), half = V::broadcast(0.5f);
  const Reg z = V::mul(x, V::broadcast(0.707106781186547524f));
  const Reg a = V::abs(z);
  // z^2 = x^2 / 2, from x, not from z: z's rounding (6e-8 of it) would move exp(-z^2) by z^2 times that, 27
  // ulps at x = -6. x^2 is a float and its rounding error (an fma), halved exactly.
  const Reg clamped = V::min(V::broadcast(15.6f), V::abs(x));  // a NaN x stays NaN (min's second operand)
  const Reg x2 = V::mul(clamped, clamped), x2_rest = V::fmadd(clamped, clamped, V::neg(x2));
  const Reg gaussian =
      V::mul(exp<V>(V::mul(x2, V::broadcast(-0.5f))), V::fmadd(x2_rest, V::broadcast(-0.5f), one));

  const Reg u = V::mul(z, z);
  Reg p = V::broadcast(8.995911775855348e-05f);
  p = V::fmadd(p, u, V::broadcast(-0.0008276025764644146f));
  p = V::fmadd(p, u, V::broadcast(0.0052116503939032555f));
  p = V::fmadd(p, u, V::broadcast(-0.026863278821110725f));
  p = V::fmadd(p, u, V::broadcast(0.11283759027719498f));
  p = V::fmadd(p, u, V::broadcast(-0.37612637877464294f));
  p = V::fmadd(p, u, V::broadcast(1.128379225730896f));

  const Reg t = V::div(one, V::fmadd(a, half, one));
  Reg q = V::broadcast(-0.051436297595500946f);
  q = V::fmadd(q, t, V::broadcast(0.14539286494255066f));
  q = V::fmadd(q, t, V::broadcast(-0.06159495562314987f));
  q = V::fmadd(q, t, V::broadcast(-0.16289132833480835f));
  q = V::fmadd(q, t, V::broadcast(0.09565293043851852f));
  q = V::fmadd(q, t, V::broadcast(0.0355062410235405f));
  q = V::fmadd(q, t, V::broadcast(0.19067533314228058f));
  q = V::fmadd(q, t, V::broadcast(0.24408982694149017f));
  q = V::fmadd(q, t, V::broadcast(0.28242266178131104f));
  q = V::fmadd(q, t, V::broadcast(0.28207242488861084f));
  q = V::fmadd(q, t, V::broadcast(6.644845029768476e-07f));
  // A NaN x fails the comparison and takes the tail's pieces, NaN too.
  return {V::less(a, V::broadcast(0.84f)), V::fmadd(V::mul(z, p), half, half), V::mul(q, half), gaussian};
}

// GELU's value, x Phi(x), and its derivative, Phi(x) + x phi(x) (which near its zero at x = -0.75 is a
// difference of near-equal terms: there it is accurate in absolute, not relative, terms, as the
// reference's double arithmetic rounded to float is not).
template <class V>
typename V::Reg gelu(typename V::Reg x) {
  using Reg = typename V::Reg;
  const NormalCdf<V> n = normal_cdf<V>(x);
  // Below zero x erfc(|z|) / 2, x into half_q first; above, x (1 - erfc(|z|) / 2), whose Phi is near 1 (and
  // +infinity times 1 is +infinity, as in the reference).
  const Reg below = V::mul(V::mul(x, n.half_q), n.gaussian);
  const Reg above = V::mul(x, V::sub(V::broadcast(1.0f), V::mul(n.half_q, n.gaussian)));
  const Reg tail = V::select(V::less(x, V::zero()), below, above);
  return V::select(n.near_zero, V::mul(x, n.near_zero_cdf), tail);
}
template <class V>
typename V::Reg gelu_derivative(typename V::Reg x) {
  const NormalCdf<V> n = normal_cdf<V>(x);
  return V::fmadd(x, n.density(), n.cdf(x));
}

// SiLU (Swish): x sigmoid(x), within about 3 ulps. With e = exp(-|x|): x / (1 + e) at and above zero, and
// x e / (1 + e) below, x multiplied into e's p before the scaling by 2^n, so that where e is subnormal or
// zero (x below -87.3) x e, still normal down to x = -91.8, keeps its bits. Its derivative s (1 + x (1 -
// s)), s = sigmoid(x): a difference of near-equal terms near its zero at x = -1.28, accurate there in
// absolute terms.
template <class V>
typename V::Reg silu(typename V::Reg x) {
  using Reg = typename V::Reg;
  const ExpParts<V> e = exp_parts<V>(V::neg(V::abs(x)));
  const Reg denominator = V::add(V::broadcast(1.0f), V::times_power_of_two(e.p, e.n));
  Reg below = V::div(V::times_power_of_two(V::mul(x, e.p), e.n), denominator);
  // Below -104, where exp_parts clamped its argument, x e underflows: x times 0, as the reference has it
  // (-0, and NaN at -infinity).
  below = V::select(V::less(x, V::broadcast(-104.0f)), V::mul(x, V::zero()), below);
  return V::select(V::less(x, V::zero()), below, V::div(x, denominator));
}
template <class V>
typename V::Reg silu_derivative(typename V::Reg x) {
  const typename V::Reg one = V::broadcast(1.0f), s = sigmoid<V>(x);
  return V::mul(s, V::fmadd(x, V::sub(one, s), one));
}

}  // namespace kiln::kernels::simd
