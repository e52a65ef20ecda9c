// The single dispatch point for the loss kernels (cross-entropy and BCE-with-logits): every caller comes
// through here, and this is the only place that picks an implementation. Cross-entropy in float runs the
// AVX-512 or AVX2 kernels when cpu_level() allows; double (gradient checks only), the Reference level and
// BCE-with-logits run the reference kernels. A CUDA device runs the CUDA kernels (cuda_loss.cu), float and
// double, in a build with CUDA.
#include <type_traits>

#include "core/profiler.hpp"
#include "kernels/cpu_level.hpp"
#include "kernels/loss/bce_with_logits.hpp"
#include "kernels/loss/cross_entropy.hpp"

namespace kiln::kernels {

template <typename T>
void cross_entropy_forward(Device device, const CrossEntropyGeometry& g, const T* logits,
                           const std::int64_t* labels, const T* class_weight, T smoothing, T* loss,
                           T* log_probs) {
  profiler::Scope profile("cross_entropy_forward", device, dtype_of_v<T>);
#ifdef KILN_WITH_CUDA
  if (device.is_cuda())
    return cuda::cross_entropy_forward(g, logits, labels, class_weight, smoothing, loss, log_probs);
#endif
  require_cpu(device, "cross_entropy_forward");
  if constexpr (std::is_same_v<T, float>) {
    switch (cpu_level()) {
      case CpuLevel::Avx512:
        return avx512::cross_entropy_forward(g, logits, labels, class_weight, smoothing, loss, log_probs);
      case CpuLevel::Avx2:
        return avx2::cross_entropy_forward(g, logits, labels, class_weight, smoothing, loss, log_probs);
      case CpuLevel::Reference:
        break;
    }
  }
  reference::cross_entropy_forward(g, logits, labels, class_weight, smoothing, loss, log_probs);
}

template <typename T>
void cross_entropy_backward(Device device, const CrossEntropyGeometry& g, const T* log_probs,
                            const std::int64_t* labels, const T* class_weight, T smoothing, const T* gloss,
                            T* glogits) {
  profiler::Scope profile("cross_entropy_backward", device, dtype_of_v<T>);
#ifdef KILN_WITH_CUDA
  if (device.is_cuda())
    return cuda::cross_entropy_backward(g, log_probs, labels, class_weight, smoothing, gloss, glogits);
#endif
  require_cpu(device, "cross_entropy_backward");
  if constexpr (std::is_same_v<T, float>) {
    switch (cpu_level()) {
      case CpuLevel::Avx512:
        return avx512::cross_entropy_backward(g, log_probs, labels, class_weight, smoothing, gloss, glogits);
      case CpuLevel::Avx2:
        return avx2::cross_entropy_backward(g, log_probs, labels, class_weight, smoothing, gloss, glogits);
      case CpuLevel::Reference:
        break;
    }
  }
  reference::cross_entropy_backward(g, log_probs, labels, class_weight, smoothing, gloss, glogits);
}

template <typename T>
void bce_with_logits_forward(Device device, std::int64_t n, const T* logits, const T* targets,
                             const T* pos_weight, T* loss) {
  profiler::Scope profile("bce_with_logits_forward", device, dtype_of_v<T>);
#ifdef KILN_WITH_CUDA
  if (device.is_cuda()) return cuda::bce_with_logits_forward(n, logits, targets, pos_weight, loss);
#endif
  require_cpu(device, "bce_with_logits_forward");
  reference::bce_with_logits_forward(n, logits, targets, pos_weight, loss);
}

template <typename T>
void bce_with_logits_backward(Device device, std::int64_t n, const T* logits, const T* targets,
                              const T* pos_weight, const T* gloss, T* glogits) {
  profiler::Scope profile("bce_with_logits_backward", device, dtype_of_v<T>);
#ifdef KILN_WITH_CUDA
  if (device.is_cuda()) return cuda::bce_with_logits_backward(n, logits, targets, pos_weight, gloss, glogits);
#endif
  require_cpu(device, "bce_with_logits_backward");
  reference::bce_with_logits_backward(n, logits, targets, pos_weight, gloss, glogits);
}

template void cross_entropy_forward<float>(Device, const CrossEntropyGeometry&, const float*,
                                           const std::int64_t*, const float*, float, float*, float*);
template void cross_entropy_forward<double>(Device, const CrossEntropyGeometry&, const double*,
                                            const std::int64_t*, const double*, double, double*, double*);
template void cross_entropy_backward<float>(Device, const CrossEntropyGeometry&, const float*,
                                            const std::int64_t*, const float*, float, const float*, float*);
template void cross_entropy_backward<double>(Device, const CrossEntropyGeometry&, const double*,
                                             const std::int64_t*, const double*, double, const double*,
                                             double*);
template void bce_with_logits_forward<float>(Device, std::int64_t, const float*, const float*, const float*,
                                             float*);
template void bce_with_logits_forward<double>(Device, std::int64_t, const double*, const double*,
                                              const double*, double*);
template void bce_with_logits_backward<float>(Device, std::int64_t, const float*, const float*, const float*,
                                              const float*, float*);
template void bce_with_logits_backward<double>(Device, std::int64_t, const double*, const double*,
                                               const double*, const double*, double*);

}  // namespace kiln::kernels
