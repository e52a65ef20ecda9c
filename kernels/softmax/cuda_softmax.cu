// softmax and log-softmax on a CUDA device (softmax.hpp), forward and backward, float and double.
//
//   x, y, gy, gx  viewed as [outer, dim, inner]; a row is the `dim` elements one softmax normalizes,
//                 (o, 0..dim-1, i), `inner` apart, starting at o * dim * inner + i.
//
// The arithmetic is the reference's: each element is widened to double, exp, log and the row's max and
// sums are taken in double, and every output is rounded to T once. Only the order of the row sums differs
// (lanes add strided partial sums, then a fixed butterfly/tree combines them), so a result never depends
// on timing, and differs from the reference's by double rounding only, far below a float ulp.
//
// Launch geometry, by shape (kThreadsPerBlock = 256 threads a block, every kernel in a grid-stride loop over
// rows, so any row count runs in one launch of at most kMaxGridBlocks blocks):
//   inner > 1               one THREAD per row (o, i): consecutive threads take consecutive i, so at each
//                           k the warp reads one contiguous run of memory. Each thread walks its row
//                           serially (3 passes forward, 2 backward).
//   inner == 1, dim <= 512  one WARP per row (logits [N, C] with a few hundred classes): lane l takes
//                           k = l, l + 32, ...; butterfly shuffles combine the 32 partial max / sums so that
//                           every lane holds the row's value. 8 rows a block.
//   inner == 1, dim > 512   one BLOCK per row: the warps' butterfly results meet in shared memory, where
//                           every thread reads all 8 in the same order.
//
// NaN: the max is fmax, which skips NaN as the reference's does, and NaN is the identity it starts from;
// a NaN element still reaches the sum through exp, so its row comes out NaN, as in the reference.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

#include "core/cuda_runtime.hpp"
#include "kernels/cuda_launch.cuh"
#include "kernels/softmax/softmax.hpp"

