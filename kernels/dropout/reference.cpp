// Reference inverted dropout (see dropout.hpp): one Philox uniform per element, compared with p.
#include <cstdint>

#include "kernels/dropout/dropout.hpp"
#include "kernels/random/philox.hpp"

namespace kiln::kernels::reference {

// x, y, mask [n]
//   u_i = philox_uniform(state, i),  mask_i = (u_i >= p) ? 1 / (1 - p) : 0,  y_i = x_i * mask_i
// Element i's draw depends only on (state, i), never on the loop order, so any faster version that
// computes element i from the same (state, i) produces exactly the same mask.
template <typename T>
void dropout_forward(std::int64_t n, T p, const PhiloxState& state, const T* x, T* y, T* mask) {
  // When p == 1 no element is kept (u < 1 always), so the scale is never used; avoid dividing by zero.
  const T keep_scale = p < T(1) ? T(1) / (T(1) - p) : T(0);
  for (std::int64_t i = 0; i < n; ++i) {
    const T u = philox_uniform<T>(state, static_cast<std::uint64_t>(i));
    mask[i] = u >= p ? keep_scale : T(0);
    y[i] = x[i] * mask[i];
  }
}

template void dropout_forward<float>(std::int64_t, float, const PhiloxState&, const float*, float*, float*);
template void dropout_forward<double>(std::int64_t, double, const PhiloxState&, const double*, double*,
                                      double*);

}  // namespace kiln::kernels::reference
