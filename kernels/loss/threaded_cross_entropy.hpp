// Threaded cross-entropy over float logits (see cross_entropy.hpp), shared by avx512.cpp and avx2.cpp.
//
//   logits, log_probs, glogits [N, C]; labels, loss, gloss [N]; class_weight [C] or null
//
// The forward is a log-softmax over C (the level's fast kernel, passed in) followed by the per-sample loss;
// the backward is one pass per sample. Threads split the N samples, and each sample's sums are taken in
// the reference's order and in double, so the loss and glogits are bitwise those of the reference given
// the same log_probs, for any thread count, with or without class weights and label smoothing.
#pragma once

#include <cmath>
#include <cstdint>

#include "kernels/loss/cross_entropy.hpp"
#include "kernels/softmax/softmax.hpp"

namespace kiln::kernels::threaded {
namespace {

inline constexpr std::int64_t kParallelThreshold = 16384;  // below this many logits, threads cost more

// w[c], where a null class_weight means every class weighs 1.
inline double weight_of(const float* class_weight, std::int64_t c) {
  return class_weight ? static_cast<double>(class_weight[c]) : 1.0;
}

// q[c] = (1 - smoothing) * w[label] * [c == label] + (smoothing / C) * w[c]: the target distribution.
inline double target_mass(const float* class_weight, double smoothing, std::int64_t classes,
                          std::int64_t label, std::int64_t c) {
  const double smoothed = smoothing / static_cast<double>(classes) * weight_of(class_weight, c);
  return c == label ? (1.0 - smoothing) * weight_of(class_weight, label) + smoothed : smoothed;
}

}  // namespace

// log_probs = log_softmax(logits) over C; loss_n = -sum_c q[n, c] * log_probs[n, c]
template <typename LogSoftmax>
void cross_entropy_forward(const CrossEntropyGeometry& g, const float* logits, const std::int64_t* labels,
                           const float* class_weight, float smoothing, float* loss, float* log_probs,
                           LogSoftmax log_softmax_forward) {
  log_softmax_forward(SoftmaxGeometry{g.batch, g.classes, 1}, logits, log_probs);
  const double smoothing_d = static_cast<double>(smoothing);
#pragma omp parallel for schedule(static) if (g.batch * g.classes >= kParallelThreshold)
  for (std::int64_t n = 0; n < g.batch; ++n) {
    const float* sample_log_probs = log_probs + n * g.classes;
    double sample_loss = 0.0;
    for (std::int64_t c = 0; c < g.classes; ++c) {
      const double q = target_mass(class_weight, smoothing_d, g.classes, labels[n], c);
      sample_loss -= q * static_cast<double>(sample_log_probs[c]);
    }
    loss[n] = static_cast<float>(sample_loss);
  }
}

// glogits[n, c] = gloss[n] * (exp(log_probs[n, c]) * sum_c' q[n, c'] - q[n, c])
inline void cross_entropy_backward(const CrossEntropyGeometry& g, const float* log_probs,
                                   const std::int64_t* labels, const float* class_weight, float smoothing,
                                   const float* gloss, float* glogits) {
  const double smoothing_d = static_cast<double>(smoothing);
#pragma omp parallel for schedule(static) if (g.batch * g.classes >= kParallelThreshold)
  for (std::int64_t n = 0; n < g.batch; ++n) {
    double total_mass = 0.0;  // sum_c q[n, c]
    for (std::int64_t c = 0; c < g.classes; ++c) {
      total_mass += target_mass(class_weight, smoothing_d, g.classes, labels[n], c);
    }
    const double gloss_n = static_cast<double>(gloss[n]);
    for (std::int64_t c = 0; c < g.classes; ++c) {
      const std::int64_t nc = n * g.classes + c;
      const double softmax_nc = std::exp(static_cast<double>(log_probs[nc]));
      const double q = target_mass(class_weight, smoothing_d, g.classes, labels[n], c);
      glogits[nc] = static_cast<float>(gloss_n * (softmax_nc * total_mass - q));
    }
  }
}

}  // namespace kiln::kernels::threaded
