// Optimizer updates: one step of SGD or Adam over a dense buffer of n parameters, in place; and the step
// of a moving average of the weights (--ema, train/weight_average.hpp), which follows every optimizer step.
//
// param, grad and every state buffer hold n elements laid out alike (the parameter tensor's own dense
// storage). The formulas are PyTorch's (torch.optim.SGD, Adam, AdamW), per element:
//
// SGD (momentum_buffer is null when momentum == 0, and unused then):
//   g   = grad + weight_decay * p                                  (L2 penalty folded into the gradient)
//   if momentum != 0:
//     buf = first_step ? g : momentum * buf + (1 - dampening) * g  (the first step copies g, undamped)
//     g   = nesterov ? g + momentum * buf : buf
//   p  -= lr * g
//
// Adam / AdamW (exp_avg m and exp_avg_sq v start at 0; step t counts this parameter's updates from 1):
//   Adam:  g  = grad + weight_decay * p                            (L2 penalty, scaled by Adam like grad)
//   AdamW: p *= 1 - lr * weight_decay,  g = grad                   (decoupled decay, not scaled by Adam)
//   m  = beta1 * m + (1 - beta1) * g
//   v  = beta2 * v + (1 - beta2) * g^2
//   m_hat = m / (1 - beta1^t),  v_hat = v / (1 - beta2^t)          (bias corrections for the zero start)
//   p -= lr * m_hat / (sqrt(v_hat) + eps)
//
// Moving average (average starts as a copy of the weight; decay in [0, 1]):
//   average = decay * average + (1 - decay) * weight
#pragma once

#include <cstdint>
#include <span>

#include "core/device.hpp"

namespace kiln::kernels {

struct SgdHyper {
  double lr = 0.0, momentum = 0.0, dampening = 0.0, weight_decay = 0.0;
  bool nesterov = false;
  bool first_step = false;  // this parameter's first update with momentum: the buffer is written, not read
};

struct AdamHyper {
  double lr = 0.0, beta1 = 0.9, beta2 = 0.999, eps = 1e-8, weight_decay = 0.0;
  bool decoupled_weight_decay = false;  // true: AdamW
  std::int64_t step = 1;                // 1-based count of this parameter's updates, including this one
};

template <typename T>
void sgd_update(Device device, std::int64_t n, T* param, const T* grad, T* momentum_buffer,
                const SgdHyper& h);
template <typename T>
void adam_update(Device device, std::int64_t n, T* param, const T* grad, T* exp_avg, T* exp_avg_sq,
                 const AdamHyper& h);
template <typename T>
void average_update(Device device, std::int64_t n, T* average, const T* weight, double decay);

// Multi-tensor updates: one step of every parameter in `slices`, all under the same hyperparameters
// (first_step and step included) and on `device`. A slice is one parameter's buffers, n elements each laid
// out alike; momentum_buffer is null when momentum == 0. On the CPU they are the per-tensor updates above,
// one slice after another (bitwise the same results); on CUDA one kernel launch updates up to a few hundred
// slices (cuda_optim_update.cu).
template <typename T>
struct SgdSlice {
  T* param = nullptr;
  const T* grad = nullptr;
  T* momentum_buffer = nullptr;
  std::int64_t n = 0;
};
template <typename T>
struct AdamSlice {
  T* param = nullptr;
  const T* grad = nullptr;
  T* exp_avg = nullptr;
  T* exp_avg_sq = nullptr;
  std::int64_t n = 0;
};
template <typename T>
struct AverageSlice {
  T* average = nullptr;
  const T* weight = nullptr;
  std::int64_t n = 0;
};

template <typename T>
void sgd_update_many(Device device, const SgdHyper& h, std::span<const SgdSlice<T>> slices);
template <typename T>
void adam_update_many(Device device, const AdamHyper& h, std::span<const AdamSlice<T>> slices);
template <typename T>
void average_update_many(Device device, double decay, std::span<const AverageSlice<T>> slices);

namespace reference {
template <typename T>
void sgd_update(std::int64_t n, T* param, const T* grad, T* momentum_buffer, const SgdHyper& h);
template <typename T>
void adam_update(std::int64_t n, T* param, const T* grad, T* exp_avg, T* exp_avg_sq, const AdamHyper& h);
template <typename T>
void average_update(std::int64_t n, T* average, const T* weight, double decay);
}  // namespace reference

// Vectorized float updates (vectorized_optim_update.hpp), one namespace per instruction set: computed in
// double like the reference, so they match it to within one float rounding.
namespace avx512 {
void sgd_update(std::int64_t n, float* param, const float* grad, float* momentum_buffer, const SgdHyper& h);
void adam_update(std::int64_t n, float* param, const float* grad, float* exp_avg, float* exp_avg_sq,
                 const AdamHyper& h);
void average_update(std::int64_t n, float* average, const float* weight, double decay);
}  // namespace avx512
namespace avx2 {
void sgd_update(std::int64_t n, float* param, const float* grad, float* momentum_buffer, const SgdHyper& h);
void adam_update(std::int64_t n, float* param, const float* grad, float* exp_avg, float* exp_avg_sq,
                 const AdamHyper& h);
void average_update(std::int64_t n, float* average, const float* weight, double decay);
}  // namespace avx2

// CUDA kernels (cuda_optim_update.cu), on the current device, on the compute stream, asynchronously; every
// pointer in the slices is a device pointer. Computed in double like the reference, so they match it to
// within one float rounding. The per-tensor dispatch calls these with one slice.
namespace cuda {
template <typename T>
void sgd_update_many(const SgdHyper& h, std::span<const SgdSlice<T>> slices);
template <typename T>
void adam_update_many(const AdamHyper& h, std::span<const AdamSlice<T>> slices);
template <typename T>
void average_update_many(double decay, std::span<const AverageSlice<T>> slices);
}  // namespace cuda

}  // namespace kiln::kernels
