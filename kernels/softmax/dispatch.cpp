// The single dispatch point for softmax and log-softmax: every caller comes through here, and this is the
// only place that picks an implementation. Today that is always the reference kernel on the CPU; AVX2 and
// AVX-512 versions (chosen by cpu_level()) and CUDA versions (chosen by the device) plug in here.
#include "kernels/cpu_level.hpp"
#include "kernels/softmax/softmax.hpp"

namespace kiln::kernels {

template <typename T>
void softmax_forward(Device device, const SoftmaxGeometry& g, const T* x, T* y) {
  require_cpu(device, "softmax_forward");
  reference::softmax_forward(g, x, y);
}

template <typename T>
void softmax_backward(Device device, const SoftmaxGeometry& g, const T* y, const T* gy, T* gx) {
  require_cpu(device, "softmax_backward");
  reference::softmax_backward(g, y, gy, gx);
}

template <typename T>
void log_softmax_forward(Device device, const SoftmaxGeometry& g, const T* x, T* y) {
  require_cpu(device, "log_softmax_forward");
  reference::log_softmax_forward(g, x, y);
}

template <typename T>
void log_softmax_backward(Device device, const SoftmaxGeometry& g, const T* y, const T* gy, T* gx) {
  require_cpu(device, "log_softmax_backward");
  reference::log_softmax_backward(g, y, gy, gx);
}

template void softmax_forward<float>(Device, const SoftmaxGeometry&, const float*, float*);
template void softmax_forward<double>(Device, const SoftmaxGeometry&, const double*, double*);
template void softmax_backward<float>(Device, const SoftmaxGeometry&, const float*, const float*, float*);
template void softmax_backward<double>(Device, const SoftmaxGeometry&, const double*, const double*, double*);
template void log_softmax_forward<float>(Device, const SoftmaxGeometry&, const float*, float*);
template void log_softmax_forward<double>(Device, const SoftmaxGeometry&, const double*, double*);
template void log_softmax_backward<float>(Device, const SoftmaxGeometry&, const float*, const float*, float*);
template void log_softmax_backward<double>(Device, const SoftmaxGeometry&, const double*, const double*,
                                           double*);

}  // namespace kiln::kernels
