// The shortcut on a CUDA device (subsample_pad.hpp): a thread per element of the pass's output, in a
// grid-stride loop. Forward, y's element finds its x element (or is a padded channel's zero); backward, gx's
// element finds whether the forward read it and which gy element that went to. The sum of the accumulating
// backward is the reference's: in opmath_t<T>, rounded once.
#include <cstdint>

#include "kernels/cuda_launch.cuh"
#include "kernels/shortcut/subsample_pad.hpp"

namespace kiln::kernels::cuda {
namespace {

// The coordinates of element `index` of a [batch][channels][height][width] tensor, NCHW or channels-last,
// and back.
struct Coordinates {
  std::int64_t n, c, h, w;
};
__device__ Coordinates coordinates_of(std::int64_t index, bool channels_last, std::int64_t channels,
                                      std::int64_t height, std::int64_t width) {
  if (channels_last) {
    const std::int64_t c = index % channels, pixel = index / channels;
    return {pixel / (height * width), c, pixel / width % height, pixel % width};
  }
  return {index / (channels * height * width), index / (height * width) % channels, index / width % height,
          index % width};
}
__device__ std::int64_t offset_of(const Coordinates& at, bool channels_last, std::int64_t channels,
                                  std::int64_t height, std::int64_t width) {
  return subsample_pad_offset(channels_last, channels, height, width, at.n, at.c, at.h, at.w);
}

template <typename T>
__global__ void subsample_pad_forward_kernel(SubsamplePadGeometry g, const T* x, T* y) {
  const std::int64_t K = g.out_channels(), OH = g.out_height(), OW = g.out_width();
  const std::int64_t count = g.batch * K * OH * OW;
  for (std::int64_t i = first_thread_index(); i < count; i += grid_thread_count()) {
    const Coordinates out = coordinates_of(i, g.channels_last, K, OH, OW);
    const std::int64_t c = out.c - g.pad_before;
    if (c < 0 || c >= g.channels) {
      y[i] = T(0);
      continue;
    }
    y[i] = x[offset_of({out.n, c, out.h * g.stride, out.w * g.stride}, g.channels_last, g.channels, g.height,
                       g.width)];
  }
}

template <typename T>
__global__ void subsample_pad_backward_kernel(SubsamplePadGeometry g, const T* gy, T* gx, bool accumulate) {
  const std::int64_t K = g.out_channels(), OH = g.out_height(), OW = g.out_width();
  const std::int64_t count = g.batch * g.channels * g.height * g.width;
  for (std::int64_t i = first_thread_index(); i < count; i += grid_thread_count()) {
    const Coordinates in = coordinates_of(i, g.channels_last, g.channels, g.height, g.width);
    if (in.h % g.stride != 0 || in.w % g.stride != 0) {
      if (!accumulate) gx[i] = T(0);
      continue;
    }
    const T from = gy[offset_of({in.n, g.pad_before + in.c, in.h / g.stride, in.w / g.stride},
                                g.channels_last, K, OH, OW)];
    gx[i] =
        accumulate ? static_cast<T>(static_cast<opmath_t<T>>(gx[i]) + static_cast<opmath_t<T>>(from)) : from;
  }
}

}  // namespace

template <typename T>
void subsample_pad_forward(const SubsamplePadGeometry& g, const T* x, T* y) {
  const std::int64_t count = g.batch * g.out_channels() * g.out_height() * g.out_width();
  if (count == 0) return;
  launch("subsample_pad_forward", subsample_pad_forward_kernel<T>, grid_blocks(count), kThreadsPerBlock, g, x,
         y);
}

template <typename T>
void subsample_pad_backward(const SubsamplePadGeometry& g, const T* gy, T* gx, bool accumulate) {
  const std::int64_t count = g.batch * g.channels * g.height * g.width;
  if (count == 0) return;
  launch("subsample_pad_backward", subsample_pad_backward_kernel<T>, grid_blocks(count), kThreadsPerBlock, g,
         gy, gx, accumulate);
}

template void subsample_pad_forward<float>(const SubsamplePadGeometry&, const float*, float*);
template void subsample_pad_forward<double>(const SubsamplePadGeometry&, const double*, double*);
template void subsample_pad_forward<bfloat16>(const SubsamplePadGeometry&, const bfloat16*, bfloat16*);
template void subsample_pad_backward<float>(const SubsamplePadGeometry&, const float*, float*, bool);
template void subsample_pad_backward<double>(const SubsamplePadGeometry&, const double*, double*, bool);
template void subsample_pad_backward<bfloat16>(const SubsamplePadGeometry&, const bfloat16*, bfloat16*, bool);

}  // namespace kiln::kernels::cuda
