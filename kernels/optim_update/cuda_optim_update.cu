// SGD and Adam/AdamW updates on a CUDA device (optim_update.hpp), float and double, over many tensors per
// launch: an optimizer step updates every parameter of a model with a handful of launches instead of one
// (or several) per parameter.
//
//   slice t: param, grad, state buffers [n_t], updated in place (SGD: momentum_buffer; Adam: exp_avg,
//            exp_avg_sq), all under one set of hyperparameters
//
// Each tensor is cut into chunks of kChunk elements. A launch takes a table of up to kTensorsPerLaunch
// tensors by value, as a kernel argument: their pointers, sizes, and the number of the first chunk of
// each (a prefix sum). Block b updates chunk b (then b + gridDim.x, ..., a grid-stride loop over chunks):
// it finds the tensor holding the chunk by binary search in the table, and its 256 threads walk the
// chunk's elements, thread j taking elements j, j + 256, ..., coalesced. Longer lists take one launch per
// kTensorsPerLaunch tensors; the host table is refilled after each launch, which is safe because a launch
// copies its arguments when it is enqueued.
//
// Kernel arguments may take 32 KiB (32,764 bytes) on sm_70 and later from CUDA 12.1, 4 KiB before; the
// table is sized to fit (static_assert below). Tensors with no elements are left out of the table.
//
// Arithmetic per element is the reference's, in double, each stored value rounded to T once; the scalars
// that do not depend on the element (Adam's bias corrections) are computed on the host exactly as the
// reference does. nvcc fuses a * b + c into one FMA (as GCC does for the AVX kernels), a rounding in
// double, so results match the reference's to within one float rounding. Elements are independent: no
// reductions, no atomics, deterministic.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <span>

#include "core/cuda_runtime.hpp"
#include "kernels/cuda_launch.cuh"
#include "kernels/optim_update/optim_update.hpp"

namespace kiln::kernels::cuda {
namespace {

constexpr std::int64_t kChunk = 16 * kThreadsPerBlock;  // elements a block updates per chunk: 16 per thread

#if CUDART_VERSION >= 12010
constexpr int kTensorsPerLaunch = 320;  // 320 * 48 bytes for Adam: 15 KiB of the 32 KiB allowed
constexpr std::size_t kMaxKernelArgumentBytes = 32764;
#else
constexpr int kTensorsPerLaunch = 72;  // 72 * 48 bytes for Adam: 3.4 KiB of the 4 KiB allowed
constexpr std::size_t kMaxKernelArgumentBytes = 4096;
#endif

// One tensor's buffers, as a thread uses them (kStates: 1 for SGD, 2 for Adam).
template <typename T, int kStates>
struct TensorBuffers {
  T* param;
  const T* grad;
  T* state[kStates];
};

// Up to kTensorsPerLaunch tensors for one launch. Tensor t covers chunks [first_chunk[t], first_chunk[t+1]);
// every tensor in the table has at least one element, so first_chunk is strictly increasing.
template <typename T, int kStates>
struct TensorTable {
  T* param[kTensorsPerLaunch];
  const T* grad[kTensorsPerLaunch];
  T* state[kStates][kTensorsPerLaunch];
  std::int64_t n[kTensorsPerLaunch];
  std::int64_t first_chunk[kTensorsPerLaunch + 1];
  int count;
};

// p -= lr * g, with weight decay, momentum and Nesterov as optim_update.hpp writes them.
struct SgdStep {
  static constexpr int kStates = 1;  // momentum_buffer (null and unused when momentum == 0)
  double lr, momentum, undamped, weight_decay;
  bool use_momentum, nesterov, first_step;

  template <typename T>
  __device__ void operator()(const TensorBuffers<T, kStates>& tensor, std::int64_t i) const {
    const double p = static_cast<double>(tensor.param[i]);
    double g = static_cast<double>(tensor.grad[i]) + weight_decay * p;
    if (use_momentum) {
      T* momentum_buffer = tensor.state[0];
      const double buf = first_step ? g : momentum * static_cast<double>(momentum_buffer[i]) + undamped * g;
      momentum_buffer[i] = static_cast<T>(buf);
      g = nesterov ? g + momentum * buf : buf;
    }
    tensor.param[i] = static_cast<T>(p - lr * g);
  }
};

// One Adam / AdamW step as optim_update.hpp writes it.
struct AdamStep {
  static constexpr int kStates = 2;  // exp_avg, exp_avg_sq
  double lr, beta1, beta2, one_minus_beta1, one_minus_beta2, eps;
  double bias_correction1, bias_correction2, shrink, gradient_decay;

