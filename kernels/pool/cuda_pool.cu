// 2-D pooling on a CUDA device (pool.hpp): the reference's semantics (window clipping, ceil mode, the two
// average-pool divisors, max pooling's tie and NaN rules), one thread per output element forward and one
// thread per INPUT element backward.
//
//   x, gx  [N, C, H, W]        y, gy, argmax  [N, C, OH, OW]     (NCHW or channels-last, pool.hpp)
//
// Threads take elements in memory order, whatever the layout, so neighbouring threads touch neighbouring
// memory: neighbouring positions of one plane in NCHW, neighbouring channels of one position channels-last.
// locate() turns a thread's element into its (plane, position) and element_offset() a plane's position
// into memory, in either layout.
//
// Backward kernels GATHER: the thread of input position (ih, iw) visits the outputs whose windows cover it,
// in row-major order, and adds up what each sends back (max: gy if argmax names this position; average:
// gy / divisor). No two threads write the same element, so there are no atomics, and the sum runs in the
// same order and the same precision (pool_gradient_sum_t<T>: T for float and double, double for bfloat16)
// as the reference's scatter loop: both backward passes are bitwise the reference's, run after run. A
// scatter with atomicAdd would be simpler to write but adds in whatever order the threads arrive, so its
// float sums would change from run to run.
//
// Precision: the average forward and the global average forward sum in double; max pooling only compares
// (bfloat16 as the float it widens to, exactly); every result is rounded to T once.
//
// Every kernel walks its elements in a grid-stride loop (int64 indices), so one launch of at most
// kMaxGridBlocks blocks of kThreadsPerBlock threads covers any size.
#include <algorithm>
#include <cstdint>

#include "core/cuda_runtime.hpp"
#include "kernels/cuda_launch.cuh"
#include "kernels/pool/pool.hpp"

