// fill on a CUDA device (elementwise.hpp): out[i] = value, one thread per element in a grid-stride loop,
// so any n runs in one launch of at most kMaxGridBlocks blocks. T is float, double, bfloat16 or int64; the
// value arrives already in T, so nothing is rounded here.
#include <algorithm>
#include <cstdint>

#include "core/cuda_runtime.hpp"
#include "kernels/cuda_launch.cuh"
#include "kernels/elementwise/elementwise.hpp"

namespace kiln::kernels::cuda {
namespace {

template <typename T>
__global__ void fill_kernel(std::int64_t n, T value, T* out) {
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += stride) {
    out[i] = value;
  }
}

}  // namespace

template <typename T>
void fill(std::int64_t n, T value, T* out) {
  if (n == 0) return;
  const auto blocks = grid_blocks(n);
  launch("fill", fill_kernel<T>, blocks, kThreadsPerBlock, n, value, out);
}

template void fill<float>(std::int64_t, float, float*);
template void fill<double>(std::int64_t, double, double*);
template void fill<bfloat16>(std::int64_t, bfloat16, bfloat16*);
template void fill<std::int64_t>(std::int64_t, std::int64_t, std::int64_t*);
template void fill<std::int32_t>(std::int64_t, std::int32_t, std::int32_t*);

}  // namespace kiln::kernels::cuda
