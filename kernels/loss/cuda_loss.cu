// Cross-entropy and binary cross-entropy on logits on a CUDA device (cross_entropy.hpp,
// bce_with_logits.hpp), float and double. The formulas, and the double arithmetic with one rounding to T
// per output, are the reference kernels'; read those for the derivations.
//
// Cross-entropy, logits / log_probs / glogits [N, C], labels / loss / gloss [N], class_weight [C] or null:
//   forward   log_probs = cuda::log_softmax_forward(logits) (cuda_softmax.cu), as the reference calls the
//             reference log_softmax; then one WARP per sample: lane l takes classes c = l, l + 32, ... and
//             sums q[c] * log_probs[c] (the rounded log_probs, as the reference reads them back), and a
//             butterfly of shuffles adds the 32 partial sums in a fixed order: deterministic.
//   backward  one WARP per sample: the same lanes sum q[c] (the target's total mass), then write
//             glogits[n, c] = gloss[n] * (exp(log_probs[n, c]) * total - q[c]).
//   8 samples a block (256 threads), warps in a grid-stride loop over samples.
//   Labels: core/ checks them on the host before it calls; the kernels cannot throw, so a label outside
//   [0, C) turns that sample's loss (forward) or glogits row (backward) into NaN, and w[label] is never read.
//
// BCE-with-logits, every buffer [n]: one THREAD per element in a grid-stride loop.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>

#include "core/cuda_runtime.hpp"
#include "kernels/cuda_launch.cuh"
#include "kernels/loss/bce_with_logits.hpp"
#include "kernels/loss/cross_entropy.hpp"
#include "kernels/softmax/softmax.hpp"

namespace kiln::kernels::cuda {
namespace {

constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

// The sum over the full warp, the same in every lane (partners add the same pair: + is commutative). The
// whole warp must call it.
__device__ double warp_all_sum(double value) {
  for (int offset = kWarpSize / 2; offset > 0; offset /= 2)
    value += __shfl_xor_sync(0xffffffffu, value, offset);
  return value;
}

// One sample's target distribution, in the reference's terms and arithmetic:
//   q[c] = (1 - smoothing) * w[label] * [c == label] + (smoothing / C) * w[c]
template <typename T>
struct TargetMass {
  const T* class_weight;  // null: every class weighs 1
  double smoothing;
  std::int64_t classes;
  std::int64_t label;  // in [0, classes): callers check first

  __device__ double weight_of(std::int64_t c) const {
    return class_weight ? static_cast<double>(class_weight[c]) : 1.0;
  }
  __device__ double operator()(std::int64_t c) const {
    const double smoothed = smoothing / static_cast<double>(classes) * weight_of(c);
    return c == label ? (1.0 - smoothing) * weight_of(label) + smoothed : smoothed;
  }
};

// Warp w of block b starts at sample b * kWarpsPerBlock + w; the sample index is warp-uniform, so whole
// warps enter the loop body (and its shuffles) together.
__device__ std::int64_t first_sample_of_warp() {
  return static_cast<std::int64_t>(blockIdx.x) * kWarpsPerBlock + threadIdx.x / kWarpSize;
}
__device__ std::int64_t warps_in_grid() { return static_cast<std::int64_t>(gridDim.x) * kWarpsPerBlock; }

// loss_n = -sum_c q[n, c] * log_probs[n, c]
template <typename T>
__global__ void cross_entropy_loss_kernel(CrossEntropyGeometry g, const T* log_probs,
                                          const std::int64_t* labels, const T* class_weight, double smoothing,
                                          T* loss) {
  const int lane = threadIdx.x % kWarpSize;
  for (std::int64_t n = first_sample_of_warp(); n < g.batch; n += warps_in_grid()) {
    const std::int64_t label = labels[n];
    if (label < 0 || label >= g.classes) {  // the same in the whole warp: no shuffle is skipped by part of it
      if (lane == 0) loss[n] = static_cast<T>(kNaN);
      continue;
    }
    const TargetMass<T> q{class_weight, smoothing, g.classes, label};
    const T* sample_log_probs = log_probs + n * g.classes;
    double partial = 0.0;
    for (std::int64_t c = lane; c < g.classes; c += kWarpSize) {
      partial += q(c) * static_cast<double>(sample_log_probs[c]);
    }
    const double total = warp_all_sum(partial);
    if (lane == 0) loss[n] = static_cast<T>(-total);
  }
}

// glogits[n, c] = gloss[n] * (softmax[n, c] * sum_c' q[n, c'] - q[n, c]), softmax = exp(log_probs)
template <typename T>
__global__ void cross_entropy_backward_kernel(CrossEntropyGeometry g, const T* log_probs,
                                              const std::int64_t* labels, const T* class_weight,
                                              double smoothing, const T* gloss, T* glogits) {
  const int lane = threadIdx.x % kWarpSize;
  for (std::int64_t n = first_sample_of_warp(); n < g.batch; n += warps_in_grid()) {
    const std::int64_t label = labels[n];
    T* sample_glogits = glogits + n * g.classes;
    if (label < 0 || label >= g.classes) {  // warp-uniform, as above
      for (std::int64_t c = lane; c < g.classes; c += kWarpSize) sample_glogits[c] = static_cast<T>(kNaN);
      continue;
    }
    const TargetMass<T> q{class_weight, smoothing, g.classes, label};
    double partial_mass = 0.0;
    for (std::int64_t c = lane; c < g.classes; c += kWarpSize) partial_mass += q(c);
    const double total_mass = warp_all_sum(partial_mass);
    const T* sample_log_probs = log_probs + n * g.classes;
    const double gloss_n = static_cast<double>(gloss[n]);
    for (std::int64_t c = lane; c < g.classes; c += kWarpSize) {
      const double softmax_c = exp(static_cast<double>(sample_log_probs[c]));
      sample_glogits[c] = static_cast<T>(gloss_n * (softmax_c * total_mass - q(c)));
    }
  }
}

// ---- BCE-with-logits ----------------------------------------------------------------------------------

template <typename T>
__device__ double pos_weight_of(const T* pos_weight, std::int64_t i) {
  return pos_weight ? static_cast<double>(pos_weight[i]) : 1.0;
}

// softplus(-x) = log(1 + exp(-|x|)) + max(-x, 0): the exponent is never positive. The max is written as
// std::max is (a NaN x passes through), like the reference's.
__device__ double softplus_of_negative(double x) {
  const double negative_x = -x;
  return log1p(exp(-fabs(x))) + (negative_x < 0.0 ? 0.0 : negative_x);
}

// sigmoid(x), choosing the form whose exp cannot overflow (a NaN x takes the second, as in the reference).
__device__ double stable_sigmoid(double x) {
  if (x >= 0.0) return 1.0 / (1.0 + exp(-x));
  const double e = exp(x);
  return e / (1.0 + e);
}

// loss_i = (1 - t) * x + (1 + (pw - 1) * t) * softplus(-x)
template <typename T>
__global__ void bce_forward_kernel(std::int64_t n, const T* logits, const T* targets, const T* pos_weight,
                                   T* loss) {
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += stride) {
    const double x = static_cast<double>(logits[i]);
    const double t = static_cast<double>(targets[i]);
    const double pw = pos_weight_of(pos_weight, i);
    loss[i] = static_cast<T>((1.0 - t) * x + (1.0 + (pw - 1.0) * t) * softplus_of_negative(x));
  }
}

// glogits_i = gloss_i * ((1 + (pw - 1) * t) * p - pw * t),  p = sigmoid(x)
template <typename T>
__global__ void bce_backward_kernel(std::int64_t n, const T* logits, const T* targets, const T* pos_weight,
                                    const T* gloss, T* glogits) {
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n;
       i += stride) {
    const double p = stable_sigmoid(static_cast<double>(logits[i]));
    const double t = static_cast<double>(targets[i]);
    const double pw = pos_weight_of(pos_weight, i);
    glogits[i] = static_cast<T>(static_cast<double>(gloss[i]) * ((1.0 + (pw - 1.0) * t) * p - pw * t));
  }
}

}  // namespace