namespace kiln::kernels::cuda {
namespace {

// The buffers' layout (pool.hpp's PlaneLayout, whose member functions are host code).
struct Layout {
  std::int64_t channels;
  bool channels_last;
};

// Pool2dGeometry with its output extents worked out on the host (its member functions are host code).
struct PoolShape {
  std::int64_t planes;  // N * C
  std::int64_t in_h, in_w, out_h, out_w;
  std::int64_t kernel_h, kernel_w, stride_h, stride_w, pad_h, pad_w;
  bool count_include_pad;
  Layout layout;
};

PoolShape pool_shape(const Pool2dGeometry& g) {
  return {g.batch * g.channels,
          g.in_height,
          g.in_width,
          g.out_height(),
          g.out_width(),
          g.kernel_h,
          g.kernel_w,
          g.stride_h,
          g.stride_w,
          g.pad_h,
          g.pad_w,
          g.count_include_pad,
          {g.channels, g.channels_last}};
}

// Element `i` of a tensor of planes of `positions` elements, in memory order: its plane n * C + c and its
// position in the plane (ih * W + iw, or oh * OW + ow).
struct PlanePosition {
  std::int64_t plane, position;
};

__device__ PlanePosition locate(const Layout& layout, std::int64_t i, std::int64_t positions) {
  if (!layout.channels_last) return {i / positions, i % positions};
  const std::int64_t pixel = i / layout.channels;  // n * positions + position
  return {pixel / positions * layout.channels + i % layout.channels, pixel % positions};
}

// Where a plane's position lies in memory: locate's inverse.
__device__ std::int64_t element_offset(const Layout& layout, std::int64_t plane, std::int64_t position,
                                       std::int64_t positions) {
  if (!layout.channels_last) return plane * positions + position;
  return (plane / layout.channels * positions + position) * layout.channels + plane % layout.channels;
}

// Window spans and the average divisor: pool.hpp's window_span and avg_pool_divisor, the host's own.
__device__ WindowSpan row_span(const PoolShape& s, std::int64_t oh) {
  return window_span(oh, s.kernel_h, s.stride_h, s.pad_h, s.in_h);
}
__device__ WindowSpan col_span(const PoolShape& s, std::int64_t ow) {
  return window_span(ow, s.kernel_w, s.stride_w, s.pad_w, s.in_w);
}

// The outputs [first, last] along one axis whose windows cover input position `in_index`: those with
// start <= in_index < start + kernel, start = out * stride - pad. (The reference clips a window to
// [max(start, 0), min(start + kernel, in)), which for a position inside the input is the same test.)
// first > last when none does.
struct CoveringOutputs {
  std::int64_t first, last;
};

__device__ CoveringOutputs covering_outputs(std::int64_t in_index, std::int64_t kernel, std::int64_t stride,
                                            std::int64_t pad, std::int64_t out) {
  const std::int64_t lowest_start = in_index + pad - kernel + 1;  // out * stride must reach this
  const std::int64_t first = lowest_start <= 0 ? 0 : (lowest_start + stride - 1) / stride;
  const std::int64_t last_unclipped = (in_index + pad) / stride;  // in_index + pad >= 0
  return {first, last_unclipped < out - 1 ? last_unclipped : out - 1};
}

// Does `candidate` replace `best` as a window's maximum? The reference's rule: only a strictly larger
// value (ties stay with the first position in row-major order), or a NaN over a number. bfloat16 compares
// as the float it widens to.
template <typename T>
__device__ bool beats(T candidate_value, T best_value) {
  const opmath_t<T> candidate = candidate_value, best = best_value;
  return candidate > best || (isnan(candidate) && !isnan(best));
}

// ---- max pooling -------------------------------------------------------------------------------------

// One thread per output element y[plane, oh, ow]: scans its window in row-major order.
template <typename T>
__global__ void max_pool2d_forward_kernel(PoolShape s, const T* x, T* y, std::int32_t* argmax) {
  const std::int64_t out_plane = s.out_h * s.out_w;
  const std::int64_t total = s.planes * out_plane;
  const std::int64_t grid_stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t out = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; out < total;
       out += grid_stride) {
    const auto [plane, position] = locate(s.layout, out, out_plane);
    const WindowSpan rows = row_span(s, position / s.out_w), cols = col_span(s, position % s.out_w);
    std::int64_t best_index = -1;
    T best_value{};
    for (std::int64_t ih = rows.begin; ih < rows.end; ++ih) {
      for (std::int64_t iw = cols.begin; iw < cols.end; ++iw) {
        const std::int64_t index = ih * s.in_w + iw;
        const T value = x[element_offset(s.layout, plane, index, s.in_h * s.in_w)];
        if (best_index < 0 || beats(value, best_value)) {
          best_index = index;
          best_value = value;
        }
      }
    }
    y[out] = best_value;
    argmax[out] = static_cast<std::int32_t>(best_index);
  }
}

// One thread per input element gx[plane, ih, iw]: the sum, in row-major output order, of gy over the
// covering outputs whose argmax is this position.
template <typename T>
__global__ void max_pool2d_backward_kernel(PoolShape s, const T* gy, const std::int32_t* argmax, T* gx) {
  const std::int64_t in_plane = s.in_h * s.in_w, out_plane = s.out_h * s.out_w;
  const std::int64_t total = s.planes * in_plane;
  const std::int64_t grid_stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t in = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; in < total;
       in += grid_stride) {
    const auto [plane, index] = locate(s.layout, in, in_plane);  // index = ih * W + iw, as argmax holds
    const std::int64_t ih = index / s.in_w, iw = index % s.in_w;
    const CoveringOutputs rows = covering_outputs(ih, s.kernel_h, s.stride_h, s.pad_h, s.out_h);
    const CoveringOutputs cols = covering_outputs(iw, s.kernel_w, s.stride_w, s.pad_w, s.out_w);
    using Sum = pool_gradient_sum_t<T>;
    Sum sum{0};
    for (std::int64_t oh = rows.first; oh <= rows.last; ++oh) {
      for (std::int64_t ow = cols.first; ow <= cols.last; ++ow) {
        const std::int64_t out = element_offset(s.layout, plane, oh * s.out_w + ow, out_plane);
        if (argmax[out] == index) sum += Sum(gy[out]);
      }
    }
    gx[in] = static_cast<T>(sum);
  }
}

// ---- average pooling ---------------------------------------------------------------------------------

// One thread per output element: the window's sum in double, in the reference's order, over its divisor.
template <typename T>
__global__ void avg_pool2d_forward_kernel(PoolShape s, const T* x, T* y) {
  const std::int64_t out_plane = s.out_h * s.out_w;
  const std::int64_t total = s.planes * out_plane;
  const std::int64_t grid_stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t out = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; out < total;
       out += grid_stride) {
    const auto [plane, position] = locate(s.layout, out, out_plane);
    const WindowSpan rows = row_span(s, position / s.out_w), cols = col_span(s, position % s.out_w);
    double sum = 0;
    for (std::int64_t ih = rows.begin; ih < rows.end; ++ih) {
      for (std::int64_t iw = cols.begin; iw < cols.end; ++iw)
        sum += static_cast<double>(x[element_offset(s.layout, plane, ih * s.in_w + iw, s.in_h * s.in_w)]);
    }
    y[out] = static_cast<T>(sum / static_cast<double>(avg_pool_divisor(s.count_include_pad, rows, cols)));
  }
}

