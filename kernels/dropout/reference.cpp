// Reference inverted dropout (see dropout.hpp): one Philox uniform per element, compared with p.
#include <cstdint>

#include "core/bfloat16.hpp"
#include "kernels/dropout/dropout.hpp"
#include "kernels/random/philox.hpp"

namespace kiln::kernels::reference {

// x, y, mask [n]
//   u_i = philox_uniform(state, i),  mask_i = (u_i >= p) ? 1 / (1 - p) : 0,  y_i = x_i * mask_i
// Element i's draw depends only on (state, i), never on the loop order, so any faster version that
// computes element i from the same (state, i) produces exactly the same mask. p, u_i and the scale are
// opmath_t<T> (float for bfloat16). y_i is x_i times the stored mask_i, the product computed in double
// (exact) and rounded once to T: for float that is float's own product, and for bfloat16 y is exactly what
// the backward's gy * mask differentiates.
template <typename T>
void dropout_forward(std::int64_t n, opmath_t<T> p, const PhiloxState& state, const T* x, T* y, T* mask) {
  using Scalar = opmath_t<T>;
  // When p == 1 no element is kept (u < 1 always), so the scale is never used; avoid dividing by zero.
  const Scalar keep_scale = p < Scalar(1) ? Scalar(1) / (Scalar(1) - p) : Scalar(0);
  for (std::int64_t i = 0; i < n; ++i) {
    const Scalar u = philox_uniform<Scalar>(state, static_cast<std::uint64_t>(i));
    const T kept = static_cast<T>(u >= p ? keep_scale : Scalar(0));
    const double product = static_cast<double>(x[i]) * static_cast<double>(kept);  // before y may overwrite x
    mask[i] = kept;
    y[i] = static_cast<T>(product);
  }
}

template void dropout_forward<float>(std::int64_t, float, const PhiloxState&, const float*, float*, float*);
template void dropout_forward<double>(std::int64_t, double, const PhiloxState&, const double*, double*,
                                      double*);
template void dropout_forward<bfloat16>(std::int64_t, float, const PhiloxState&, const bfloat16*, bfloat16*,
                                        bfloat16*);

}  // namespace kiln::kernels::reference
