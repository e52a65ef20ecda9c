// The single dispatch point for the pooling family: every caller goes through these functions, and only
// here is an implementation chosen. float and bfloat16 run the AVX-512 / AVX2 kernels when cpu_level()
// allows (threaded; vectorized for the common geometries, in either layout); double and the Reference level
// run the reference kernels. A CUDA device runs the CUDA kernels (cuda_pool.cu), float, double and
// bfloat16, in either layout.
#include <type_traits>

#include "core/profiler.hpp"
#include "kernels/cpu_level.hpp"
#include "kernels/pool/pool.hpp"

namespace kiln::kernels {
namespace {

// The storage types the vectorized kernels take.
template <typename T>
constexpr bool vectorized_type = std::is_same_v<T, float> || std::is_same_v<T, bfloat16>;

}  // namespace

template <typename T>
void max_pool2d_forward(Device device, const Pool2dGeometry& g, const T* x, T* y, std::int32_t* argmax) {
  profiler::Scope profile("max_pool2d_forward", device, dtype_of_v<T>);
#ifdef KILN_WITH_CUDA
  if (device.is_cuda()) return cuda::max_pool2d_forward(g, x, y, argmax);
#endif
  require_cpu(device, "max_pool2d_forward");
  if constexpr (vectorized_type<T>) {
    switch (cpu_level()) {
      case CpuLevel::Avx512:
        return avx512::max_pool2d_forward(g, x, y, argmax);
      case CpuLevel::Avx2:
        return avx2::max_pool2d_forward(g, x, y, argmax);
      case CpuLevel::Reference:
        break;
    }
  }
  reference::max_pool2d_forward(g, x, y, argmax);
}

template <typename T>
void max_pool2d_backward(Device device, const Pool2dGeometry& g, const T* gy, const std::int32_t* argmax,
                         T* gx) {
  profiler::Scope profile("max_pool2d_backward", device, dtype_of_v<T>);
#ifdef KILN_WITH_CUDA
  if (device.is_cuda()) return cuda::max_pool2d_backward(g, gy, argmax, gx);
#endif
  require_cpu(device, "max_pool2d_backward");
  if constexpr (vectorized_type<T>) {
    switch (cpu_level()) {
      case CpuLevel::Avx512:
        return avx512::max_pool2d_backward(g, gy, argmax, gx);
      case CpuLevel::Avx2:
        return avx2::max_pool2d_backward(g, gy, argmax, gx);
      case CpuLevel::Reference:
        break;
    }
  }
  reference::max_pool2d_backward(g, gy, argmax, gx);
}

template <typename T>
void avg_pool2d_forward(Device device, const Pool2dGeometry& g, const T* x, T* y) {
  profiler::Scope profile("avg_pool2d_forward", device, dtype_of_v<T>);
#ifdef KILN_WITH_CUDA
  if (device.is_cuda()) return cuda::avg_pool2d_forward(g, x, y);
#endif
  require_cpu(device, "avg_pool2d_forward");
  if constexpr (vectorized_type<T>) {
    switch (cpu_level()) {
      case CpuLevel::Avx512:
        return avx512::avg_pool2d_forward(g, x, y);
      case CpuLevel::Avx2:
        return avx2::avg_pool2d_forward(g, x, y);
      case CpuLevel::Reference:
        break;
    }
  }
  reference::avg_pool2d_forward(g, x, y);
}

template <typename T>
void avg_pool2d_backward(Device device, const Pool2dGeometry& g, const T* gy, T* gx) {
  profiler::Scope profile("avg_pool2d_backward", device, dtype_of_v<T>);
#ifdef KILN_WITH_CUDA
  if (device.is_cuda()) return cuda::avg_pool2d_backward(g, gy, gx);
#endif
  require_cpu(device, "avg_pool2d_backward");
  if constexpr (vectorized_type<T>) {
    switch (cpu_level()) {
      case CpuLevel::Avx512:
        return avx512::avg_pool2d_backward(g, gy, gx);
      case CpuLevel::Avx2:
        return avx2::avg_pool2d_backward(g, gy, gx);
      case CpuLevel::Reference:
        break;
    }
  }
  reference::avg_pool2d_backward(g, gy, gx);
}

template <typename T>
void global_avg_pool2d_forward(Device device, const GlobalPool2dGeometry& g, const T* x, T* y) {
  profiler::Scope profile("global_avg_pool2d_forward", device, dtype_of_v<T>);
#ifdef KILN_WITH_CUDA
  if (device.is_cuda()) return cuda::global_avg_pool2d_forward(g, x, y);
#endif
  require_cpu(device, "global_avg_pool2d_forward");
  if constexpr (vectorized_type<T>) {
    switch (cpu_level()) {
      case CpuLevel::Avx512:
        return avx512::global_avg_pool2d_forward(g, x, y);
      case CpuLevel::Avx2:
        return avx2::global_avg_pool2d_forward(g, x, y);
      case CpuLevel::Reference:
        break;
    }
  }
  reference::global_avg_pool2d_forward(g, x, y);
}

template <typename T>
void global_avg_pool2d_backward(Device device, const GlobalPool2dGeometry& g, const T* gy, T* gx,
                                bool accumulate) {
  profiler::Scope profile("global_avg_pool2d_backward", device, dtype_of_v<T>);
  if (profile.measuring() && accumulate) profile.set_detail("accumulating");
#ifdef KILN_WITH_CUDA
  if (device.is_cuda()) return cuda::global_avg_pool2d_backward(g, gy, gx, accumulate);
#endif
  require_cpu(device, "global_avg_pool2d_backward");
  if constexpr (vectorized_type<T>) {
    switch (cpu_level()) {
      case CpuLevel::Avx512:
        return avx512::global_avg_pool2d_backward(g, gy, gx, accumulate);
      case CpuLevel::Avx2:
        return avx2::global_avg_pool2d_backward(g, gy, gx, accumulate);
      case CpuLevel::Reference:
        break;
    }
  }
  reference::global_avg_pool2d_backward(g, gy, gx, accumulate);
}

template void max_pool2d_forward<float>(Device, const Pool2dGeometry&, const float*, float*, std::int32_t*);
template void max_pool2d_backward<float>(Device, const Pool2dGeometry&, const float*, const std::int32_t*,
                                         float*);
template void avg_pool2d_forward<float>(Device, const Pool2dGeometry&, const float*, float*);
template void avg_pool2d_backward<float>(Device, const Pool2dGeometry&, const float*, float*);
template void global_avg_pool2d_forward<float>(Device, const GlobalPool2dGeometry&, const float*, float*);
template void global_avg_pool2d_backward<float>(Device, const GlobalPool2dGeometry&, const float*, float*,
                                                bool);

template void max_pool2d_forward<double>(Device, const Pool2dGeometry&, const double*, double*,
                                         std::int32_t*);
template void max_pool2d_backward<double>(Device, const Pool2dGeometry&, const double*, const std::int32_t*,
                                          double*);
template void avg_pool2d_forward<double>(Device, const Pool2dGeometry&, const double*, double*);
template void avg_pool2d_backward<double>(Device, const Pool2dGeometry&, const double*, double*);
template void global_avg_pool2d_forward<double>(Device, const GlobalPool2dGeometry&, const double*, double*);
template void global_avg_pool2d_backward<double>(Device, const GlobalPool2dGeometry&, const double*, double*,
                                                 bool);

template void max_pool2d_forward<bfloat16>(Device, const Pool2dGeometry&, const bfloat16*, bfloat16*,
                                           std::int32_t*);
template void max_pool2d_backward<bfloat16>(Device, const Pool2dGeometry&, const bfloat16*,
                                            const std::int32_t*, bfloat16*);
template void avg_pool2d_forward<bfloat16>(Device, const Pool2dGeometry&, const bfloat16*, bfloat16*);
template void avg_pool2d_backward<bfloat16>(Device, const Pool2dGeometry&, const bfloat16*, bfloat16*);
template void global_avg_pool2d_forward<bfloat16>(Device, const GlobalPool2dGeometry&, const bfloat16*,
                                                  bfloat16*);
template void global_avg_pool2d_backward<bfloat16>(Device, const GlobalPool2dGeometry&, const bfloat16*,
                                                   bfloat16*, bool);

}  // namespace kiln::kernels
