// SGD and Adam/AdamW updates and the weights' moving average on a CUDA device (optim_update.hpp), float and
// double, over many tensors per launch: an optimizer step updates every parameter of a model with a handful
// of launches instead of one (or several) per parameter, and --ema's average follows it with one more.
//
//   slice t: param, grad, state buffers [n_t], updated in place (SGD: momentum_buffer; Adam: exp_avg,
//            exp_avg_sq), all under one set of hyperparameters
//   slice t: average, weight [n_t], the average updated in place
//
// The launches go through the multi-tensor table (kernels/multi_tensor.cuh): up to a few hundred tensors
// each, a block per chunk of 4096 elements.
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
#include "kernels/multi_tensor.cuh"
#include "kernels/optim_update/optim_update.hpp"

namespace kiln::kernels::cuda {
namespace {

// One tensor's buffers, as a thread uses them (kStates: 1 for SGD, 2 for Adam).
template <typename T, int kStates>
struct TensorBuffers {
  T* param;
  const T* grad;
  T* state[kStates];
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

// One tensor's moving average and the weight it follows.
template <typename T>
struct AverageBuffers {
  T* average;
  const T* weight;
};

// average = decay * average + (1 - decay) * weight.
struct AverageStep {
  double keep, take;  // decay, 1 - decay

  template <typename T>
  __device__ void operator()(const AverageBuffers<T>& tensor, std::int64_t i) const {
    tensor.average[i] = static_cast<T>(keep * static_cast<double>(tensor.average[i]) +
                                       take * static_cast<double>(tensor.weight[i]));
  }
};

template <class Buffers, class Step>
__global__ void update_kernel(TensorTable<Buffers> table, Step step) {
  table.for_each_element_of_block([&](const Buffers& tensor, std::int64_t i) { step(tensor, i); });
}

template <typename T>
TensorBuffers<T, 1> buffers_of(const SgdSlice<T>& slice) {
  return {slice.param, slice.grad, {slice.momentum_buffer}};
}

template <typename T>
TensorBuffers<T, 2> buffers_of(const AdamSlice<T>& slice) {
  return {slice.param, slice.grad, {slice.exp_avg, slice.exp_avg_sq}};
}

template <typename T>
AverageBuffers<T> buffers_of(const AverageSlice<T>& slice) {
  return {slice.average, slice.weight};
}

// One launch per table of up to kTensorsPerLaunch tensors.
template <class Buffers, class Step, class Slice>
void update_in_launches(std::span<const Slice> slices, const Step& step, const char* name) {
  static_assert(sizeof(TensorTable<Buffers>) + sizeof(Step) <= kMaxKernelArgumentBytes,
                "the table must fit in kernel arguments");
  for_each_table<Buffers>(
      slices, [](const Slice& slice) { return buffers_of(slice); },
      [&](const TensorTable<Buffers>& table) {
        launch(name, update_kernel<Buffers, Step>, grid_blocks(table.chunks(), 1), kThreadsPerBlock, table,
               step);
      });
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
  update_in_launches<TensorBuffers<T, SgdStep::kStates>>(slices, step, "sgd_update");
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
  update_in_launches<TensorBuffers<T, AdamStep::kStates>>(slices, step, "adam_update");
}

template <typename T>
void average_update_many(double decay, std::span<const AverageSlice<T>> slices) {
  update_in_launches<AverageBuffers<T>>(slices, AverageStep{.keep = decay, .take = 1.0 - decay},
                                        "average_update");
}

template void sgd_update_many<float>(const SgdHyper&, std::span<const SgdSlice<float>>);
template void sgd_update_many<double>(const SgdHyper&, std::span<const SgdSlice<double>>);
template void adam_update_many<float>(const AdamHyper&, std::span<const AdamSlice<float>>);
template void adam_update_many<double>(const AdamHyper&, std::span<const AdamSlice<double>>);
template void average_update_many<float>(double, std::span<const AverageSlice<float>>);
template void average_update_many<double>(double, std::span<const AverageSlice<double>>);

}  // namespace kiln::kernels::cuda
