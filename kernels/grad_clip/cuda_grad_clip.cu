// Gradient clipping on a CUDA device (grad_clip.hpp), float and double, over many tensors per launch
// (kernels/multi_tensor.cuh): clipping a model's gradients takes three launches, and the host never reads
// the norm.
//
//   sum of squares   block b sums x^2 over its chunks in double and block_sum adds its threads' sums in a
//                    fixed tree, into block_sums[b]; then one block adds block_sums[0..blocks) the same way
//                    to *sum_of_squares. Each table of tensors (a few hundred) is one such pair of launches.
//   clip             every block computes the coefficient from *sum_of_squares itself (a few flops, the
//                    same answer in every block) and returns at once when it is 1: a step whose gradients
//                    are within max_norm writes nothing.
//
// Deterministic: which thread adds which term depends only on the tensors' sizes, never on timing.
#include <cuda_runtime.h>

#include <cstdint>
#include <span>

#include "core/storage.hpp"
#include "kernels/cuda_block_sum.cuh"
#include "kernels/cuda_launch.cuh"
#include "kernels/grad_clip/grad_clip.hpp"
#include "kernels/multi_tensor.cuh"

namespace kiln::kernels::cuda {
namespace {

template <typename T>
__global__ void block_sums_of_squares_kernel(TensorTable<const T*> table, double* block_sums) {
  double sum = 0.0;
  table.for_each_element_of_block([&](const T* data, std::int64_t i) {
    const auto value = static_cast<double>(data[i]);
    sum += value * value;
  });
  sum = block_sum(sum);
  if (threadIdx.x == 0) block_sums[blockIdx.x] = sum;
}

// One block: *sum_of_squares += block_sums[0] + ... + block_sums[blocks - 1].
__global__ void add_block_sums_kernel(const double* block_sums, int blocks, double* sum_of_squares) {
  double sum = 0.0;
  for (int b = static_cast<int>(threadIdx.x); b < blocks; b += kThreadsPerBlock) sum += block_sums[b];
  sum = block_sum(sum);
  if (threadIdx.x == 0) *sum_of_squares += sum;
}

template <typename T>
__global__ void clip_kernel(TensorTable<T*> table, const double* sum_of_squares, double max_norm) {
  const double coefficient = clip_coefficient(*sum_of_squares, max_norm);
  if (coefficient == 1.0) return;  // the same in every block: nothing to write anywhere
  table.for_each_element_of_block(
      [&](T* data, std::int64_t i) { data[i] = static_cast<T>(static_cast<double>(data[i]) * coefficient); });
}

static_assert(sizeof(TensorTable<const double*>) + 2 * sizeof(double*) <= kMaxKernelArgumentBytes,
              "the table must fit in kernel arguments");

}  // namespace

template <typename T>
void add_sum_of_squares_many(Device device, std::span<const ClipSlice<T>> slices, double* sum_of_squares) {
  for_each_table<const T*>(
      slices, [](const ClipSlice<T>& slice) { return static_cast<const T*>(slice.data); },
      [&](const TensorTable<const T*>& table) {
        const unsigned blocks = grid_blocks(table.chunks(), 1);
        // Freed when this returns, before the kernels have run: safe, since whatever reuses the block runs
        // later on the same (compute) stream.
        const auto block_sums = Storage::allocate(blocks * sizeof(double), device);
        auto* sums = static_cast<double*>(block_sums->data());
        launch("grad_clip: sums of squares", block_sums_of_squares_kernel<T>, blocks, kThreadsPerBlock, table,
               sums);
        launch("grad_clip: adding the sums", add_block_sums_kernel, 1, kThreadsPerBlock,
               static_cast<const double*>(sums), static_cast<int>(blocks), sum_of_squares);
      });
}

template <typename T>
void clip_to_norm_many(std::span<const ClipSlice<T>> slices, const double* sum_of_squares, double max_norm) {
  for_each_table<T*>(
      slices, [](const ClipSlice<T>& slice) { return slice.data; },
      [&](const TensorTable<T*>& table) {
        launch("grad_clip: scaling", clip_kernel<T>, grid_blocks(table.chunks(), 1), kThreadsPerBlock, table,
               sum_of_squares, max_norm);
      });
}

template void add_sum_of_squares_many<float>(Device, std::span<const ClipSlice<float>>, double*);
template void add_sum_of_squares_many<double>(Device, std::span<const ClipSlice<double>>, double*);
template void clip_to_norm_many<float>(std::span<const ClipSlice<float>>, const double*, double);
template void clip_to_norm_many<double>(std::span<const ClipSlice<double>>, const double*, double);

}  // namespace kiln::kernels::cuda