// One thread per input element: the sum, in row-major output order, of each covering output's share
// gy / divisor (rounded to pool_gradient_sum_t<T> as the reference rounds it).
template <typename T>
__global__ void avg_pool2d_backward_kernel(PoolShape s, const T* gy, T* gx) {
  const std::int64_t in_plane = s.in_h * s.in_w, out_plane = s.out_h * s.out_w;
  const std::int64_t total = s.planes * in_plane;
  const std::int64_t grid_stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t in = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; in < total;
       in += grid_stride) {
    const auto [plane, index] = locate(s.layout, in, in_plane);
    const std::int64_t ih = index / s.in_w, iw = index % s.in_w;
    const CoveringOutputs rows = covering_outputs(ih, s.kernel_h, s.stride_h, s.pad_h, s.out_h);
    const CoveringOutputs cols = covering_outputs(iw, s.kernel_w, s.stride_w, s.pad_w, s.out_w);
    using Sum = pool_gradient_sum_t<T>;
    Sum sum{0};
    for (std::int64_t oh = rows.first; oh <= rows.last; ++oh) {
      const WindowSpan out_rows = row_span(s, oh);
      for (std::int64_t ow = cols.first; ow <= cols.last; ++ow) {
        const std::int64_t divisor = avg_pool_divisor(s.count_include_pad, out_rows, col_span(s, ow));
        const double share =
            static_cast<double>(gy[element_offset(s.layout, plane, oh * s.out_w + ow, out_plane)]);
        sum += static_cast<Sum>(share / static_cast<double>(divisor));
      }
    }
    gx[in] = static_cast<T>(sum);
  }
}

// ---- global average pooling --------------------------------------------------------------------------

// NCHW: one warp per plane (its elements lie together): lane l sums elements l, l + 32, ... in double,
// then the warp adds its 32 partial sums by shuffles (a fixed tree, so the result is the same every run,
// though not the reference's left-to-right order). The plane loop's condition is the same for the whole
// warp, so all 32 lanes reach every shuffle.
template <typename T>
__global__ void global_avg_pool2d_forward_kernel(std::int64_t planes, std::int64_t plane_size, const T* x,
                                                 T* y) {
  const int lane = static_cast<int>(threadIdx.x) % kWarpSize;
  const std::int64_t warp_stride = static_cast<std::int64_t>(gridDim.x) * kWarpsPerBlock;
  for (std::int64_t plane = static_cast<std::int64_t>(blockIdx.x) * kWarpsPerBlock + threadIdx.x / kWarpSize;
       plane < planes; plane += warp_stride) {
    const T* x_plane = x + plane * plane_size;
    double sum = 0;
    for (std::int64_t i = lane; i < plane_size; i += kWarpSize) sum += static_cast<double>(x_plane[i]);
    for (int offset = kWarpSize / 2; offset > 0; offset /= 2)
      sum += __shfl_down_sync(kFullWarpMask, sum, offset);
    if (lane == 0) y[plane] = static_cast<T>(sum / static_cast<double>(plane_size));
  }
}

// Channels-last: one thread per plane n * C + c (neighbouring threads read neighbouring channels of each
// position), summing its positions in order in double: the reference's sum, bit for bit.
template <typename T>
__global__ void global_avg_pool2d_forward_channels_last_kernel(Layout layout, std::int64_t planes,
                                                               std::int64_t plane_size, const T* x, T* y) {
  const std::int64_t grid_stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t plane = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; plane < planes;
       plane += grid_stride) {
    double sum = 0;
    for (std::int64_t i = 0; i < plane_size; ++i)
      sum += static_cast<double>(x[element_offset(layout, plane, i, plane_size)]);
    y[plane] = static_cast<T>(sum / static_cast<double>(plane_size));
  }
}

// One thread per input element: gx = gy[plane] / plane_size, rounded to T as the reference does.
template <typename T>
__global__ void global_avg_pool2d_backward_kernel(Layout layout, std::int64_t planes, std::int64_t plane_size,
                                                  const T* gy, T* gx, bool accumulate) {
  const std::int64_t total = planes * plane_size;
  const std::int64_t grid_stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < total;
       i += grid_stride) {
    const std::int64_t plane = locate(layout, i, plane_size).plane;
    const T share = static_cast<T>(static_cast<double>(gy[plane]) / static_cast<double>(plane_size));
    // Accumulating, added as the CUDA elementwise add adds: in double, rounded once.
    gx[i] = accumulate ? static_cast<T>(static_cast<double>(gx[i]) + static_cast<double>(share)) : share;
  }
}

}  // namespace

template <typename T>
void max_pool2d_forward(const Pool2dGeometry& g, const T* x, T* y, std::int32_t* argmax) {
  const PoolShape s = pool_shape(g);
  const std::int64_t outputs = s.planes * s.out_h * s.out_w;
  if (outputs <= 0) return;
  launch("max_pool2d_forward", max_pool2d_forward_kernel<T>, grid_blocks(outputs, kThreadsPerBlock),
         kThreadsPerBlock, s, x, y, argmax);
}

