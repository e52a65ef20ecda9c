// Inverted dropout: each element is kept with probability 1 - p and scaled by 1 / (1 - p), so the
// expected output equals the input and evaluation needs no rescaling.
//
//   x, y, mask [n];  u_i = philox_uniform(state, i) in (0, 1)
//   mask_i = (u_i >= p) ? 1 / (1 - p) : 0,   y_i = x_i * mask_i
//
// Element i always draws the same u_i for a given state, on any device and any thread count. The caller
// advances its generator by philox_blocks_for(n). The backward pass is gx = gy * mask (an elementwise
// multiply), so there is no dropout backward kernel. p == 1 drops everything (mask = 0).
//
// T is float, double or bfloat16. p, u_i and the scale 1 / (1 - p) are opmath_t<T> (float for bfloat16), so
// bfloat16 keeps exactly the elements float keeps for the same state. The mask stores T(scale): exact for
// float and double, and for bfloat16 wherever 1 / (1 - p) is a bfloat16 (p = 0, 0.2, 0.5, 0.75, ...);
// otherwise the scale rounded to bfloat16 (relative error <= 2^-9). y_i = T(x_i * mask_i), the exact
// product rounded once, so forward and backward scale by the same mask_i: the backward's gy * mask is the
// exact derivative of the forward, in every dtype.
#pragma once

#include <cstdint>

#include "core/bfloat16.hpp"
#include "core/device.hpp"
#include "kernels/random/philox.hpp"

namespace kiln::kernels {

template <typename T>
void dropout_forward(Device device, std::int64_t n, opmath_t<T> p, const PhiloxState& state, const T* x, T* y,
                     T* mask);

namespace reference {
template <typename T>
void dropout_forward(std::int64_t n, opmath_t<T> p, const PhiloxState& state, const T* x, T* y, T* mask);
}  // namespace reference

// The fast float kernels (vectorized_dropout.hpp), chosen by dispatch.cpp when cpu_level() allows.
namespace avx512 {
void dropout_forward(std::int64_t n, float p, const PhiloxState& state, const float* x, float* y,
                     float* mask);
}  // namespace avx512

namespace avx2 {
void dropout_forward(std::int64_t n, float p, const PhiloxState& state, const float* x, float* y,
                     float* mask);
}  // namespace avx2

// The CUDA kernel (cuda_dropout.cu, built when CMake finds a CUDA compiler): on the current device, on the
// compute stream, asynchronously; x, y and mask are device memory. Its mask is the reference's, bit for bit.
namespace cuda {
template <typename T>
void dropout_forward(std::int64_t n, opmath_t<T> p, const PhiloxState& state, const T* x, T* y, T* mask);
}  // namespace cuda

}  // namespace kiln::kernels