namespace kiln::kernels::cuda {
namespace {

constexpr std::int64_t kWarpRowMaxDim = 512;  // longer contiguous rows get a whole block each
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

enum class RowOp { SoftmaxForward, LogSoftmaxForward, SoftmaxBackward, LogSoftmaxBackward };

struct Sum {
  __device__ double operator()(double a, double b) const { return a + b; }
};
// fmax returns the other operand when one is NaN: NaN is its identity, and NaN elements are skipped.
struct Max {
  __device__ double operator()(double a, double b) const { return fmax(a, b); }
};

// Combines one value per lane across the full warp; every lane gets the result, bitwise the same in each
// (at each level the two partners combine the same pair, and + and fmax are commutative). The whole warp
// must call it: the shuffles name all 32 lanes.
template <class Combine>
__device__ double warp_all_reduce(double value, Combine combine) {
  for (int offset = kWarpSize / 2; offset > 0; offset /= 2) {
    value = combine(value, __shfl_xor_sync(0xffffffffu, value, offset));
  }
  return value;
}

// One element of a row: element k sits at start + k * stride.
struct Row {
  std::int64_t start;
  std::int64_t stride;
  __device__ std::int64_t at(std::int64_t k) const { return start + k * stride; }
};

// The threads that share one row: which k each takes first, how far it steps, and how their partial
// results combine into the row's (every sharing thread gets it).
struct OneThread {
  __device__ std::int64_t first() const { return 0; }
  __device__ std::int64_t step() const { return 1; }
  template <class Combine>
  __device__ double all_reduce(double value, Combine) const {
    return value;
  }
};

struct OneWarp {
  __device__ std::int64_t first() const { return threadIdx.x % kWarpSize; }
  __device__ std::int64_t step() const { return kWarpSize; }
  template <class Combine>
  __device__ double all_reduce(double value, Combine combine) const {
    return warp_all_reduce(value, combine);
  }
};

struct OneBlock {
  double* warp_results;  // __shared__ [kWarpsPerBlock]
  __device__ std::int64_t first() const { return threadIdx.x; }
  __device__ std::int64_t step() const { return kThreadsPerBlock; }
  // The whole block must call it (it holds two __syncthreads).
  template <class Combine>
  __device__ double all_reduce(double value, Combine combine) const {
    value = warp_all_reduce(value, combine);
    if (threadIdx.x % kWarpSize == 0) warp_results[threadIdx.x / kWarpSize] = value;
    __syncthreads();  // every warp's result is written before anyone reads them
    double total = warp_results[0];
    for (int warp = 1; warp < kWarpsPerBlock; ++warp) total = combine(total, warp_results[warp]);
    __syncthreads();  // every thread has read them before the next all_reduce overwrites them
    return total;
  }
};

// Normalizes one row, the reference's formulas per op (softmax.hpp). Forward: in = x, out = y, gy unused.
// Backward: in = y, out = gx. Every thread of `lanes` calls it with the same row.
template <RowOp op, typename T, class Lanes>
__device__ void normalize_row(const Lanes& lanes, Row row, std::int64_t dim, const T* in, const T* gy,
                              T* out) {
  const std::int64_t first = lanes.first(), step = lanes.step();
  if constexpr (op == RowOp::SoftmaxForward || op == RowOp::LogSoftmaxForward) {
    // shift = max x: every exponent is then <= 0 and the largest term is 1, so exp neither overflows nor
    // leaves the sum at 0.
    double largest = kNaN;  // fmax's identity
    for (std::int64_t k = first; k < dim; k += step) {
      largest = fmax(largest, static_cast<double>(in[row.at(k)]));
    }
    const double shift = lanes.all_reduce(largest, Max{});
    double partial_sum = 0.0;
    for (std::int64_t k = first; k < dim; k += step) {
      partial_sum += exp(static_cast<double>(in[row.at(k)]) - shift);
    }
    const double sum = lanes.all_reduce(partial_sum, Sum{});
    if constexpr (op == RowOp::SoftmaxForward) {
      for (std::int64_t k = first; k < dim; k += step) {
        out[row.at(k)] = static_cast<T>(exp(static_cast<double>(in[row.at(k)]) - shift) / sum);
      }
    } else {
      const double log_sum = log(sum);
      for (std::int64_t k = first; k < dim; k += step) {
        out[row.at(k)] = static_cast<T>(static_cast<double>(in[row.at(k)]) - shift - log_sum);
      }
    }
  } else {
    // softmax: gx_k = y_k * (gy_k - sum_j gy_j y_j);  log_softmax: gx_k = gy_k - exp(y_k) * sum_j gy_j
    double partial = 0.0;
    for (std::int64_t k = first; k < dim; k += step) {
      const double gy_k = static_cast<double>(gy[row.at(k)]);
      partial += op == RowOp::SoftmaxBackward ? gy_k * static_cast<double>(in[row.at(k)]) : gy_k;
    }
    const double total = lanes.all_reduce(partial, Sum{});
    for (std::int64_t k = first; k < dim; k += step) {
      const double y_k = static_cast<double>(in[row.at(k)]), gy_k = static_cast<double>(gy[row.at(k)]);
      out[row.at(k)] =
          static_cast<T>(op == RowOp::SoftmaxBackward ? y_k * (gy_k - total) : gy_k - exp(y_k) * total);
    }
  }
}

// inner > 1: thread r normalizes row r = o * inner + i.
template <RowOp op, typename T>
__global__ void rows_by_thread_kernel(SoftmaxGeometry g, const T* in, const T* gy, T* out) {
  const std::int64_t rows = g.outer * g.inner;
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t r = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; r < rows;
       r += stride) {
    const std::int64_t o = r / g.inner, i = r % g.inner;
    normalize_row<op>(OneThread{}, Row{o * g.dim * g.inner + i, g.inner}, g.dim, in, gy, out);
  }
}

// inner == 1, short rows: warp w of block b starts at row b * kWarpsPerBlock + w. The row index is the same
// in all 32 lanes, so whole warps enter and leave the loop together, as the shuffles need.
template <RowOp op, typename T>
__global__ void rows_by_warp_kernel(std::int64_t rows, std::int64_t dim, const T* in, const T* gy, T* out) {
  const std::int64_t warps_in_grid = static_cast<std::int64_t>(gridDim.x) * kWarpsPerBlock;
  for (std::int64_t r = static_cast<std::int64_t>(blockIdx.x) * kWarpsPerBlock + threadIdx.x / kWarpSize;
       r < rows; r += warps_in_grid) {
    normalize_row<op>(OneWarp{}, Row{r * dim, 1}, dim, in, gy, out);
  }
}

// inner == 1, long rows: block b takes rows b, b + gridDim.x, ... (the same in every thread of the block,
// so all of it reaches each __syncthreads).
template <RowOp op, typename T>
__global__ void rows_by_block_kernel(std::int64_t rows, std::int64_t dim, const T* in, const T* gy, T* out) {
  __shared__ double warp_results[kWarpsPerBlock];
  for (std::int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    normalize_row<op>(OneBlock{warp_results}, Row{r * dim, 1}, dim, in, gy, out);
  }
}

template <RowOp op, typename T>
void normalize_rows(const SoftmaxGeometry& g, const T* in, const T* gy, T* out, const char* name) {
  const std::int64_t rows = g.outer * g.inner;
  if (rows == 0 || g.dim == 0) return;  // nothing to write (and a grid of 0 blocks is an error)
  if (g.inner > 1) {
    launch(name, rows_by_thread_kernel<op, T>, grid_blocks(rows, kThreadsPerBlock), kThreadsPerBlock, g, in,
           gy, out);
  } else if (g.dim <= kWarpRowMaxDim) {
    launch(name, rows_by_warp_kernel<op, T>, grid_blocks(rows, kWarpsPerBlock), kThreadsPerBlock, rows, g.dim,
           in, gy, out);
  } else {
    launch(name, rows_by_block_kernel<op, T>, grid_blocks(rows, 1), kThreadsPerBlock, rows, g.dim, in, gy,
           out);
  }
}

}  // namespace

