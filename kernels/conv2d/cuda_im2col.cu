// The unfolding behind the CUDA im2col + GEMM convolution (conv2d.hpp, namespace cuda): im2col, its adjoint
// col2im as a gather, and the copy that puts a chunk of images' planes side by side; float, double and
// bfloat16. im2col and the copy move values unchanged; col2im sums in opmath_t<T> (float for bfloat16, whose
// columns arrive in float) and rounds to T once.
//
// Every kernel runs one thread per element of what it writes, in a grid-stride loop (at most kMaxGridBlocks
// blocks of kThreadsPerBlock threads), so any size runs in one launch. Consecutive threads take consecutive
// output positions (the fastest-moving index), so writes are coalesced. Indices are int64 throughout.
#include <algorithm>
#include <cstdint>

#include "core/cuda_runtime.hpp"
#include "kernels/conv2d/conv2d.hpp"
#include "kernels/conv2d/cuda_covering_taps.cuh"
#include "kernels/cuda_launch.cuh"

namespace kiln::kernels::cuda {
namespace {

// col[b * image_stride + r * row_stride + p] for every image b < count, row r < C_in*KH*KW and output
// position p < OH*OW: element e of the loop is (b, r, p) with p fastest.
template <typename T>
__global__ void im2col_kernel(Conv2dGeometry g, std::int64_t out_h, std::int64_t out_w, std::int64_t count,
                              const T* x_images, std::int64_t image_stride, std::int64_t row_stride, T* col) {
  const std::int64_t plane_out = out_h * out_w, taps = g.kernel_h * g.kernel_w;
  const std::int64_t rows = g.in_channels * taps, total = count * rows * plane_out;
  for (std::int64_t e = first_thread_index(); e < total; e += grid_thread_count()) {
    const std::int64_t p = e % plane_out, r = (e / plane_out) % rows, b = e / (plane_out * rows);
    const std::int64_t ci = r / taps, kh = (r % taps) / g.kernel_w, kw = r % g.kernel_w;
    const std::int64_t ih = (p / out_w) * g.stride_h - g.pad_h + kh * g.dilation_h;
    const std::int64_t iw = (p % out_w) * g.stride_w - g.pad_w + kw * g.dilation_w;
    const bool inside = ih >= 0 && ih < g.in_height && iw >= 0 && iw < g.in_width;
    col[b * image_stride + r * row_stride + p] =
        inside ? x_images[((b * g.in_channels + ci) * g.in_height + ih) * g.in_width + iw] : T(0);
  }
}

// gx_images[b, ci, ih, iw] = sum over the taps (kh, kw) whose output position (oh, ow) read (ih, iw)
// (cuda_covering_taps.cuh), in a fixed order: the result is the same bits on every run. Element e is
// (b, ci, ih, iw) with iw fastest.
template <typename T>
__global__ void col2im_kernel(Conv2dGeometry g, std::int64_t out_h, std::int64_t out_w, std::int64_t count,
                              const opmath_t<T>* col, std::int64_t image_stride, std::int64_t row_stride,
                              T* gx_images) {
  const std::int64_t plane_in = g.in_height * g.in_width, total = count * g.in_channels * plane_in;
  for (std::int64_t e = first_thread_index(); e < total; e += grid_thread_count()) {
    const std::int64_t iw = e % g.in_width, ih = (e / g.in_width) % g.in_height;
    const std::int64_t ci = (e / plane_in) % g.in_channels, b = e / (plane_in * g.in_channels);
    const opmath_t<T>* col_image = col + b * image_stride;
    opmath_t<T> sum = 0;
    for_each_covering_tap(g, out_h, out_w, ih, iw,
                          [&](std::int64_t kh, std::int64_t kw, std::int64_t oh, std::int64_t ow) {
                            const std::int64_t r = (ci * g.kernel_h + kh) * g.kernel_w + kw;
                            sum += col_image[r * row_stride + oh * out_w + ow];
                          });
    gx_images[e] = static_cast<T>(sum);
  }
}

// matrix[c, b * plane + p] = images[b, c, p]. Element e runs over the images (the source) with p fastest, so
// reads are coalesced and writes are coalesced along each plane.
template <typename T>
__global__ void gather_images_kernel(const T* images, std::int64_t count, std::int64_t channels,
                                     std::int64_t plane, T* matrix) {
  const std::int64_t total = count * channels * plane;
  for (std::int64_t e = first_thread_index(); e < total; e += grid_thread_count()) {
    const std::int64_t p = e % plane, c = (e / plane) % channels, b = e / (plane * channels);
    matrix[(c * count + b) * plane + p] = images[e];
  }
}

__global__ void round_to_bfloat16_kernel(const float* wide, std::int64_t count, bfloat16* dense) {
  for (std::int64_t e = first_thread_index(); e < count; e += grid_thread_count())
    dense[e] = bfloat16(wide[e]);
}

}  // namespace

template <typename T>
void im2col(const Conv2dGeometry& g, const T* x_images, std::int64_t count, std::int64_t image_stride,
            std::int64_t row_stride, T* col) {
  const std::int64_t total = count * g.in_channels * g.kernel_h * g.kernel_w * g.out_height() * g.out_width();
  if (total == 0) return;
  launch("conv2d im2col", im2col_kernel<T>, grid_blocks(total), kThreadsPerBlock, g, g.out_height(),
         g.out_width(), count, x_images, image_stride, row_stride, col);
}

template <typename T>
void col2im(const Conv2dGeometry& g, const opmath_t<T>* col, std::int64_t count, std::int64_t image_stride,
            std::int64_t row_stride, T* gx_images) {
  const std::int64_t total = count * g.in_channels * g.in_height * g.in_width;
  if (total == 0) return;
  launch("conv2d col2im", col2im_kernel<T>, grid_blocks(total), kThreadsPerBlock, g, g.out_height(),
         g.out_width(), count, col, image_stride, row_stride, gx_images);
}

template <typename T>
void gather_images(const T* images, std::int64_t count, std::int64_t channels, std::int64_t plane,
                   T* matrix) {
  const std::int64_t total = count * channels * plane;
  if (total == 0) return;
  launch("conv2d gather_images", gather_images_kernel<T>, grid_blocks(total), kThreadsPerBlock, images, count,
         channels, plane, matrix);
}

void round_to_bfloat16(const float* wide, std::int64_t count, bfloat16* dense) {
  if (count == 0) return;
  launch("conv2d round to bfloat16", round_to_bfloat16_kernel, grid_blocks(count), kThreadsPerBlock, wide,
         count, dense);
}

template void im2col<float>(const Conv2dGeometry&, const float*, std::int64_t, std::int64_t, std::int64_t,
                            float*);
template void im2col<double>(const Conv2dGeometry&, const double*, std::int64_t, std::int64_t, std::int64_t,
                             double*);
template void col2im<float>(const Conv2dGeometry&, const float*, std::int64_t, std::int64_t, std::int64_t,
                            float*);
template void col2im<double>(const Conv2dGeometry&, const double*, std::int64_t, std::int64_t, std::int64_t,
                             double*);
template void gather_images<float>(const float*, std::int64_t, std::int64_t, std::int64_t, float*);
template void gather_images<double>(const double*, std::int64_t, std::int64_t, std::int64_t, double*);
template void im2col<bfloat16>(const Conv2dGeometry&, const bfloat16*, std::int64_t, std::int64_t,
                               std::int64_t, bfloat16*);
template void col2im<bfloat16>(const Conv2dGeometry&, const float*, std::int64_t, std::int64_t, std::int64_t,
                               bfloat16*);
template void gather_images<bfloat16>(const bfloat16*, std::int64_t, std::int64_t, std::int64_t, bfloat16*);

}  // namespace kiln::kernels::cuda
