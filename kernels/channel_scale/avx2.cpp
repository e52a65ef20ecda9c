// The AVX2 channel-scale kernels: vectorized_channel_scale.hpp instantiated with simd::FloatVector256.
#include "kernels/channel_scale/vectorized_channel_scale.hpp"
#include "kernels/simd/float_vector_avx2.hpp"

namespace kiln::kernels::avx2 {

template <typename T>
void channel_scale_forward(const ChannelScaleGeometry& g, const T* x, const T* s, T* y) {
  vectorized::channel_scale_forward<simd::FloatVector256>(g, x, s, y);
}
template <typename T>
void channel_scale_backward(const ChannelScaleGeometry& g, const T* x, const T* s, const T* gy, T* gx,
                            T* gs) {
  vectorized::channel_scale_backward<simd::FloatVector256>(g, x, s, gy, gx, gs);
}

#define KILN_INSTANTIATE(T)                                                                    \
  template void channel_scale_forward<T>(const ChannelScaleGeometry&, const T*, const T*, T*); \
  template void channel_scale_backward<T>(const ChannelScaleGeometry&, const T*, const T*, const T*, T*, T*);
KILN_INSTANTIATE(float)
KILN_INSTANTIATE(bfloat16)
#undef KILN_INSTANTIATE

}  // namespace kiln::kernels::avx2
