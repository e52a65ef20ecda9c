// Gradient clipping by global norm over many tensors (optim/clip.hpp), as two passes whose result stays on
// the device:
//
//   add_sum_of_squares_many:  *sum_of_squares += sum over slices t, elements i of x_t[i]^2   (in double)
//   clip_to_norm_many:        norm = sqrt(*sum_of_squares), c = max_norm / (norm + 1e-6);
//                             when norm is finite and c < 1: x_t[i] = T(x_t[i] * c) (in double), else nothing
//
// sum_of_squares is one double in `device` memory. On a GPU the norm is summed, and the clipping decided,
// by the kernels: clipping a step's gradients makes the host wait for nothing (reading the norm back, per
// tensor, made a step wait once per parameter). T is float or double; a slice is one gradient's dense
// buffer of n elements.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>
#include <span>

#include "core/device.hpp"

namespace kiln::kernels {

template <typename T>
struct ClipSlice {
  T* data = nullptr;
  std::int64_t n = 0;
};

template <typename T>
void add_sum_of_squares_many(Device device, std::span<const ClipSlice<T>> slices, double* sum_of_squares);
template <typename T>
void clip_to_norm_many(Device device, std::span<const ClipSlice<T>> slices, const double* sum_of_squares,
                       double max_norm);

// The coefficient gradients are scaled by, or 1 when they are left alone (a norm within max_norm, or not
// finite: the caller decides what a NaN or infinite gradient means). Host and device share it.
#ifdef __CUDACC__
__host__ __device__
#endif
    inline double
    clip_coefficient(double sum_of_squares, double max_norm) {
  const double norm = ::sqrt(sum_of_squares);  // the C function: host and device code both have it
  const bool finite = norm <= std::numeric_limits<double>::max();  // false for NaN and infinity
  const double coefficient = max_norm / (norm + 1e-6);
  return finite && coefficient < 1.0 ? coefficient : 1.0;
}

// The oracle: one loop each, in double, in order.
namespace reference {
template <typename T>
void add_sum_of_squares_many(std::span<const ClipSlice<T>> slices, double* sum_of_squares);
template <typename T>
void clip_to_norm_many(std::span<const ClipSlice<T>> slices, const double* sum_of_squares, double max_norm);
}  // namespace reference

// CUDA kernels (cuda_grad_clip.cu), on the current device, on the compute stream, asynchronously; every
// pointer is a device pointer. Many tensors per launch (kernels/multi_tensor.cuh). The sum adds in another
// order than the reference (each block's chunks, then the blocks in a fixed tree): it differs from it by
// double rounding, and gives the same bits on every run (no atomics).
namespace cuda {
template <typename T>
void add_sum_of_squares_many(Device device, std::span<const ClipSlice<T>> slices, double* sum_of_squares);
template <typename T>
void clip_to_norm_many(std::span<const ClipSlice<T>> slices, const double* sum_of_squares, double max_norm);
}  // namespace cuda

}  // namespace kiln::kernels