template <typename T>
void cross_entropy_forward(const CrossEntropyGeometry& g, const T* logits, const std::int64_t* labels,
                           const T* class_weight, T smoothing, T* loss, T* log_probs) {
  if (g.batch == 0) return;
  // [N, C] logits normalized over C is the softmax view [outer = N, dim = C, inner = 1].
  kernels::cuda::log_softmax_forward(SoftmaxGeometry{g.batch, g.classes, 1}, logits, log_probs);
  // Queued after the log-softmax on the same (compute) stream, so it reads finished log_probs.
  launch("cross_entropy_forward", cross_entropy_loss_kernel<T>, grid_blocks(g.batch, kWarpsPerBlock),
         kThreadsPerBlock, g, log_probs, labels, class_weight, static_cast<double>(smoothing), loss);
}

template <typename T>
void cross_entropy_backward(const CrossEntropyGeometry& g, const T* log_probs, const std::int64_t* labels,
                            const T* class_weight, T smoothing, const T* gloss, T* glogits) {
  if (g.batch == 0 || g.classes == 0) return;
  launch("cross_entropy_backward", cross_entropy_backward_kernel<T>, grid_blocks(g.batch, kWarpsPerBlock),
         kThreadsPerBlock, g, log_probs, labels, class_weight, static_cast<double>(smoothing), gloss,
         glogits);
}

template <typename T>
void bce_with_logits_forward(std::int64_t n, const T* logits, const T* targets, const T* pos_weight,
                             T* loss) {
  if (n == 0) return;
  launch("bce_with_logits_forward", bce_forward_kernel<T>, grid_blocks(n, kThreadsPerBlock), kThreadsPerBlock,
         n, logits, targets, pos_weight, loss);
}

template <typename T>
void bce_with_logits_backward(std::int64_t n, const T* logits, const T* targets, const T* pos_weight,
                              const T* gloss, T* glogits) {
  if (n == 0) return;
  launch("bce_with_logits_backward", bce_backward_kernel<T>, grid_blocks(n, kThreadsPerBlock),
         kThreadsPerBlock, n, logits, targets, pos_weight, gloss, glogits);
}

template void cross_entropy_forward<float>(const CrossEntropyGeometry&, const float*, const std::int64_t*,
                                           const float*, float, float*, float*);
template void cross_entropy_forward<double>(const CrossEntropyGeometry&, const double*, const std::int64_t*,
                                            const double*, double, double*, double*);
template void cross_entropy_backward<float>(const CrossEntropyGeometry&, const float*, const std::int64_t*,
                                            const float*, float, const float*, float*);
template void cross_entropy_backward<double>(const CrossEntropyGeometry&, const double*, const std::int64_t*,
                                             const double*, double, const double*, double*);
template void bce_with_logits_forward<float>(std::int64_t, const float*, const float*, const float*, float*);
template void bce_with_logits_forward<double>(std::int64_t, const double*, const double*, const double*,
                                              double*);
template void bce_with_logits_backward<float>(std::int64_t, const float*, const float*, const float*,
                                              const float*, float*);
template void bce_with_logits_backward<double>(std::int64_t, const double*, const double*, const double*,
                                               const double*, double*);

}  // namespace kiln::kernels::cuda
