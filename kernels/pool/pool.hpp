// 2-D pooling: max, average, and global average, over NCHW or channels-last tensors.
//
//   input  x [N, C, H, W]      output y [N, C, OH, OW]
//   OH = floor_or_ceil((H + 2*pad_h - kernel_h) / stride_h) + 1, likewise OW.
//
// Layout. Every (n, c) pair is a plane of the image, pooled on its own. With channels_last false the
// buffers are dense NCHW: a plane's elements lie together. With channels_last true they are dense
// [N, H, W, C] (x, gx) and [N, OH, OW, C] (y, gy, argmax): a plane's elements lie C apart, interleaved
// with the other channels'. PlaneLayout says where each plane lies; every result is the same in either
// layout, bit for bit, only stored in its own order.
//
// Max pooling treats padding as -infinity (a padded position is never the maximum) and records, for each
// output, the flat index ih * W + iw of the winning input inside its (n, c) plane; the backward pass
// scatters gradients through those indices. Ties go to the first position in row-major window order; a NaN
// beats any number, so it propagates to the output.
//
// Average pooling divides, when count_include_pad is true, by the number of window positions inside the
// padded input (kernel_h * kernel_w, except for a ceil-mode window reaching past the right padding), else
// by the number of window positions inside the unpadded input. With ceil_mode, a last window that starts
// inside the input or its left padding is kept; positions past the right padding never count, neither in
// the sum nor in either divisor (PyTorch's rule).
//
// All buffers are dense. Backward kernels overwrite their output.
//
// T is float, double or bfloat16. Forward sums (average pooling) run in double; max pooling only compares,
// so it is exact in any T. The backward passes add up gradients in pool_gradient_sum_t<T>.
//
// Argmax is a position in the plane, ih * W + iw, in either layout: the backward pass finds the element
// through the layout, as it finds every other. It is int32 (a plane holds fewer than 2^31 values: the
// Tensor-level op checks), half of int64's bytes: with a bfloat16 2x2 pool, the indices were as many bytes
// as the window's four inputs, and the forward's and backward's traffic is a fifth less with int32.
#pragma once

#include <cstdint>
#include <type_traits>

#include "core/bfloat16.hpp"
#include "core/device.hpp"

namespace kiln::kernels {

// The type the backward passes add gradients up in, and round from once per input element: T itself for
// float and double (the sums the reference has always made, which the CUDA gathers match bitwise), double
// for bfloat16, whose 8 significant bits would lose most of a sum of many small shares.
template <typename T>
using pool_gradient_sum_t = std::conditional_t<std::is_same_v<T, bfloat16>, double, T>;

// Where plane p = n * C + c of a tensor of [N, C, positions] lies: its first element, and the distance
// between its consecutive elements (1 in NCHW; C channels-last, where the plane's elements interleave with
// the other channels').
struct PlaneLayout {
  std::int64_t channels = 1;
  bool channels_last = false;

  std::int64_t start(std::int64_t plane, std::int64_t positions) const {
    return channels_last ? plane / channels * positions * channels + plane % channels : plane * positions;
  }
  std::int64_t step() const { return channels_last ? channels : 1; }
};

// The input positions one output index's window covers along one axis.
//   [begin, end)  the positions inside the real input (the ones that hold values)
//   padded_size   how many positions lie inside the padded input: the window is clipped at the end of the
//                 right padding, never before its start (PyTorch's rule for a ceil-mode last window)
struct WindowSpan {
  std::int64_t begin, end, padded_size;
};

// (Host and device: cuda_pool.cu's kernels take the same spans.)
inline KILN_HOST_DEVICE WindowSpan window_span(std::int64_t out_index, std::int64_t kernel,
                                               std::int64_t stride, std::int64_t pad, std::int64_t in) {
  const std::int64_t start = out_index * stride - pad;  // negative when the window begins in the left padding
  const std::int64_t padded_end = start + kernel < in + pad ? start + kernel : in + pad;
  return {start > 0 ? start : 0, padded_end < in ? padded_end : in, padded_end - start};
}

// What an average-pooling window divides its sum by: the positions inside the padded input when padding
// counts, else only the real input positions it covers. (Host and device, as window_span.)
inline KILN_HOST_DEVICE std::int64_t avg_pool_divisor(bool count_include_pad, const WindowSpan& rows,
                                                      const WindowSpan& cols) {
  if (count_include_pad) return rows.padded_size * cols.padded_size;
  return (rows.end - rows.begin) * (cols.end - cols.begin);
}

struct Pool2dGeometry {
  std::int64_t batch = 1, channels = 1, in_height = 1, in_width = 1;
  std::int64_t kernel_h = 1, kernel_w = 1;
  std::int64_t stride_h = 1, stride_w = 1;
  std::int64_t pad_h = 0, pad_w = 0;
  bool ceil_mode = false;
  bool count_include_pad = true;  // average pooling only
  bool channels_last = false;     // the buffers' layout (above)

