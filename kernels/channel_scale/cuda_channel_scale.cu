// The channel scale on a CUDA device (channel_scale.hpp). y and gx: a thread per element in a grid-stride
// loop, the product in opmath_t<T> rounded once (a product of two floats, or two bfloat16s, the multiply's
// value). gs: a block per (image, channel) plane, its threads striding over the plane and block_sum adding
// their double sums in a fixed tree, so the sums are the same on every run (not the reference's bits: the
// order differs). Channels-last, a plane's values lie C apart, which a block per plane reads uncoalesced: a
// straightforward kernel, not yet a tuned one.
#include <cstdint>

#include "kernels/channel_scale/channel_scale.hpp"
#include "kernels/cuda_block_sum.cuh"
#include "kernels/cuda_launch.cuh"

namespace kiln::kernels::cuda {
namespace {

// Element i's (image, channel) plane, n * C + c: the index of its gate.
__device__ std::int64_t plane_of(const ChannelScaleGeometry& g, std::int64_t i) {
  if (g.channels_last) return i / (g.plane() * g.channels) * g.channels + i % g.channels;
  return i / g.plane();
}

// out = in * s, a thread per element.
template <typename T>
__global__ void scale_kernel(ChannelScaleGeometry g, const T* in, const T* s, T* out) {
  const std::int64_t count = g.batch * g.channels * g.plane();
  for (std::int64_t i = first_thread_index(); i < count; i += grid_thread_count()) {
    out[i] = static_cast<T>(static_cast<opmath_t<T>>(in[i]) * static_cast<opmath_t<T>>(s[plane_of(g, i)]));
  }
}

// gs[n * C + c] = the plane's sum of gy * x in double, a block per plane.
template <typename T>
__global__ void gate_gradient_kernel(ChannelScaleGeometry g, const T* x, const T* gy, T* gs) {
  for (std::int64_t nc = blockIdx.x; nc < g.batch * g.channels; nc += gridDim.x) {  // uniform in the block
    const std::int64_t n = nc / g.channels, c = nc % g.channels;
    double sum = 0;
    for (std::int64_t i = threadIdx.x; i < g.plane(); i += blockDim.x) {
      const std::int64_t at = g.offset(n, c, i);
      sum += static_cast<double>(gy[at]) * static_cast<double>(x[at]);
    }
    sum = block_sum(sum);
    if (threadIdx.x == 0) gs[nc] = static_cast<T>(sum);
  }
}

}  // namespace

template <typename T>
void channel_scale_forward(const ChannelScaleGeometry& g, const T* x, const T* s, T* y) {
  const std::int64_t count = g.batch * g.channels * g.plane();
  if (count == 0) return;
  launch("channel_scale_forward", scale_kernel<T>, grid_blocks(count), kThreadsPerBlock, g, x, s, y);
}

template <typename T>
void channel_scale_backward(const ChannelScaleGeometry& g, const T* x, const T* s, const T* gy, T* gx,
                            T* gs) {
  const std::int64_t planes = g.batch * g.channels;
  if (planes == 0) return;
  if (g.plane() > 0) {
    launch("channel_scale_backward (gx)", scale_kernel<T>, grid_blocks(planes * g.plane()), kThreadsPerBlock,
           g, gy, s, gx);
  }
  launch("channel_scale_backward (gs)", gate_gradient_kernel<T>, grid_blocks(planes, 1), kThreadsPerBlock, g,
         x, gy, gs);
}

#define KILN_INSTANTIATE(T)                                                                    \
  template void channel_scale_forward<T>(const ChannelScaleGeometry&, const T*, const T*, T*); \
  template void channel_scale_backward<T>(const ChannelScaleGeometry&, const T*, const T*, const T*, T*, T*);
KILN_INSTANTIATE(float)
KILN_INSTANTIATE(double)
KILN_INSTANTIATE(bfloat16)
#undef KILN_INSTANTIATE

}  // namespace kiln::kernels::cuda
