// The single dispatch point for the conv2d family: every caller (core/'s derivative rules, benchmarks)
// goes through these functions, and this is the only file that chooses an implementation. Today each
// one runs the reference kernel on the CPU. AVX2 and AVX-512 versions plug in here, chosen by
// `cpu_level()`, and CUDA versions plug in by branching on `device` before `require_cpu`.
#include "kernels/conv2d/conv2d.hpp"
#include "kernels/cpu_level.hpp"

namespace kiln::kernels {

template <typename T>
void conv2d_forward(Device device, const Conv2dGeometry& g, const T* x, const T* w, const T* bias, T* y) {
  require_cpu(device, "conv2d_forward");
  reference::conv2d_forward(g, x, w, bias, y);
}

template <typename T>
void conv2d_backward_data(Device device, const Conv2dGeometry& g, const T* gy, const T* w, T* gx) {
  require_cpu(device, "conv2d_backward_data");
  reference::conv2d_backward_data(g, gy, w, gx);
}

template <typename T>
void conv2d_backward_weight(Device device, const Conv2dGeometry& g, const T* gy, const T* x, T* gw) {
  require_cpu(device, "conv2d_backward_weight");
  reference::conv2d_backward_weight(g, gy, x, gw);
}

template <typename T>
void conv2d_backward_bias(Device device, const Conv2dGeometry& g, const T* gy, T* gb) {
  require_cpu(device, "conv2d_backward_bias");
  reference::conv2d_backward_bias(g, gy, gb);
}

template void conv2d_forward<float>(Device, const Conv2dGeometry&, const float*, const float*, const float*,
                                    float*);
template void conv2d_backward_data<float>(Device, const Conv2dGeometry&, const float*, const float*, float*);
template void conv2d_backward_weight<float>(Device, const Conv2dGeometry&, const float*, const float*,
                                            float*);
template void conv2d_backward_bias<float>(Device, const Conv2dGeometry&, const float*, float*);

template void conv2d_forward<double>(Device, const Conv2dGeometry&, const double*, const double*,
                                     const double*, double*);
template void conv2d_backward_data<double>(Device, const Conv2dGeometry&, const double*, const double*,
                                           double*);
template void conv2d_backward_weight<double>(Device, const Conv2dGeometry&, const double*, const double*,
                                             double*);
template void conv2d_backward_bias<double>(Device, const Conv2dGeometry&, const double*, double*);

}  // namespace kiln::kernels
