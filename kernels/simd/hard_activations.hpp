// MobileNetV3's hard activations on float lanes, written once over a vector trait V (simd::FloatVector512 or
// FloatVector256): what the vectorized elementwise kernels run for Hardsigmoid and Hardswish, and what batch
// norm's fused hard swish runs (kernels/batchnorm), so the two give the same bits on the same floats.
//
// In the elementwise reference's order of operations, each operation rounded to float where the reference
// rounds once from double: hard_sigmoid(x) = min(max(x + 3, 0), 6) / 6 within an ulp of it (its gradient,
// gy / 6, on it), hard_swish(x) = x * hard_sigmoid(x) and its gradient within two
// (tests/kernels/elementwise_fast_test.cpp measures every 1024th float). PyTorch's order for hard swish,
// x * relu6(x + 3) / 6, would overflow to infinity for x above 2^125, where x * hard_sigmoid(x) is x. Max and
// min return their second operand when either is NaN, so a NaN x passes through.
#pragma once

#include <cmath>

namespace kiln::kernels::simd {

template <class V>
typename V::Reg hard_sigmoid(typename V::Reg v) {
  const typename V::Reg three = V::broadcast(3.0f), six = V::broadcast(6.0f);
  return V::div(V::min(six, V::max(V::zero(), V::add(v, three))), six);
}
template <class V>
typename V::Reg hard_swish(typename V::Reg v) {
  return V::mul(v, hard_sigmoid<V>(v));
}
// gy / 6 strictly inside (-3, 3), else gy * 0 (a signed zero, or NaN for an infinite gy, as the reference's
// multiplication by 0.0 gives).
template <class V>
typename V::Reg hard_sigmoid_gradient(typename V::Reg v, typename V::Reg g) {
  const typename V::Reg three = V::broadcast(3.0f), six = V::broadcast(6.0f);
  const auto inside = V::both(V::greater(v, V::neg(three)), V::less(v, three));
  return V::select(inside, V::div(g, six), V::mul(g, V::zero()));
}
// gy * (2x + 3) / 6 strictly inside (-3, 3); gy * 0 at and below -3, gy at and above 3.
template <class V>
typename V::Reg hard_swish_gradient(typename V::Reg v, typename V::Reg g) {
  const typename V::Reg three = V::broadcast(3.0f), six = V::broadcast(6.0f);
  const typename V::Reg slope = V::div(V::fmadd(V::broadcast(2.0f), v, three), six);
  const typename V::Reg above = V::select(V::less_equal(three, v), V::broadcast(1.0f), slope);
  return V::mul(g, V::select(V::less_equal(v, V::neg(three)), V::zero(), above));
}
// The same on one float, operation for operation (std::fma rounds once, as the vector fmadd does): for the
// scalar tails of kernels that run the vector form on the rest.
inline float hard_swish_gradient(float v, float g) {
  const float slope = std::fma(2.0f, v, 3.0f) / 6.0f;
  return g * (v <= -3.0f ? 0.0f : 3.0f <= v ? 1.0f : slope);
}

}  // namespace kiln::kernels::simd
