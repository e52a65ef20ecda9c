// Inverted dropout on a CUDA device (dropout.hpp), with the CPU's mask: element i draws
// u_i = uniform_open01(lane i % 4 of Philox block i / 4) from the same Philox functions (philox.hpp,
// compiled for the device), so for the same state the mask equals the reference's bit for bit.
//
//   x, y, mask [n]:  mask_i = (u_i >= p) ? 1 / (1 - p) : 0,  y_i = x_i * mask_i
//
// Launch geometry: blocks of kThreadsPerBlock threads in a grid-stride loop (at most kMaxGridBlocks blocks);
// a thread takes one Philox block, elements 4g .. 4g + 3 (those below n), computing the 10 rounds once for
// four elements as the vectorized CPU kernels do. T is float, double or bfloat16; p, u_i and the scale are
// opmath_t<T> (float for bfloat16). The scale 1 / (1 - p) is computed on the host exactly as the reference
// computes it, and y_i is the reference's single multiply by the stored mask_i in double (exact) rounded once
// to T, so nothing can round differently.
#include <algorithm>
#include <cstdint>

#include "core/cuda_runtime.hpp"
#include "kernels/cuda_launch.cuh"
#include "kernels/dropout/dropout.hpp"
#include "kernels/random/philox.hpp"
#include "kernels/random/random.hpp"

namespace kiln::kernels::cuda {
namespace {

template <typename T>
__global__ void dropout_forward_kernel(std::int64_t n, opmath_t<T> p, opmath_t<T> keep_scale,
                                       PhiloxState state, const T* x, T* y, T* mask) {
  using Scalar = opmath_t<T>;
  const std::int64_t groups = (n + 3) / 4;
  for (std::int64_t g = first_thread_index(); g < groups; g += grid_thread_count()) {
    const PhiloxBlock words = philox_block(state, static_cast<std::uint64_t>(g));
    const std::int64_t count = std::min<std::int64_t>(4, n - 4 * g);
    for (int lane = 0; lane < count; ++lane) {
      const std::int64_t i = 4 * g + lane;
      const T kept = static_cast<T>(uniform_open01<Scalar>(words[lane]) >= p ? keep_scale : Scalar(0));
      const double product = static_cast<double>(x[i]) * static_cast<double>(kept);
      mask[i] = kept;
      y[i] = static_cast<T>(product);  // x is read before y is written, so y may alias x
    }
  }
}

}  // namespace

template <typename T>
void dropout_forward(std::int64_t n, opmath_t<T> p, const PhiloxState& state, const T* x, T* y, T* mask) {
  using Scalar = opmath_t<T>;
  refuse_capture("dropout");
  if (n == 0) return;
  // As in the reference: when p == 1 nothing is kept (u < 1 always), so the scale is never used.
  const Scalar keep_scale = p < Scalar(1) ? Scalar(1) / (Scalar(1) - p) : Scalar(0);
  const std::int64_t groups = (n + 3) / 4;
  const auto blocks = grid_blocks(groups);
  launch("dropout_forward", dropout_forward_kernel<T>, blocks, kThreadsPerBlock, n, p, keep_scale, state, x,
         y, mask);
}

template void dropout_forward<float>(std::int64_t, float, const PhiloxState&, const float*, float*, float*);
template void dropout_forward<double>(std::int64_t, double, const PhiloxState&, const double*, double*,
                                      double*);
template void dropout_forward<bfloat16>(std::int64_t, float, const PhiloxState&, const bfloat16*, bfloat16*,
                                        bfloat16*);

}  // namespace kiln::kernels::cuda
