// The reference shortcut (subsample_pad.hpp): the formulas as loops over logical indices, either layout.
#include "kernels/shortcut/subsample_pad.hpp"

namespace kiln::kernels::reference {

template <typename T>
void subsample_pad_forward(const SubsamplePadGeometry& g, const T* x, T* y) {
  const std::int64_t K = g.out_channels(), OH = g.out_height(), OW = g.out_width();
  for (std::int64_t n = 0; n < g.batch; ++n)
    for (std::int64_t k = 0; k < K; ++k)
      for (std::int64_t i = 0; i < OH; ++i)
        for (std::int64_t j = 0; j < OW; ++j) {
          const std::int64_t c = k - g.pad_before;
          const bool padding = c < 0 || c >= g.channels;
          y[subsample_pad_offset(g.channels_last, K, OH, OW, n, k, i, j)] =
              padding ? T(0)
                      : x[subsample_pad_offset(g.channels_last, g.channels, g.height, g.width, n, c,
                                               i * g.stride, j * g.stride)];
        }
}

template <typename T>
void subsample_pad_backward(const SubsamplePadGeometry& g, const T* gy, T* gx, bool accumulate) {
  const std::int64_t K = g.out_channels(), OH = g.out_height(), OW = g.out_width();
  for (std::int64_t n = 0; n < g.batch; ++n)
    for (std::int64_t c = 0; c < g.channels; ++c)
      for (std::int64_t h = 0; h < g.height; ++h)
        for (std::int64_t w = 0; w < g.width; ++w) {
          T& to = gx[subsample_pad_offset(g.channels_last, g.channels, g.height, g.width, n, c, h, w)];
          const bool kept = h % g.stride == 0 && w % g.stride == 0;
          if (!kept) {
            if (!accumulate) to = T(0);
            continue;
          }
          const T from = gy[subsample_pad_offset(g.channels_last, K, OH, OW, n, g.pad_before + c,
                                                 h / g.stride, w / g.stride)];
          to = accumulate ? static_cast<T>(static_cast<opmath_t<T>>(to) + static_cast<opmath_t<T>>(from))
                          : from;
        }
}

template void subsample_pad_forward<float>(const SubsamplePadGeometry&, const float*, float*);
template void subsample_pad_forward<double>(const SubsamplePadGeometry&, const double*, double*);
template void subsample_pad_forward<bfloat16>(const SubsamplePadGeometry&, const bfloat16*, bfloat16*);
template void subsample_pad_backward<float>(const SubsamplePadGeometry&, const float*, float*, bool);
template void subsample_pad_backward<double>(const SubsamplePadGeometry&, const double*, double*, bool);
template void subsample_pad_backward<bfloat16>(const SubsamplePadGeometry&, const bfloat16*, bfloat16*, bool);

}  // namespace kiln::kernels::reference
