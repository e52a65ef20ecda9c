// The pieces both vectorized batch-norm walks share (vectorized_batchnorm.hpp over NCHW planes,
// channels_last_batchnorm.hpp over channels-last rows), written once over a vector trait V and the
// activations' storage type T (float, or bfloat16: loaded into float lanes, rounded once when stored).
#pragma once

#include <cstdint>

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

// gy * (y > 0 ? 1 : 0): relu's rule from its output, multiplied in as the elementwise kernels do, so a zero
// gradient keeps its sign and an infinite gy times 0 is NaN, exactly as there.
template <class V>
typename V::Reg relu_gradient(typename V::Reg gy, typename V::Reg y) {
  return V::mul(gy, V::select(V::greater(y, V::zero()), V::broadcast(1.0f), V::zero()));
}

// gy at [i, i + lanes), times relu's derivative at y when y is given (the fused backward). T is the
// activations' storage, float or bfloat16 (the trait widens it into float lanes).
template <class V, class T>
typename V::Reg load_gradient(const T* gy, const T* y, std::int64_t i, std::int64_t lanes) {
  const typename V::Reg g = V::load_partial(gy + i, lanes);
  return y ? relu_gradient<V>(g, V::load_partial(y + i, lanes)) : g;
}

}  // namespace
}  // namespace kiln::kernels::vectorized
