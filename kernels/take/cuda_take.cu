// take on a CUDA device (take.hpp): one thread per output element in a grid-stride loop. Consecutive threads
// read consecutive indices and write consecutive outputs (coalesced); the table reads land wherever the
// indices point, and a table as small as a class-weight vector stays in cache.
#include <cstdint>
#include <limits>

#include "kernels/cuda_launch.cuh"
#include "kernels/take/take.hpp"

namespace kiln::kernels::cuda {
namespace {

template <typename T>
__global__ void take_kernel(std::int64_t n, const T* table, std::int64_t size, const std::int64_t* indices,
                            T* y) {
  for (std::int64_t i = first_thread_index(); i < n; i += grid_thread_count()) {
    const std::int64_t index = indices[i];
    y[i] = index >= 0 && index < size ? table[index] : std::numeric_limits<T>::quiet_NaN();
  }
}

}  // namespace

template <typename T>
void take(std::int64_t n, const T* table, std::int64_t size, const std::int64_t* indices, T* y) {
  if (n == 0) return;  // a grid of 0 blocks is a launch error
  launch("take", take_kernel<T>, grid_blocks(n), kThreadsPerBlock, n, table, size, indices, y);
}

template void take<float>(std::int64_t, const float*, std::int64_t, const std::int64_t*, float*);
template void take<double>(std::int64_t, const double*, std::int64_t, const std::int64_t*, double*);

}  // namespace kiln::kernels::cuda
