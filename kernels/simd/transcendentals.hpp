// exp, sigmoid and tanh on float lanes, written once over a vector trait V (simd::FloatVector512 or
// FloatVector256): what the vectorized elementwise kernels run for the Sigmoid and Tanh activations, whose
// reference computes each value in double and rounds once. These are not that: each is within a few float
// ulps of it (tests/kernels/elementwise_fast_test.cpp measures the worst case over a sweep of every float),
// in exchange for a loop of fmas where the reference calls the C library's double exp or tanh for each value
// (a [128, 144, 32, 32] sigmoid 120 ms on two Zen 5 cores, tanh 212 ms, against 8 ms for a ReLU).
//
// NaN passes through every function here, and infinities give their limits.
#pragma once

namespace kiln::kernels::simd {

// exp(x), within about 1 ulp. x = n ln2 + r with n = round(x / ln2), so |r| <= ln2 / 2, and exp(x) =
// 2^n exp(r). r is taken in two fmas against ln2 split into its float rounding and the rest, so it is exact
// to about 2^-40 even for n near 128. exp(r) is its Taylor series to r^7 / 7!: the first term left out,
// r^8 / 8! at |r| = ln2 / 2, is 5.6e-9 of exp(r), a tenth of a float ulp; Horner's rule in fmas adds about
// half an ulp. x is clamped to [-104, 89] first: exp underflows to zero below about -103.3 and overflows
// past 88.8, so the clamp changes no result, and keeps n where times_power_of_two is defined. (min and max
// return their second operand when either is NaN, so a NaN x stays NaN through the clamp and the rest.)
template <class V>
typename V::Reg exp(typename V::Reg x) {
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
  return V::times_power_of_two(p, n);
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

}  // namespace kiln::kernels::simd