template <typename T>
void max_pool2d_backward(const Pool2dGeometry& g, const T* gy, const std::int32_t* argmax, T* gx) {
  const PoolShape s = pool_shape(g);
  const std::int64_t inputs = s.planes * s.in_h * s.in_w;
  if (inputs <= 0) return;
  launch("max_pool2d_backward", max_pool2d_backward_kernel<T>, grid_blocks(inputs, kThreadsPerBlock),
         kThreadsPerBlock, s, gy, argmax, gx);
}

template <typename T>
void avg_pool2d_forward(const Pool2dGeometry& g, const T* x, T* y) {
  const PoolShape s = pool_shape(g);
  const std::int64_t outputs = s.planes * s.out_h * s.out_w;
  if (outputs <= 0) return;
  launch("avg_pool2d_forward", avg_pool2d_forward_kernel<T>, grid_blocks(outputs, kThreadsPerBlock),
         kThreadsPerBlock, s, x, y);
}

template <typename T>
void avg_pool2d_backward(const Pool2dGeometry& g, const T* gy, T* gx) {
  const PoolShape s = pool_shape(g);
  const std::int64_t inputs = s.planes * s.in_h * s.in_w;
  if (inputs <= 0) return;
  launch("avg_pool2d_backward", avg_pool2d_backward_kernel<T>, grid_blocks(inputs, kThreadsPerBlock),
         kThreadsPerBlock, s, gy, gx);
}

template <typename T>
void global_avg_pool2d_forward(const GlobalPool2dGeometry& g, const T* x, T* y) {
  const std::int64_t planes = g.planes();
  if (planes <= 0) return;  // plane_size 0 still writes y: 0 / 0, NaN, as the reference does
  if (g.channels_last) {
    launch("global_avg_pool2d_forward", global_avg_pool2d_forward_channels_last_kernel<T>,
           grid_blocks(planes, kThreadsPerBlock), kThreadsPerBlock, Layout{g.channels, true}, planes,
           g.plane_size, x, y);
    return;
  }
  launch("global_avg_pool2d_forward", global_avg_pool2d_forward_kernel<T>,
         grid_blocks(planes, kWarpsPerBlock), kThreadsPerBlock, planes, g.plane_size, x, y);
}

template <typename T>
void global_avg_pool2d_backward(const GlobalPool2dGeometry& g, const T* gy, T* gx, bool accumulate) {
  const std::int64_t inputs = g.planes() * g.plane_size;
  if (inputs <= 0) return;
  launch("global_avg_pool2d_backward", global_avg_pool2d_backward_kernel<T>,
         grid_blocks(inputs, kThreadsPerBlock), kThreadsPerBlock, Layout{g.channels, g.channels_last},
         g.planes(), g.plane_size, gy, gx, accumulate);
}

template void max_pool2d_forward<float>(const Pool2dGeometry&, const float*, float*, std::int32_t*);
template void max_pool2d_backward<float>(const Pool2dGeometry&, const float*, const std::int32_t*, float*);
template void avg_pool2d_forward<float>(const Pool2dGeometry&, const float*, float*);
template void avg_pool2d_backward<float>(const Pool2dGeometry&, const float*, float*);
template void global_avg_pool2d_forward<float>(const GlobalPool2dGeometry&, const float*, float*);
template void global_avg_pool2d_backward<float>(const GlobalPool2dGeometry&, const float*, float*, bool);

template void max_pool2d_forward<double>(const Pool2dGeometry&, const double*, double*, std::int32_t*);
template void max_pool2d_backward<double>(const Pool2dGeometry&, const double*, const std::int32_t*, double*);
template void avg_pool2d_forward<double>(const Pool2dGeometry&, const double*, double*);
template void avg_pool2d_backward<double>(const Pool2dGeometry&, const double*, double*);
template void global_avg_pool2d_forward<double>(const GlobalPool2dGeometry&, const double*, double*);
template void global_avg_pool2d_backward<double>(const GlobalPool2dGeometry&, const double*, double*, bool);

template void max_pool2d_forward<bfloat16>(const Pool2dGeometry&, const bfloat16*, bfloat16*, std::int32_t*);
template void max_pool2d_backward<bfloat16>(const Pool2dGeometry&, const bfloat16*, const std::int32_t*,
                                            bfloat16*);
template void avg_pool2d_forward<bfloat16>(const Pool2dGeometry&, const bfloat16*, bfloat16*);
template void avg_pool2d_backward<bfloat16>(const Pool2dGeometry&, const bfloat16*, bfloat16*);
template void global_avg_pool2d_forward<bfloat16>(const GlobalPool2dGeometry&, const bfloat16*, bfloat16*);
template void global_avg_pool2d_backward<bfloat16>(const GlobalPool2dGeometry&, const bfloat16*, bfloat16*,
                                                   bool);

}  // namespace kiln::kernels::cuda