  std::int64_t out_height() const { return out_extent(in_height, kernel_h, stride_h, pad_h); }
  std::int64_t out_width() const { return out_extent(in_width, kernel_w, stride_w, pad_w); }
  PlaneLayout layout() const { return {channels, channels_last}; }
  WindowSpan row_span(std::int64_t oh) const { return window_span(oh, kernel_h, stride_h, pad_h, in_height); }
  WindowSpan col_span(std::int64_t ow) const { return window_span(ow, kernel_w, stride_w, pad_w, in_width); }
  std::int64_t avg_divisor(const WindowSpan& rows, const WindowSpan& cols) const {
    return avg_pool_divisor(count_include_pad, rows, cols);
  }
  // True when no two windows share an input position: every input then receives at most one gradient.
  bool windows_disjoint() const { return stride_h >= kernel_h && stride_w >= kernel_w; }

 private:
  std::int64_t out_extent(std::int64_t in, std::int64_t kernel, std::int64_t stride, std::int64_t pad) const {
    const std::int64_t span = in + 2 * pad - kernel;
    std::int64_t out = (ceil_mode ? (span + stride - 1) / stride : span / stride) + 1;
    // A ceil-mode window must start inside the input or its left padding.
    if (ceil_mode && (out - 1) * stride >= in + pad) --out;
    return out;
  }
};

template <typename T>
void max_pool2d_forward(Device device, const Pool2dGeometry& g, const T* x, T* y, std::int32_t* argmax);
template <typename T>
void max_pool2d_backward(Device device, const Pool2dGeometry& g, const T* gy, const std::int32_t* argmax,
                         T* gx);
template <typename T> void avg_pool2d_forward(Device device, const Pool2dGeometry& g, const T* x, T* y);
template <typename T> void avg_pool2d_backward(Device device, const Pool2dGeometry& g, const T* gy, T* gx);

// Global average pooling: x [N, C, H, W] -> y [N, C], the mean of each plane of plane_size = H * W elements.
// x and gx are NCHW or channels-last as channels_last says; y and gy are [N, C] either way.
struct GlobalPool2dGeometry {
  std::int64_t batch = 1, channels = 1, plane_size = 1;
  bool channels_last = false;

