// The single dispatch point for the shortcut (subsample_pad.hpp): a CUDA device runs cuda_subsample_pad.cu;
// float and bfloat16 run the AVX-512 or AVX2 kernels where cpu_level() allows; double and the Reference
// level run the reference.
#include <type_traits>

#include "core/profiler.hpp"
#include "kernels/cpu_level.hpp"
#include "kernels/shortcut/subsample_pad.hpp"

namespace kiln::kernels {
namespace {

template <typename T>
constexpr bool kVectorized = std::is_same_v<T, float> || std::is_same_v<T, bfloat16>;

}  // namespace

template <typename T>
void subsample_pad_forward(Device device, const SubsamplePadGeometry& g, const T* x, T* y) {
  profiler::Scope profile("subsample_pad_forward", device, dtype_of_v<T>);
#ifdef KILN_WITH_CUDA
  if (device.is_cuda()) return cuda::subsample_pad_forward(g, x, y);
#endif
  require_cpu(device, "subsample_pad_forward");
  if constexpr (kVectorized<T>) {
    if (cpu_level() == CpuLevel::Avx512) return avx512::subsample_pad_forward(g, x, y);
    if (cpu_level() == CpuLevel::Avx2) return avx2::subsample_pad_forward(g, x, y);
  }
  reference::subsample_pad_forward(g, x, y);
}

template <typename T>
void subsample_pad_backward(Device device, const SubsamplePadGeometry& g, const T* gy, T* gx,
                            bool accumulate) {
  profiler::Scope profile("subsample_pad_backward", device, dtype_of_v<T>);
  if (profile.measuring() && accumulate) profile.set_detail("accumulating");
#ifdef KILN_WITH_CUDA
  if (device.is_cuda()) return cuda::subsample_pad_backward(g, gy, gx, accumulate);
#endif
  require_cpu(device, "subsample_pad_backward");
  if constexpr (kVectorized<T>) {
    if (cpu_level() == CpuLevel::Avx512) return avx512::subsample_pad_backward(g, gy, gx, accumulate);
    if (cpu_level() == CpuLevel::Avx2) return avx2::subsample_pad_backward(g, gy, gx, accumulate);
  }
  reference::subsample_pad_backward(g, gy, gx, accumulate);
}

template void subsample_pad_forward<float>(Device, const SubsamplePadGeometry&, const float*, float*);
template void subsample_pad_forward<double>(Device, const SubsamplePadGeometry&, const double*, double*);
template void subsample_pad_forward<bfloat16>(Device, const SubsamplePadGeometry&, const bfloat16*,
                                              bfloat16*);
template void subsample_pad_backward<float>(Device, const SubsamplePadGeometry&, const float*, float*, bool);
template void subsample_pad_backward<double>(Device, const SubsamplePadGeometry&, const double*, double*,
                                             bool);
template void subsample_pad_backward<bfloat16>(Device, const SubsamplePadGeometry&, const bfloat16*,
                                               bfloat16*, bool);

}  // namespace kiln::kernels
