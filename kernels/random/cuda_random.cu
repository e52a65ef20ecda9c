// Random fills on a CUDA device (random.hpp), drawing the CPU's numbers: element i of a draw comes from
// (state, i) alone through the same Philox functions (philox.hpp, compiled for the device), so a draw on the
// GPU equals the CPU's draw from the same state.
//
//   uniform: out[i] = low + (high - low) * u_i     bitwise the CPU's
//   normal:  out[i] = mean + std * z_i             within a few ulps of the CPU's (CUDA's double log, cos
//                                                  and sin differ from glibc's in the last bits)
//
// Launch geometry: blocks of kThreadsPerBlock threads in a grid-stride loop (at most kMaxGridBlocks blocks).
// A uniform thread takes one Philox block, elements 4g .. 4g + 3, computing the 10 rounds once for four
// numbers (the CPU's philox_uniform recomputes the block per element; the words, and so the numbers, are the
// same). A normal thread takes one element: its log and sin/cos outweigh the Philox rounds.
//
// The affine step is written with __fmul_rn / __fadd_rn (and the double versions): nvcc would otherwise
// contract low + span * u into one fused multiply-add, rounding once where the CPU (baseline x86-64, no
// FMA) rounds twice, and the numbers would differ in the last bit.
#include <algorithm>
#include <cstdint>

#include "core/cuda_runtime.hpp"
#include "core/error.hpp"
#include "kernels/cuda_launch.cuh"
#include "kernels/random/philox.hpp"
#include "kernels/random/random.hpp"

namespace kiln::kernels::cuda {
namespace {

// offset + scale * value with two roundings, as the CPU computes it.
__device__ float affine(float offset, float scale, float value) {
  return __fadd_rn(offset, __fmul_rn(scale, value));
}
__device__ double affine(double offset, double scale, double value) {
  return __dadd_rn(offset, __dmul_rn(scale, value));
}

// out[i] = low + span * u_i, one thread per Philox block (elements 4g .. 4g + 3 that are below n).
template <typename T>
__global__ void uniform_kernel(std::int64_t n, PhiloxState state, T low, T span, T* out) {
  const std::int64_t groups = (n + 3) / 4;
  for (std::int64_t g = first_thread_index(); g < groups; g += grid_thread_count()) {
    const PhiloxBlock words = philox_block(state, static_cast<std::uint64_t>(g));
    const std::int64_t count = std::min<std::int64_t>(4, n - 4 * g);
    for (int lane = 0; lane < count; ++lane)
      out[4 * g + lane] = affine(low, span, uniform_open01<T>(words[lane]));
  }
}

// out[i] = mean + std * z_i, one thread per element.
template <typename T>
__global__ void normal_kernel(std::int64_t n, PhiloxState state, T mean, T std, T* out) {
  for (std::int64_t i = first_thread_index(); i < n; i += grid_thread_count())
    out[i] = affine(mean, std, philox_normal<T>(state, static_cast<std::uint64_t>(i)));
}

}  // namespace

void refuse_capture(const char* op) {
  KILN_CHECK(
      !kiln::cuda::is_capturing(kiln::cuda::current_device()), op,
      ": random numbers cannot be drawn inside a CUDA graph: its Philox state is a kernel argument, so "
      "every launch of the graph would draw the same numbers");
}

template <typename T>
void random_uniform(std::int64_t n, const PhiloxState& state, T low, T high, T* out) {
  refuse_capture("random_uniform");
  if (n == 0) return;
  // high - low is rounded on the host, in T, as the reference rounds it.
  launch("random_uniform", uniform_kernel<T>, grid_blocks((n + 3) / 4), kThreadsPerBlock, n, state, low,
         static_cast<T>(high - low), out);
}

template <typename T>
void random_normal(std::int64_t n, const PhiloxState& state, T mean, T std, T* out) {
  refuse_capture("random_normal");
  if (n == 0) return;
  launch("random_normal", normal_kernel<T>, grid_blocks(n), kThreadsPerBlock, n, state, mean, std, out);
}

template void random_uniform(std::int64_t, const PhiloxState&, float, float, float*);
template void random_uniform(std::int64_t, const PhiloxState&, double, double, double*);
template void random_normal(std::int64_t, const PhiloxState&, float, float, float*);
template void random_normal(std::int64_t, const PhiloxState&, double, double, double*);

}  // namespace kiln::kernels::cuda
