// Reference cross-entropy with label smoothing and class weights (PyTorch's semantics, see
// cross_entropy.hpp). Plain loops that read like the formulas; the oracle faster versions are tested
// against. Sums are taken in double and rounded to T once.
#include <cmath>
#include <cstdint>

#include "kernels/loss/cross_entropy.hpp"
#include "kernels/softmax/softmax.hpp"

namespace kiln::kernels::reference {
namespace {

// w[c], where a null class_weight means every class weighs 1.
template <typename T>
double weight_of(const T* class_weight, std::int64_t c) {
  return class_weight ? static_cast<double>(class_weight[c]) : 1.0;
}

// The target distribution the loss pulls the softmax towards, for one sample with label `label`:
//   q[c] = (1 - smoothing) * w[label] * [c == label] + (smoothing / C) * w[c]
// The loss is -sum_c q[c] * log_probs[c].
template <typename T>
double target_mass(const T* class_weight, double smoothing, std::int64_t classes, std::int64_t label,
                   std::int64_t c) {
  const double smoothed = smoothing / static_cast<double>(classes) * weight_of(class_weight, c);
  return c == label ? (1.0 - smoothing) * weight_of(class_weight, label) + smoothed : smoothed;
}

}  // namespace

// logits, log_probs [N, C]; labels, loss [N]
//   log_probs = log_softmax(logits) over C
//   loss_n = -sum_c q[n, c] * log_probs[n, c]
//          = (1 - smoothing) * w[y_n] * (-log_probs[n, y_n]) + (smoothing / C) * sum_c w[c] * (-log_probs[n,
//          c])
template <typename T>
void cross_entropy_forward(const CrossEntropyGeometry& g, const T* logits, const std::int64_t* labels,
                           const T* class_weight, T smoothing, T* loss, T* log_probs) {
  // [N, C] logits normalized over C is the softmax view [outer = N, dim = C, inner = 1].
  log_softmax_forward(SoftmaxGeometry{g.batch, g.classes, 1}, logits, log_probs);
  for (std::int64_t n = 0; n < g.batch; ++n) {
    const T* sample_log_probs = log_probs + n * g.classes;
    double sample_loss = 0.0;
    for (std::int64_t c = 0; c < g.classes; ++c) {
      const double q = target_mass(class_weight, static_cast<double>(smoothing), g.classes, labels[n], c);
      sample_loss -= q * static_cast<double>(sample_log_probs[c]);
    }
    loss[n] = static_cast<T>(sample_loss);
  }
}

// gloss [N]; log_probs, glogits [N, C]
// d(-sum_c' q[c'] log_softmax(x)[c']) / dx[c] = softmax[c] * sum_c' q[c'] - q[c], with softmax =
// exp(log_probs). (Without weights or smoothing, sum q = 1 and this is the familiar softmax - onehot.)
template <typename T>
void cross_entropy_backward(const CrossEntropyGeometry& g, const T* log_probs, const std::int64_t* labels,
                            const T* class_weight, T smoothing, const T* gloss, T* glogits) {
  const double smoothing_d = static_cast<double>(smoothing);
  for (std::int64_t n = 0; n < g.batch; ++n) {
    double total_mass = 0.0;  // sum_c q[n, c]
    for (std::int64_t c = 0; c < g.classes; ++c) {
      total_mass += target_mass(class_weight, smoothing_d, g.classes, labels[n], c);
    }
    for (std::int64_t c = 0; c < g.classes; ++c) {
      const std::int64_t nc = n * g.classes + c;
      const double softmax_nc = std::exp(static_cast<double>(log_probs[nc]));
      const double q = target_mass(class_weight, smoothing_d, g.classes, labels[n], c);
      glogits[nc] = static_cast<T>(static_cast<double>(gloss[n]) * (softmax_nc * total_mass - q));
    }
  }
}

template void cross_entropy_forward<float>(const CrossEntropyGeometry&, const float*, const std::int64_t*,
                                           const float*, float, float*, float*);
template void cross_entropy_forward<double>(const CrossEntropyGeometry&, const double*, const std::int64_t*,
                                            const double*, double, double*, double*);
template void cross_entropy_backward<float>(const CrossEntropyGeometry&, const float*, const std::int64_t*,
                                            const float*, float, const float*, float*);
template void cross_entropy_backward<double>(const CrossEntropyGeometry&, const double*, const std::int64_t*,
                                             const double*, double, const double*, double*);

}  // namespace kiln::kernels::reference
