// Filling buffers with random numbers from a Philox state (see philox.hpp): element i of the draw is
// computed from (state, i) alone, so any parallel split of the loop gives the same numbers.
//
//   uniform: out[i] = low + (high - low) * u_i,  u_i in (0, 1)
//   normal:  out[i] = mean + std * z_i,          z_i standard normal
#pragma once

#include <cstdint>

#include "core/device.hpp"
#include "kernels/random/philox.hpp"

namespace kiln::kernels {

template <typename T>
void random_uniform(Device device, std::int64_t n, const PhiloxState& state, T low, T high, T* out);
template <typename T>
void random_normal(Device device, std::int64_t n, const PhiloxState& state, T mean, T std, T* out);

namespace reference {
template <typename T> void random_uniform(std::int64_t n, const PhiloxState& state, T low, T high, T* out);
template <typename T> void random_normal(std::int64_t n, const PhiloxState& state, T mean, T std, T* out);
}  // namespace reference

// CUDA kernels (cuda_random.cu, built when CMake finds a CUDA compiler). Each runs on the current device, on
// the compute stream, asynchronously; out is device memory. They draw the reference's numbers: uniform bit
// for bit, normal within a few ulps (the device's log, sin and cos round differently from glibc's).
namespace cuda {
// Every CUDA draw (these and dropout's) calls this first. A draw's Philox state is a kernel argument, so in
// a CUDA graph (core/cuda_graph.hpp) every launch would draw the same numbers: `op` refuses to be captured.
void refuse_capture(const char* op);

template <typename T>
void random_uniform(std::int64_t n, const PhiloxState& state, T low, T high, T* out);
template <typename T>
void random_normal(std::int64_t n, const PhiloxState& state, T mean, T std, T* out);
}  // namespace cuda

}  // namespace kiln::kernels
