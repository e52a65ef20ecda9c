// The avx2 float cross-entropy kernels: threaded_cross_entropy.hpp with this level's log-softmax
// (kernels/softmax/avx2.cpp).
#include "kernels/loss/cross_entropy.hpp"
#include "kernels/loss/threaded_cross_entropy.hpp"
#include "kernels/softmax/softmax.hpp"

namespace kiln::kernels::avx2 {

void cross_entropy_forward(const CrossEntropyGeometry& g, const float* logits, const std::int64_t* labels,
                           const float* class_weight, float smoothing, float* loss, float* log_probs) {
  threaded::cross_entropy_forward(
      g, logits, labels, class_weight, smoothing, loss, log_probs,
      [](const SoftmaxGeometry& sg, const float* x, float* y) { avx2::log_softmax_forward(sg, x, y); });
}

void cross_entropy_backward(const CrossEntropyGeometry& g, const float* log_probs, const std::int64_t* labels,
                            const float* class_weight, float smoothing, const float* gloss, float* glogits) {
  threaded::cross_entropy_backward(g, log_probs, labels, class_weight, smoothing, gloss, glogits);
}

}  // namespace kiln::kernels::avx2