template <typename T>
void softmax_forward(const SoftmaxGeometry& g, const T* x, T* y) {
  normalize_rows<RowOp::SoftmaxForward, T>(g, x, nullptr, y, "softmax_forward");
}

template <typename T>
void softmax_backward(const SoftmaxGeometry& g, const T* y, const T* gy, T* gx) {
  normalize_rows<RowOp::SoftmaxBackward, T>(g, y, gy, gx, "softmax_backward");
}

template <typename T>
void log_softmax_forward(const SoftmaxGeometry& g, const T* x, T* y) {
  normalize_rows<RowOp::LogSoftmaxForward, T>(g, x, nullptr, y, "log_softmax_forward");
}

template <typename T>
void log_softmax_backward(const SoftmaxGeometry& g, const T* y, const T* gy, T* gx) {
  normalize_rows<RowOp::LogSoftmaxBackward, T>(g, y, gy, gx, "log_softmax_backward");
}

template void softmax_forward<float>(const SoftmaxGeometry&, const float*, float*);
template void softmax_forward<double>(const SoftmaxGeometry&, const double*, double*);
template void softmax_backward<float>(const SoftmaxGeometry&, const float*, const float*, float*);
template void softmax_backward<double>(const SoftmaxGeometry&, const double*, const double*, double*);
template void log_softmax_forward<float>(const SoftmaxGeometry&, const float*, float*);
template void log_softmax_forward<double>(const SoftmaxGeometry&, const double*, double*);
template void log_softmax_backward<float>(const SoftmaxGeometry&, const float*, const float*, float*);
template void log_softmax_backward<double>(const SoftmaxGeometry&, const double*, const double*, double*);

}  // namespace kiln::kernels::cuda