  std::int64_t planes() const { return batch * channels; }
  PlaneLayout layout() const { return {channels, channels_last}; }
};

template <typename T>
void global_avg_pool2d_forward(Device device, const GlobalPool2dGeometry& g, const T* x, T* y);
// The backward writes gx, or with `accumulate` adds into it (its sum so far: a squeeze-and-excitation's
// input, whose other consumer's gradient came first), each element as the elementwise add at the same
// dispatch level would add the fresh gradient to it: one pass where a fresh gx and the add took two, writing
// a tensor between.
template <typename T>
void global_avg_pool2d_backward(Device device, const GlobalPool2dGeometry& g, const T* gy, T* gx,
                                bool accumulate = false);

namespace reference {
template <typename T>
void max_pool2d_forward(const Pool2dGeometry& g, const T* x, T* y, std::int32_t* argmax);
template <typename T>
void max_pool2d_backward(const Pool2dGeometry& g, const T* gy, const std::int32_t* argmax, T* gx);
template <typename T> void avg_pool2d_forward(const Pool2dGeometry& g, const T* x, T* y);
template <typename T> void avg_pool2d_backward(const Pool2dGeometry& g, const T* gy, T* gx);
template <typename T>
void global_avg_pool2d_forward(const GlobalPool2dGeometry& g, const T* x, T* y);
template <typename T>
void global_avg_pool2d_backward(const GlobalPool2dGeometry& g, const T* gy, T* gx, bool accumulate = false);
}  // namespace reference

// Threaded vectorized kernels (vectorized_pool.hpp, channels_last_pool.hpp, vectorized_avg_pool.hpp), one
// namespace per instruction set, T float or bfloat16, same contracts. NCHW: global average pooling, and max
// and average pooling at column stride 1 or 2, vectorized along the rows; channels-last: max, average and
// global average pooling of any geometry along the channels; the max backward a threaded scatter in either
// layout; everything else (other column strides in NCHW, planes under 8 columns wide, the bfloat16 NCHW
// average backward) the reference, threaded.
namespace avx512 {
template <typename T>
void max_pool2d_forward(const Pool2dGeometry& g, const T* x, T* y, std::int32_t* argmax);
template <typename T>
void max_pool2d_backward(const Pool2dGeometry& g, const T* gy, const std::int32_t* argmax, T* gx);
template <typename T>
void avg_pool2d_forward(const Pool2dGeometry& g, const T* x, T* y);
template <typename T>
void avg_pool2d_backward(const Pool2dGeometry& g, const T* gy, T* gx);
template <typename T>
void global_avg_pool2d_forward(const GlobalPool2dGeometry& g, const T* x, T* y);
template <typename T>
void global_avg_pool2d_backward(const GlobalPool2dGeometry& g, const T* gy, T* gx, bool accumulate);
}  // namespace avx512
namespace avx2 {
template <typename T>
void max_pool2d_forward(const Pool2dGeometry& g, const T* x, T* y, std::int32_t* argmax);
template <typename T>
void max_pool2d_backward(const Pool2dGeometry& g, const T* gy, const std::int32_t* argmax, T* gx);
template <typename T>
void avg_pool2d_forward(const Pool2dGeometry& g, const T* x, T* y);
template <typename T>
void avg_pool2d_backward(const Pool2dGeometry& g, const T* gy, T* gx);
template <typename T>
void global_avg_pool2d_forward(const GlobalPool2dGeometry& g, const T* x, T* y);
template <typename T>
void global_avg_pool2d_backward(const GlobalPool2dGeometry& g, const T* gy, T* gx, bool accumulate);
}  // namespace avx2

// CUDA kernels (cuda_pool.cu, built when CMake finds a CUDA compiler), float, double and bfloat16, same
// contracts: on the current device, on the compute stream, asynchronously; every pointer is device memory.
// The backward kernels gather (one thread per input element visits the outputs covering it) instead of
// scattering with atomics, adding in pool_gradient_sum_t<T> in the reference's order, so both backward
// passes are bitwise the reference's; average pooling sums its windows in double in the reference's order;
// global average pooling sums each plane in double, NCHW in a fixed order (the same every run, not the
// reference's), channels-last in the reference's. The max backward reads argmax as the forward wrote it: an
// index outside its own window would be skipped, where the reference's scatter would follow it.
namespace cuda {
template <typename T>
void max_pool2d_forward(const Pool2dGeometry& g, const T* x, T* y, std::int32_t* argmax);
template <typename T>
void max_pool2d_backward(const Pool2dGeometry& g, const T* gy, const std::int32_t* argmax, T* gx);
template <typename T>
void avg_pool2d_forward(const Pool2dGeometry& g, const T* x, T* y);
template <typename T>
void avg_pool2d_backward(const Pool2dGeometry& g, const T* gy, T* gx);
template <typename T>
void global_avg_pool2d_forward(const GlobalPool2dGeometry& g, const T* x, T* y);
template <typename T>
void global_avg_pool2d_backward(const GlobalPool2dGeometry& g, const T* gy, T* gx, bool accumulate);
}  // namespace cuda

}  // namespace kiln::kernels
