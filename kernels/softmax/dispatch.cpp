// The single dispatch point for softmax and log-softmax: every caller comes through here, and this is the
// only place that picks an implementation. float runs the AVX-512 or AVX2 kernels when cpu_level() allows;
// double (gradient checks only) and the Reference level run the reference kernels. A CUDA device runs
// the CUDA kernels (cuda_softmax.cu), float and double, in a build with CUDA.
#include <type_traits>

#include "core/profiler.hpp"
#include "kernels/cpu_level.hpp"
#include "kernels/softmax/softmax.hpp"

namespace kiln::kernels {

template <typename T>
void softmax_forward(Device device, const SoftmaxGeometry& g, const T* x, T* y) {
  profiler::Scope profile("softmax_forward", device, dtype_of_v<T>);
#ifdef KILN_WITH_CUDA
  if (device.is_cuda()) return cuda::softmax_forward(g, x, y);
#endif
  require_cpu(device, "softmax_forward");
  if constexpr (std::is_same_v<T, float>) {
    switch (cpu_level()) {
      case CpuLevel::Avx512:
        return avx512::softmax_forward(g, x, y);
      case CpuLevel::Avx2:
        return avx2::softmax_forward(g, x, y);
      case CpuLevel::Reference:
        break;
    }
  }
  reference::softmax_forward(g, x, y);
}

template <typename T>
void softmax_backward(Device device, const SoftmaxGeometry& g, const T* y, const T* gy, T* gx) {
  profiler::Scope profile("softmax_backward", device, dtype_of_v<T>);
#ifdef KILN_WITH_CUDA
  if (device.is_cuda()) return cuda::softmax_backward(g, y, gy, gx);
#endif
  require_cpu(device, "softmax_backward");
  if constexpr (std::is_same_v<T, float>) {
    switch (cpu_level()) {
      case CpuLevel::Avx512:
        return avx512::softmax_backward(g, y, gy, gx);
      case CpuLevel::Avx2:
        return avx2::softmax_backward(g, y, gy, gx);
      case CpuLevel::Reference:
        break;
    }
  }
  reference::softmax_backward(g, y, gy, gx);
}

template <typename T>
void log_softmax_forward(Device device, const SoftmaxGeometry& g, const T* x, T* y) {
  profiler::Scope profile("log_softmax_forward", device, dtype_of_v<T>);
#ifdef KILN_WITH_CUDA
  if (device.is_cuda()) return cuda::log_softmax_forward(g, x, y);
#endif
  require_cpu(device, "log_softmax_forward");
  if constexpr (std::is_same_v<T, float>) {
    switch (cpu_level()) {
      case CpuLevel::Avx512:
        return avx512::log_softmax_forward(g, x, y);
      case CpuLevel::Avx2:
        return avx2::log_softmax_forward(g, x, y);
      case CpuLevel::Reference:
        break;
    }
  }
  reference::log_softmax_forward(g, x, y);
}

template <typename T>
void log_softmax_backward(Device device, const SoftmaxGeometry& g, const T* y, const T* gy, T* gx) {
  profiler::Scope profile("log_softmax_backward", device, dtype_of_v<T>);
#ifdef KILN_WITH_CUDA
  if (device.is_cuda()) return cuda::log_softmax_backward(g, y, gy, gx);
#endif
  require_cpu(device, "log_softmax_backward");
  if constexpr (std::is_same_v<T, float>) {
    switch (cpu_level()) {
      case CpuLevel::Avx512:
        return avx512::log_softmax_backward(g, y, gy, gx);
      case CpuLevel::Avx2:
        return avx2::log_softmax_backward(g, y, gy, gx);
      case CpuLevel::Reference:
        break;
    }
  }
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
