// Cross-entropy over integer class labels, with optional label smoothing and per-class weights, computed
// per sample (the reduction to a mean or sum happens in core/, where it is differentiable).
//
//   logits [N, C], labels [N] (int64 in [0, C)), class_weight [C] (null = all ones), smoothing in [0, 1)
//   log_probs [N, C] = log_softmax(logits)  (written by the forward, read by the backward)
//   loss [N]:
//     loss_n = (1 - smoothing) * w[y_n] * (-log_probs[n, y_n])
//            + (smoothing / C) * sum_c w[c] * (-log_probs[n, c])
//
// These are PyTorch's semantics (torch.nn.functional.cross_entropy with reduction='none'); its mean
// reduction divides the sum of loss_n by sum_n w[y_n], which core/ does.
//
// Backward, from the per-sample gradient gloss [N]: with target distribution
//   q[n, c] = (1 - smoothing) * w[y_n] * [c == y_n] + (smoothing / C) * w[c],
//   glogits[n, c] = gloss[n] * (softmax[n, c] * sum_c' q[n, c'] - q[n, c]).
#pragma once

#include <cstdint>

#include "core/device.hpp"

namespace kiln::kernels {

struct CrossEntropyGeometry {
  std::int64_t batch = 1, classes = 1;
};

template <typename T>
void cross_entropy_forward(Device device, const CrossEntropyGeometry& g, const T* logits,
                           const std::int64_t* labels, const T* class_weight, T smoothing, T* loss,
                           T* log_probs);
template <typename T>
void cross_entropy_backward(Device device, const CrossEntropyGeometry& g, const T* log_probs,
                            const std::int64_t* labels, const T* class_weight, T smoothing, const T* gloss,
                            T* glogits);

namespace reference {
template <typename T>
void cross_entropy_forward(const CrossEntropyGeometry& g, const T* logits, const std::int64_t* labels,
                           const T* class_weight, T smoothing, T* loss, T* log_probs);
template <typename T>
void cross_entropy_backward(const CrossEntropyGeometry& g, const T* log_probs, const std::int64_t* labels,
                            const T* class_weight, T smoothing, const T* gloss, T* glogits);
}  // namespace reference

// The fast float kernels (threaded_cross_entropy.hpp), chosen by dispatch.cpp when cpu_level() allows.
namespace avx512 {
void cross_entropy_forward(const CrossEntropyGeometry& g, const float* logits, const std::int64_t* labels,
                           const float* class_weight, float smoothing, float* loss, float* log_probs);
void cross_entropy_backward(const CrossEntropyGeometry& g, const float* log_probs, const std::int64_t* labels,
                            const float* class_weight, float smoothing, const float* gloss, float* glogits);
}  // namespace avx512

namespace avx2 {
void cross_entropy_forward(const CrossEntropyGeometry& g, const float* logits, const std::int64_t* labels,
                           const float* class_weight, float smoothing, float* loss, float* log_probs);
void cross_entropy_backward(const CrossEntropyGeometry& g, const float* log_probs, const std::int64_t* labels,
                            const float* class_weight, float smoothing, const float* gloss, float* glogits);
}  // namespace avx2

// CUDA kernels (cuda_loss.cu), on the current device, on the compute stream, asynchronously; every pointer
// is a device pointer. The forward writes log_probs with cuda::log_softmax_forward, then one warp per sample
// sums its loss; the backward is one warp per sample. Arithmetic in double as in the reference, sums in a
// fixed order (deterministic). Labels are not checked on the host here (they live on the device; core/
// checks them before calling): a sample whose label is outside [0, C) gets a NaN loss, and a NaN row of
// glogits, and nothing is read out of bounds.
namespace cuda {
template <typename T>
void cross_entropy_forward(const CrossEntropyGeometry& g, const T* logits, const std::int64_t* labels,
                           const T* class_weight, T smoothing, T* loss, T* log_probs);
template <typename T>
void cross_entropy_backward(const CrossEntropyGeometry& g, const T* log_probs, const std::int64_t* labels,
                            const T* class_weight, T smoothing, const T* gloss, T* glogits);
}  // namespace cuda

}  // namespace kiln::kernels
