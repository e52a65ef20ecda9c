// Binary cross-entropy on logits, elementwise (multi-label classification: one sigmoid per label).
//
//   x logits [n], t targets [n] in [0, 1], pos_weight per element (null = 1): with p = sigmoid(x),
//   loss_i = -(pos_weight_i * t_i * log p_i + (1 - t_i) * log(1 - p_i))
//
// computed without overflow as (1 - t) * x + (1 + (pw - 1) * t) * softplus(-x), where
// softplus(-x) = log(1 + exp(-|x|)) + max(-x, 0).
//
// Backward from the per-element gradient gloss:
//   gx_i = gloss_i * ((1 + (pw - 1) * t) * p - pw * t)        (= gloss * (p - t) when pw = 1)
// The reduction (mean over elements) happens in core/.
#pragma once

#include <cstdint>

#include "core/device.hpp"

namespace kiln::kernels {

template <typename T>
void bce_with_logits_forward(Device device, std::int64_t n, const T* logits, const T* targets,
                             const T* pos_weight, T* loss);
template <typename T>
void bce_with_logits_backward(Device device, std::int64_t n, const T* logits, const T* targets,
                              const T* pos_weight, const T* gloss, T* glogits);

namespace reference {
template <typename T>
void bce_with_logits_forward(std::int64_t n, const T* logits, const T* targets, const T* pos_weight, T* loss);
template <typename T>
void bce_with_logits_backward(std::int64_t n, const T* logits, const T* targets, const T* pos_weight,
                              const T* gloss, T* glogits);
}  // namespace reference

// CUDA kernels (cuda_loss.cu), on the current device, on the compute stream, asynchronously; every pointer
// is a device pointer. One thread per element, the reference's double arithmetic.
namespace cuda {
template <typename T>
void bce_with_logits_forward(std::int64_t n, const T* logits, const T* targets, const T* pos_weight, T* loss);
template <typename T>
void bce_with_logits_backward(std::int64_t n, const T* logits, const T* targets, const T* pos_weight,
                              const T* gloss, T* glogits);
}  // namespace cuda

}  // namespace kiln::kernels
