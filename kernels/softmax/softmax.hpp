// Softmax and log-softmax along one axis.
//
// The tensor is dense and viewed as [outer, dim, inner]: the axis being normalized has length `dim` and
// stride `inner`. For NCHW logits normalized over channels: outer = N, dim = C, inner = H*W; for [N, C]
// logits: inner = 1.
//
//   softmax:      y_i = exp(x_i - max x) / sum_j exp(x_j - max x)      (max subtracted for stability)
//   log_softmax:  y_i = x_i - max x - log sum_j exp(x_j - max x)
//
// Backward, from the forward's output y and the incoming gradient gy:
//   softmax:      gx_i = y_i * (gy_i - sum_j gy_j y_j)
//   log_softmax:  gx_i = gy_i - exp(y_i) * sum_j gy_j
#pragma once

#include <cstdint>

#include "core/device.hpp"

namespace kiln::kernels {

struct SoftmaxGeometry {
  std::int64_t outer = 1, dim = 1, inner = 1;
};

template <typename T> void softmax_forward(Device device, const SoftmaxGeometry& g, const T* x, T* y);
template <typename T>
void softmax_backward(Device device, const SoftmaxGeometry& g, const T* y, const T* gy, T* gx);
template <typename T> void log_softmax_forward(Device device, const SoftmaxGeometry& g, const T* x, T* y);
template <typename T>
void log_softmax_backward(Device device, const SoftmaxGeometry& g, const T* y, const T* gy, T* gx);

namespace reference {
template <typename T> void softmax_forward(const SoftmaxGeometry& g, const T* x, T* y);
template <typename T> void softmax_backward(const SoftmaxGeometry& g, const T* y, const T* gy, T* gx);
template <typename T> void log_softmax_forward(const SoftmaxGeometry& g, const T* x, T* y);
template <typename T> void log_softmax_backward(const SoftmaxGeometry& g, const T* y, const T* gy, T* gx);
}  // namespace reference

// The fast float kernels (vectorized_softmax.hpp), chosen by dispatch.cpp when cpu_level() allows.
namespace avx512 {
void softmax_forward(const SoftmaxGeometry& g, const float* x, float* y);
void softmax_backward(const SoftmaxGeometry& g, const float* y, const float* gy, float* gx);
void log_softmax_forward(const SoftmaxGeometry& g, const float* x, float* y);
void log_softmax_backward(const SoftmaxGeometry& g, const float* y, const float* gy, float* gx);
}  // namespace avx512

namespace avx2 {
void softmax_forward(const SoftmaxGeometry& g, const float* x, float* y);
void softmax_backward(const SoftmaxGeometry& g, const float* y, const float* gy, float* gx);
void log_softmax_forward(const SoftmaxGeometry& g, const float* x, float* y);
void log_softmax_backward(const SoftmaxGeometry& g, const float* y, const float* gy, float* gx);
}  // namespace avx2

// CUDA kernels (cuda_softmax.cu), on the current device, on the compute stream, asynchronously: x, y, gy
// and gx are device pointers. The arithmetic is the reference's (exp, log and the row sums in double, each
// output rounded to T once); only the order of the row sums differs, a fixed tree instead of left to
// right, so results are deterministic and within double rounding of the reference's.
namespace cuda {
template <typename T>
void softmax_forward(const SoftmaxGeometry& g, const T* x, T* y);
template <typename T>
void softmax_backward(const SoftmaxGeometry& g, const T* y, const T* gy, T* gx);
template <typename T>
void log_softmax_forward(const SoftmaxGeometry& g, const T* x, T* y);
template <typename T>
void log_softmax_backward(const SoftmaxGeometry& g, const T* y, const T* gy, T* gx);
}  // namespace cuda

}  // namespace kiln::kernels