  template <typename T>
  __device__ void operator()(const TensorBuffers<T, kStates>& tensor, std::int64_t i) const {
    T* exp_avg = tensor.state[0];
    T* exp_avg_sq = tensor.state[1];
    const double p = static_cast<double>(tensor.param[i]);
    const double g = static_cast<double>(tensor.grad[i]) + gradient_decay * p;
    const double m = beta1 * static_cast<double>(exp_avg[i]) + one_minus_beta1 * g;
    const double v = beta2 * static_cast<double>(exp_avg_sq[i]) + one_minus_beta2 * g * g;
    exp_avg[i] = static_cast<T>(m);
    exp_avg_sq[i] = static_cast<T>(v);
    const double m_hat = m / bias_correction1;
    const double v_hat = v / bias_correction2;
    tensor.param[i] = static_cast<T>(p * shrink - lr * m_hat / (sqrt(v_hat) + eps));
  }
};

// The tensor holding `chunk`: the last t with first_chunk[t] <= chunk.
template <typename T, int kStates>
__device__ int tensor_of_chunk(const TensorTable<T, kStates>& table, std::int64_t chunk) {
  int low = 0, high = table.count - 1;
  while (low < high) {
    const int middle = (low + high + 1) / 2;
    if (table.first_chunk[middle] <= chunk) {
      low = middle;
    } else {
      high = middle - 1;
    }
  }
  return low;
}

template <typename T, class Step>
__global__ void update_kernel(TensorTable<T, Step::kStates> table, Step step) {
  const std::int64_t chunks = table.first_chunk[table.count];
  for (std::int64_t chunk = blockIdx.x; chunk < chunks; chunk += gridDim.x) {
    const int t = tensor_of_chunk(table, chunk);
    TensorBuffers<T, Step::kStates> tensor{table.param[t], table.grad[t], {}};
    for (int s = 0; s < Step::kStates; ++s) tensor.state[s] = table.state[s][t];
    const std::int64_t begin = (chunk - table.first_chunk[t]) * kChunk;
    const std::int64_t end = begin + kChunk < table.n[t] ? begin + kChunk : table.n[t];
    for (std::int64_t i = begin + threadIdx.x; i < end; i += kThreadsPerBlock) step(tensor, i);
  }
}

template <typename T>
void set_buffers(TensorTable<T, 1>& table, int t, const SgdSlice<T>& slice) {
  table.param[t] = slice.param;
  table.grad[t] = slice.grad;
  table.state[0][t] = slice.momentum_buffer;
}

template <typename T>
void set_buffers(TensorTable<T, 2>& table, int t, const AdamSlice<T>& slice) {
  table.param[t] = slice.param;
  table.grad[t] = slice.grad;
  table.state[0][t] = slice.exp_avg;
  table.state[1][t] = slice.exp_avg_sq;
}

// Fills tables from `slices` and launches each one full (and the last, partial one).
template <typename T, class Step, class Slice>
void update_in_launches(std::span<const Slice> slices, const Step& step, const char* name) {
  using Table = TensorTable<T, Step::kStates>;
  static_assert(sizeof(Table) + sizeof(Step) <= kMaxKernelArgumentBytes,
                "the table must fit in kernel arguments");
  Table table{};
  auto launch_table = [&] {
    if (table.count == 0) return;
    const std::int64_t chunks = table.first_chunk[table.count];
    launch(name, update_kernel<T, Step>, grid_blocks(chunks, 1), kThreadsPerBlock, table, step);
    table.count = 0;  // the launch holds its own copy of the table
  };
  for (const Slice& slice : slices) {
    if (slice.n == 0) continue;
    const int t = table.count;
    set_buffers(table, t, slice);
    table.n[t] = slice.n;
    table.first_chunk[t + 1] = table.first_chunk[t] + (slice.n + kChunk - 1) / kChunk;
    if (++table.count == kTensorsPerLaunch) launch_table();
  }
  launch_table();
}

}  // namespace

template <typename T>
void sgd_update_many(const SgdHyper& h, std::span<const SgdSlice<T>> slices) {
  const SgdStep step{.lr = h.lr,
                     .momentum = h.momentum,
                     .undamped = 1.0 - h.dampening,
                     .weight_decay = h.weight_decay,
                     .use_momentum = h.momentum != 0.0,
                     .nesterov = h.nesterov,
                     .first_step = h.first_step};
  update_in_launches<T>(slices, step, "sgd_update");
}

template <typename T>
void adam_update_many(const AdamHyper& h, std::span<const AdamSlice<T>> slices) {
  // The scalars exactly as the reference computes them.
  const auto step_count = static_cast<double>(h.step);
  const AdamStep step{.lr = h.lr,
                      .beta1 = h.beta1,
                      .beta2 = h.beta2,
                      .one_minus_beta1 = 1.0 - h.beta1,
                      .one_minus_beta2 = 1.0 - h.beta2,
                      .eps = h.eps,
                      .bias_correction1 = 1.0 - std::pow(h.beta1, step_count),
                      .bias_correction2 = 1.0 - std::pow(h.beta2, step_count),
                      // AdamW shrinks the parameter directly; Adam adds the decay to the gradient instead.
                      .shrink = h.decoupled_weight_decay ? 1.0 - h.lr * h.weight_decay : 1.0,
                      .gradient_decay = h.decoupled_weight_decay ? 0.0 : h.weight_decay};
  update_in_launches<T>(slices, step, "adam_update");
}

template void sgd_update_many<float>(const SgdHyper&, std::span<const SgdSlice<float>>);
template void sgd_update_many<double>(const SgdHyper&, std::span<const SgdSlice<double>>);
template void adam_update_many<float>(const AdamHyper&, std::span<const AdamSlice<float>>);
template void adam_update_many<double>(const AdamHyper&, std::span<const AdamSlice<double>>);

}  // namespace kiln::kernels::cuda
