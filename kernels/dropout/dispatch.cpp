// The single dispatch point for dropout: every caller comes through here, and this is the only place that
// picks an implementation. Today that is always the reference kernel on the CPU; AVX2 and AVX-512
// versions (chosen by cpu_level()) and CUDA versions (chosen by the device) plug in here. Any of them must
// draw element i from philox_uniform(state, i), so every version produces the same mask.
#include "kernels/cpu_level.hpp"
#include "kernels/dropout/dropout.hpp"

namespace kiln::kernels {

template <typename T>
void dropout_forward(Device device, std::int64_t n, T p, const PhiloxState& state, const T* x, T* y,
                     T* mask) {
  require_cpu(device, "dropout_forward");
  reference::dropout_forward(n, p, state, x, y, mask);
}

template void dropout_forward<float>(Device, std::int64_t, float, const PhiloxState&, const float*, float*,
                                     float*);
template void dropout_forward<double>(Device, std::int64_t, double, const PhiloxState&, const double*,
                                      double*, double*);

}  // namespace kiln::kernels
