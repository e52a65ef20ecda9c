// The single dispatch point for the pooling family: every caller goes through these functions, and only
// here is an implementation chosen. Today every CPU call runs the reference kernels; AVX2 / AVX-512
// versions (picked by cpu_level()) and CUDA versions (picked by device) plug in here when they exist.
#include "kernels/cpu_level.hpp"
#include "kernels/pool/pool.hpp"

namespace kiln::kernels {

template <typename T>
void max_pool2d_forward(Device device, const Pool2dGeometry& g, const T* x, T* y, std::int64_t* argmax) {
  require_cpu(device, "max_pool2d_forward");
  reference::max_pool2d_forward(g, x, y, argmax);
}

template <typename T>
void max_pool2d_backward(Device device, const Pool2dGeometry& g, const T* gy, const std::int64_t* argmax,
                         T* gx) {
  require_cpu(device, "max_pool2d_backward");
  reference::max_pool2d_backward(g, gy, argmax, gx);
}

template <typename T>
void avg_pool2d_forward(Device device, const Pool2dGeometry& g, const T* x, T* y) {
  require_cpu(device, "avg_pool2d_forward");
  reference::avg_pool2d_forward(g, x, y);
}

template <typename T>
void avg_pool2d_backward(Device device, const Pool2dGeometry& g, const T* gy, T* gx) {
  require_cpu(device, "avg_pool2d_backward");
  reference::avg_pool2d_backward(g, gy, gx);
}

template <typename T>
void global_avg_pool2d_forward(Device device, std::int64_t planes, std::int64_t plane_size, const T* x,
                               T* y) {
  require_cpu(device, "global_avg_pool2d_forward");
  reference::global_avg_pool2d_forward(planes, plane_size, x, y);
}

template <typename T>
void global_avg_pool2d_backward(Device device, std::int64_t planes, std::int64_t plane_size, const T* gy,
                                T* gx) {
  require_cpu(device, "global_avg_pool2d_backward");
  reference::global_avg_pool2d_backward(planes, plane_size, gy, gx);
}

template void max_pool2d_forward<float>(Device, const Pool2dGeometry&, const float*, float*, std::int64_t*);
template void max_pool2d_backward<float>(Device, const Pool2dGeometry&, const float*, const std::int64_t*,
                                         float*);
template void avg_pool2d_forward<float>(Device, const Pool2dGeometry&, const float*, float*);
template void avg_pool2d_backward<float>(Device, const Pool2dGeometry&, const float*, float*);
template void global_avg_pool2d_forward<float>(Device, std::int64_t, std::int64_t, const float*, float*);
template void global_avg_pool2d_backward<float>(Device, std::int64_t, std::int64_t, const float*, float*);

template void max_pool2d_forward<double>(Device, const Pool2dGeometry&, const double*, double*,
                                         std::int64_t*);
template void max_pool2d_backward<double>(Device, const Pool2dGeometry&, const double*, const std::int64_t*,
                                          double*);
template void avg_pool2d_forward<double>(Device, const Pool2dGeometry&, const double*, double*);
template void avg_pool2d_backward<double>(Device, const Pool2dGeometry&, const double*, double*);
template void global_avg_pool2d_forward<double>(Device, std::int64_t, std::int64_t, const double*, double*);
template void global_avg_pool2d_backward<double>(Device, std::int64_t, std::int64_t, const double*, double*);

}  // namespace kiln::kernels
