// The single dispatch point for the channel scale (channel_scale.hpp): a CUDA device runs
// cuda_channel_scale.cu; float and bfloat16 run the AVX-512 or AVX2 kernels where cpu_level() allows; double
// and the Reference level run the reference.
#include <string>
#include <type_traits>

#include "core/profiler.hpp"
#include "kernels/channel_scale/channel_scale.hpp"
#include "kernels/cpu_level.hpp"

namespace kiln::kernels {
namespace {

template <typename T>
constexpr bool kVectorized = std::is_same_v<T, float> || std::is_same_v<T, bfloat16>;

// The geometry as the profiler's detail: "240 channels @8x8 n128" (" channels-last" when so).
std::string profile_label(const ChannelScaleGeometry& g) {
  return std::to_string(g.channels) + " channels @" + std::to_string(g.height) + "x" +
         std::to_string(g.width) + " n" + std::to_string(g.batch) + (g.channels_last ? " channels-last" : "");
}

}  // namespace

template <typename T>
void channel_scale_forward(Device device, const ChannelScaleGeometry& g, const T* x, const T* s, T* y) {
  profiler::Scope profile("channel_scale_forward", device, dtype_of_v<T>);
  if (profile.measuring()) profile.set_detail(profile_label(g));
#ifdef KILN_WITH_CUDA
  if (device.is_cuda()) return cuda::channel_scale_forward(g, x, s, y);
#endif
  require_cpu(device, "channel_scale_forward");
  if constexpr (kVectorized<T>) {
    if (cpu_level() == CpuLevel::Avx512) return avx512::channel_scale_forward(g, x, s, y);
    if (cpu_level() == CpuLevel::Avx2) return avx2::channel_scale_forward(g, x, s, y);
  }
  reference::channel_scale_forward(g, x, s, y);
}

template <typename T>
void channel_scale_backward(Device device, const ChannelScaleGeometry& g, const T* x, const T* s, const T* gy,
                            T* gx, T* gs) {
  profiler::Scope profile("channel_scale_backward", device, dtype_of_v<T>);
  if (profile.measuring()) profile.set_detail(profile_label(g));
#ifdef KILN_WITH_CUDA
  if (device.is_cuda()) return cuda::channel_scale_backward(g, x, s, gy, gx, gs);
#endif
  require_cpu(device, "channel_scale_backward");
  if constexpr (kVectorized<T>) {
    if (cpu_level() == CpuLevel::Avx512) return avx512::channel_scale_backward(g, x, s, gy, gx, gs);
    if (cpu_level() == CpuLevel::Avx2) return avx2::channel_scale_backward(g, x, s, gy, gx, gs);
  }
  reference::channel_scale_backward(g, x, s, gy, gx, gs);
}

#define KILN_INSTANTIATE(T)                                                                                  \
  template void channel_scale_forward<T>(Device, const ChannelScaleGeometry&, const T*, const T*, T*);       \
  template void channel_scale_backward<T>(Device, const ChannelScaleGeometry&, const T*, const T*, const T*, \
                                          T*, T*);
KILN_INSTANTIATE(float)
KILN_INSTANTIATE(double)
KILN_INSTANTIATE(bfloat16)
#undef KILN_INSTANTIATE

}  // namespace kiln::kernels
