// Reference channel-scale kernels (channel_scale.hpp): plain loops, the oracle of the others. Products in
// double, rounded once to T (the exact product of two floats, so the multiply's value); each plane's sum in
// double over i in order, rounded once.
#include <cstdint>

#include "kernels/channel_scale/channel_scale.hpp"

namespace kiln::kernels::reference {

template <typename T>
void channel_scale_forward(const ChannelScaleGeometry& g, const T* x, const T* s, T* y) {
  for (std::int64_t n = 0; n < g.batch; ++n) {
    for (std::int64_t c = 0; c < g.channels; ++c) {
      const double gate = s[n * g.channels + c];
      for (std::int64_t i = 0; i < g.plane(); ++i) {
        const std::int64_t at = g.offset(n, c, i);
        y[at] = static_cast<T>(static_cast<double>(x[at]) * gate);
      }
    }
  }
}

template <typename T>
void channel_scale_backward(const ChannelScaleGeometry& g, const T* x, const T* s, const T* gy, T* gx,
                            T* gs) {
  for (std::int64_t n = 0; n < g.batch; ++n) {
    for (std::int64_t c = 0; c < g.channels; ++c) {
      const double gate = s[n * g.channels + c];
      double sum = 0;
      for (std::int64_t i = 0; i < g.plane(); ++i) {
        const std::int64_t at = g.offset(n, c, i);
        gx[at] = static_cast<T>(static_cast<double>(gy[at]) * gate);
        sum += static_cast<double>(gy[at]) * static_cast<double>(x[at]);
      }
      gs[n * g.channels + c] = static_cast<T>(sum);
    }
  }
}

#define KILN_INSTANTIATE(T)                                                                    \
  template void channel_scale_forward<T>(const ChannelScaleGeometry&, const T*, const T*, T*); \
  template void channel_scale_backward<T>(const ChannelScaleGeometry&, const T*, const T*, const T*, T*, T*);
KILN_INSTANTIATE(float)
KILN_INSTANTIATE(double)
KILN_INSTANTIATE(bfloat16)
#undef KILN_INSTANTIATE

}  // namespace kiln::kernels::reference
