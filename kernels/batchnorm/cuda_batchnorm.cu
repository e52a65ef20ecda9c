// Batch normalization on a CUDA device (batchnorm.hpp), train and eval, forward and backward, with and
// without the fused ReLU or hard swish, for NCHW tensors (channels-last ones go to
// cuda_batchnorm_channels_last.cu): the reference's formulas, with every per-channel sum and every
// per-element formula in double, as the reference computes them, for every T (bfloat16 included: its values
// are read exactly as float and each result is rounded to bfloat16 once).
//
//   x, y, gy, gx  [N, C, H, W] in T;  gamma, beta, running_*, save_*, ggamma, gbeta  [C] in opmath_t<T>;
//   m = N*H*W
//
// Work split. Channel c's m values are N runs of H*W contiguous values (x[n, c, :, :] starts at
// (n*C + c)*H*W). A channel is cut into `slices` contiguous ranges of its flat index j = n*H*W + i, each
// of about kValuesPerSlice values, and one block of kThreadsPerBlock threads works on one (channel, slice)
// pair: thread t takes j = begin + t, begin + t + kThreadsPerBlock, ... (consecutive threads read consecutive
// addresses inside a run). One block per whole channel would be simpler, but [128, 16, 32, 32] has 16
// channels of 131,072 values: 16 blocks would leave most of the GPU's 132 multiprocessors idle. Sliced, it
// runs 256 blocks; a channel of at most kValuesPerSlice values (small batches, late stages) is one slice, so
// one block per channel.
//
// Per-channel sums, deterministic (no atomics): each block reduces its slice's pair of sums in a fixed
// tree (per-thread running sums in double, warp shuffles, then the 8 warp sums in one warp) and writes
// them to scratch [C, slices]. The kernel that needs a channel's totals next (normalize, gx) merges them
// itself: every block of the channel adds the channel's slices in the same fixed tree (channel_totals), so
// they all get the same bits, and the block of slice 0 is the one that writes the per-channel results
// (saved statistics, running statistics, ggamma and gbeta). A separate one-thread-per-channel merge would
// cost a launch per direction, which at a small CNN's sizes costs more than the merge itself. The results
// depend only on the shape, never on timing.
//
// Statistics in one pass: sum d and sum d^2 with d = x - shift, shift = x[0, c, 0, 0]; the variance is
// E[d^2] - E[d]^2. The shift keeps E[d] of the order of the spread, so the difference keeps its digits
// when the mean is large next to the spread (the reference takes two passes instead).
//
// Launches, all on the compute stream, in order:
//   forward train   partial sums of d, d^2  ->  statistics per channel (+ saved, running stats) and normalize
//   forward eval    normalize
//   backward train  partial sums of gy', gy' * xhat  ->  per-channel sums (ggamma, gbeta) and gx
//   backward eval   partial sums, and gx in the same pass (it needs no sums)  ->  per-channel sums
// where gy' = gy, or with the fused ReLU gy * (y > 0 ? 1 : 0), or with the hard swish gy * hardswish'(v), v
// recomputed from x, in T, as the reference has it.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <memory>

#include "core/cuda_runtime.hpp"
#include "core/storage.hpp"
#include "kernels/batchnorm/batchnorm.hpp"
#include "kernels/batchnorm/cuda_batchnorm_common.cuh"
#include "kernels/cuda_block_sum.cuh"
#include "kernels/cuda_launch.cuh"

namespace kiln::kernels::cuda {
namespace {

using namespace batchnorm_detail;

// 32 values per thread: enough to amortize a block's start and its reduction.
constexpr std::int64_t kValuesPerSlice = 32 * kThreadsPerBlock;
// Bounds the per-channel merge (one thread adds a channel's slices); past 1024 slices, slices grow.
constexpr std::int64_t kMaxSlices = 1024;

// How a [N, C, H, W] tensor splits into (channel, slice) work items, work = c * slices + slice.
struct ChannelSlices {
  std::int64_t channels;      // C
  std::int64_t plane;         // H * W
  std::int64_t values;        // m = N * H * W, values per channel
  std::int64_t slices;        // per channel, >= 1
  std::int64_t slice_length;  // values per slice (the last may hold fewer, or none)

  __host__ __device__ std::int64_t work_items() const { return channels * slices; }
};

ChannelSlices plan_slices(const BatchNorm2dGeometry& g) {
  ChannelSlices s{};
  s.channels = g.channels;
  s.plane = g.height * g.width;
  s.values = g.batch * s.plane;
  s.slices = std::clamp<std::int64_t>((s.values + kValuesPerSlice - 1) / kValuesPerSlice, 1, kMaxSlices);
  s.slice_length = (s.values + s.slices - 1) / s.slices;
  return s;
}

// Calls visit(offset) for this thread's values of slice `slice` of channel c: flat indices
// j = begin + threadIdx.x + k * kThreadsPerBlock below the slice's end, value j sitting at
// offset = (n*C + c) * plane + i with n = j / plane, i = j % plane. The thread divides once; each step of
// kThreadsPerBlock values then moves q whole runs and r more values (kThreadsPerBlock = q * plane + r),
// division-free.
template <class Visit>
__device__ void for_each_value(const ChannelSlices& s, std::int64_t c, std::int64_t slice, Visit&& visit) {
  const std::int64_t begin = slice * s.slice_length;
  const std::int64_t end = begin + s.slice_length < s.values ? begin + s.slice_length : s.values;
  std::int64_t j = begin + threadIdx.x;
  if (j >= end) return;  // also every thread of an empty channel (m = 0), before dividing by plane
  const std::int64_t sample_stride = s.channels * s.plane;  // from x[n, c, ...] to x[n + 1, c, ...]
  const std::int64_t q = kThreadsPerBlock / s.plane, r = kThreadsPerBlock % s.plane;
  std::int64_t i = j % s.plane;
  std::int64_t offset = (j / s.plane) * sample_stride + c * s.plane + i;
  for (; j < end; j += kThreadsPerBlock) {
    visit(offset);
    i += r;
    offset += q * sample_stride + r;
    if (i >= s.plane) {  // r < plane, so at most one more run
      i -= s.plane;
      offset += sample_stride - s.plane;
    }
  }
}

// The totals of channel c's per-slice partial sums (partial_a, partial_b [C, slices]), in every thread of the
// block: thread t adds slices t, t + kThreadsPerBlock, ... and block_sum adds the threads' sums in its fixed
// tree, so every block of the channel gets the same bits. Every thread of the block must call it. The
// block_sum calls' barriers order this call's reads of the shared totals before a later call's writes.
__device__ PairSums channel_totals(const ChannelSlices& s, std::int64_t c, const double* partial_a,
                                   const double* partial_b) {
  __shared__ double total_a, total_b;
  PairSums sums{};
  for (std::int64_t slice = threadIdx.x; slice < s.slices; slice += kThreadsPerBlock) {
    sums.a += partial_a[c * s.slices + slice];
    sums.b += partial_b[c * s.slices + slice];
  }
  sums = block_sum(sums);
  if (threadIdx.x == 0) {
    total_a = sums.a;
    total_b = sums.b;
  }
  __syncthreads();
  return {total_a, total_b};
}

// The value statistics are taken around: one value of the channel, x[0, c, 0, 0], unless it is not finite
// (an infinity would make every d infinite or NaN; zero then keeps an infinite mean infinite, as in the
// reference).
template <typename T>
__device__ double statistics_shift(const ChannelSlices& s, const T* x, std::int64_t c) {
  if (s.values == 0) return 0.0;
  const double first = static_cast<double>(x[c * s.plane]);
  return isfinite(first) ? first : 0.0;
}

// ---- forward -----------------------------------------------------------------------------------------

// One block per (channel, slice): sum d and sum d^2 over the slice, d = x - shift, into
// partial_d / partial_d2 [C, slices].
template <typename T>
__global__ void forward_partial_sums_kernel(ChannelSlices s, const T* x, double* partial_d,
                                            double* partial_d2) {
  for (std::int64_t work = blockIdx.x; work < s.work_items(); work += gridDim.x) {  // uniform in the block
    const std::int64_t c = work / s.slices, slice = work % s.slices;
    const double shift = statistics_shift(s, x, c);
    PairSums sums{};
    for_each_value(s, c, slice, [&](std::int64_t offset) {
      const double d = static_cast<double>(x[offset]) - shift;
      sums.a += d;
      sums.b += d * d;
    });
    sums = block_sum(sums);
    if (threadIdx.x == 0) {
      partial_d[work] = sums.a;
      partial_d2[work] = sums.b;
    }
  }
}

// y = (x - mean) * invstd * gamma + beta in double over this thread's values of (c, slice), plus the
// residual when there is one, then the fused activation.
template <typename T>
__device__ void normalize_slice(const ChannelSlices& s, std::int64_t c, std::int64_t slice,
                                FusedActivation activation, const T* x, const T* residual, double mean,
                                double invstd, double scale, double bias, T* y) {
  for_each_value(s, c, slice, [&](std::int64_t offset) {
    y[offset] = normalized(x, residual, offset, mean, invstd, scale, bias, activation);
  });
}

// One block per (channel, slice): merges the channel's partial sums (channel_totals) into the reference's
// formulas (mean, biased variance for normalizing, invstd), then normalizes the slice. The block of slice 0
// also saves mean and invstd (in opmath_t<T>, for the backward) and moves the running statistics, with the
// unbiased variance, when they are given. With no values (m = 0) the statistics are NaN, as in the
// reference, and there is nothing to normalize.
template <typename T>
__global__ void train_normalize_kernel(ChannelSlices s, FusedActivation activation, const T* x,
                                       const T* residual, const opmath_t<T>* gamma, const opmath_t<T>* beta,
                                       double eps, double momentum, const double* partial_d,
                                       const double* partial_d2, opmath_t<T>* save_mean,
                                       opmath_t<T>* save_invstd, opmath_t<T>* running_mean,
                                       opmath_t<T>* running_var, T* y) {
  for (std::int64_t work = blockIdx.x; work < s.work_items(); work += gridDim.x) {  // uniform in the block
    const std::int64_t c = work / s.slices, slice = work % s.slices;
    const PairSums totals = channel_totals(s, c, partial_d, partial_d2);
    const ChannelMoments moments = channel_moments(totals, s.values, statistics_shift(s, x, c), eps);
    if (slice == 0 && threadIdx.x == 0) {
      store_statistics<T>(c, moments, s.values, momentum, save_mean, save_invstd, running_mean, running_var);
    }
    normalize_slice(s, c, slice, activation, x, residual, moments.mean, moments.invstd,
                    static_cast<double>(gamma[c]), static_cast<double>(beta[c]), y);
  }
}

// Eval: one block per (channel, slice), normalized with the running statistics.
template <typename T>
__global__ void eval_normalize_kernel(ChannelSlices s, FusedActivation activation, const T* x,
                                      const T* residual, const opmath_t<T>* gamma, const opmath_t<T>* beta,
                                      RunningStatistics<T> statistics, T* y) {
  for (std::int64_t work = blockIdx.x; work < s.work_items(); work += gridDim.x) {
    const std::int64_t c = work / s.slices, slice = work % s.slices;
    normalize_slice(s, c, slice, activation, x, residual, statistics.mean(c), statistics.invstd(c),
                    static_cast<double>(gamma[c]), static_cast<double>(beta[c]), y);
  }
}

// ---- backward ----------------------------------------------------------------------------------------

// One block per (channel, slice): sum gy' and sum gy' * xhat over the slice, xhat = (x - mean) * invstd,
// into partial_gy / partial_gy_xhat [C, slices]. In eval mode (eval_gx given) the same pass also writes
// gx = gy' * gamma * invstd, which needs no sums.
template <typename T, class Statistics>
__global__ void backward_partial_sums_kernel(ChannelSlices s, FusedActivation activation, const T* x,
                                             const T* gy, const T* y, const opmath_t<T>* gamma,
                                             const opmath_t<T>* beta, Statistics statistics,
                                             double* partial_gy, double* partial_gy_xhat, T* eval_gx,
                                             T* gy_through_relu) {
  for (std::int64_t work = blockIdx.x; work < s.work_items(); work += gridDim.x) {
    const std::int64_t c = work / s.slices, slice = work % s.slices;
    const double mean = statistics.mean(c), invstd = statistics.invstd(c);
    const double eval_scale = static_cast<double>(gamma[c]) * invstd;
    const ChannelAffine channel{mean, invstd, static_cast<double>(gamma[c]), static_cast<double>(beta[c])};
    PairSums sums{};
    for_each_value(s, c, slice, [&](std::int64_t offset) {
      const T through = gradient_into_batchnorm(activation, gy, y, x, offset, channel);
      if (gy_through_relu) gy_through_relu[offset] = through;
      const double g = static_cast<double>(through);
      const double xhat = (static_cast<double>(x[offset]) - mean) * invstd;
      sums.a += g;
      sums.b += g * xhat;
      if (eval_gx) eval_gx[offset] = static_cast<T>(g * eval_scale);
    });
    sums = block_sum(sums);
    if (threadIdx.x == 0) {
      partial_gy[work] = sums.a;
      partial_gy_xhat[work] = sums.b;
    }
  }
}

// Train: one block per (channel, slice): merges the channel's partial sums (channel_totals) into
// gbeta = sum gy' and ggamma = sum gy' * xhat, which the block of slice 0 writes (in opmath_t<T>), then
// gx = gamma * invstd / m * (m * gy' - gbeta - xhat * ggamma) over the slice, with the sums in double.
template <typename T>
__global__ void train_gx_kernel(ChannelSlices s, FusedActivation activation, const T* x, const T* gy,
                                const T* y, const opmath_t<T>* gamma, const opmath_t<T>* beta,
                                SavedStatistics<T> statistics, const double* partial_gy,
                                const double* partial_gy_xhat, T* gx, opmath_t<T>* ggamma,
                                opmath_t<T>* gbeta) {
  const double m = static_cast<double>(s.values);
  for (std::int64_t work = blockIdx.x; work < s.work_items(); work += gridDim.x) {  // uniform in the block
    const std::int64_t c = work / s.slices, slice = work % s.slices;
    const PairSums totals = channel_totals(s, c, partial_gy, partial_gy_xhat);
    const double gbeta_c = totals.a, ggamma_c = totals.b;
    if (slice == 0 && threadIdx.x == 0) {
      gbeta[c] = static_cast<opmath_t<T>>(gbeta_c);
      ggamma[c] = static_cast<opmath_t<T>>(ggamma_c);
    }
    const double mean = statistics.mean(c), invstd = statistics.invstd(c);
    const double factor = static_cast<double>(gamma[c]) * invstd / m;
    const ChannelAffine channel{mean, invstd, static_cast<double>(gamma[c]), static_cast<double>(beta[c])};
    for_each_value(s, c, slice, [&](std::int64_t offset) {
      const double g = static_cast<double>(gradient_into_batchnorm(activation, gy, y, x, offset, channel));
      const double xhat = (static_cast<double>(x[offset]) - mean) * invstd;
      gx[offset] = static_cast<T>(factor * (m * g - gbeta_c - xhat * ggamma_c));
    });
  }
}

unsigned channel_blocks(const ChannelSlices& s) { return grid_blocks(s.channels); }

}  // namespace

template <typename T>
void batchnorm2d_forward_train(Device device, const BatchNorm2dGeometry& g, const T* x,
                               const opmath_t<T>* gamma, const opmath_t<T>* beta, opmath_t<T> eps,
                               opmath_t<T> momentum, opmath_t<T>* running_mean, opmath_t<T>* running_var,
                               T* y, opmath_t<T>* save_mean, opmath_t<T>* save_invstd, const T* residual) {
  if (g.channels_last) {
    return channels_last::batchnorm2d_forward_train(device, g, x, gamma, beta, eps, momentum, running_mean,
                                                    running_var, y, save_mean, save_invstd, residual);
  }
  const ChannelSlices s = plan_slices(g);
  if (s.channels <= 0) return;
  const Scratch scratch(s.work_items(), device);
  launch("batchnorm2d_forward_train (statistics)", forward_partial_sums_kernel<T>,
         grid_blocks(s.work_items(), 1), kThreadsPerBlock, s, x, scratch.partial_a, scratch.partial_b);
  launch("batchnorm2d_forward_train (normalize)", train_normalize_kernel<T>, grid_blocks(s.work_items(), 1),
         kThreadsPerBlock, s, FusedActivation::of(g), x, residual, gamma, beta, static_cast<double>(eps),
         static_cast<double>(momentum), scratch.partial_a, scratch.partial_b, save_mean, save_invstd,
         running_mean, running_var, y);
}

template <typename T>
void batchnorm2d_forward_eval(const BatchNorm2dGeometry& g, const T* x, const opmath_t<T>* gamma,
                              const opmath_t<T>* beta, const opmath_t<T>* running_mean,
                              const opmath_t<T>* running_var, opmath_t<T> eps, T* y, const T* residual) {
  if (g.channels_last)
    return channels_last::batchnorm2d_forward_eval(g, x, gamma, beta, running_mean, running_var, eps, y,
                                                   residual);
  const ChannelSlices s = plan_slices(g);
  if (s.channels <= 0 || s.values == 0) return;
  launch("batchnorm2d_forward_eval", eval_normalize_kernel<T>, grid_blocks(s.work_items(), 1),
         kThreadsPerBlock, s, FusedActivation::of(g), x, residual, gamma, beta,
         RunningStatistics<T>{running_mean, running_var, static_cast<double>(eps)}, y);
}

template <typename T>
void batchnorm2d_backward_train(Device device, const BatchNorm2dGeometry& g, const T* x, const T* gy,
                                const T* y, const opmath_t<T>* gamma, const opmath_t<T>* beta,
                                const opmath_t<T>* save_mean, const opmath_t<T>* save_invstd, T* gx,
                                opmath_t<T>* ggamma, opmath_t<T>* gbeta, T* gy_through_relu) {
  if (g.channels_last) {
    return channels_last::batchnorm2d_backward_train(device, g, x, gy, y, gamma, beta, save_mean, save_invstd,
                                                     gx, ggamma, gbeta, gy_through_relu);
  }
  const ChannelSlices s = plan_slices(g);
  if (s.channels <= 0) return;
  const Scratch scratch(s.work_items(), device);
  const SavedStatistics<T> statistics{save_mean, save_invstd};
  launch("batchnorm2d_backward_train (sums)", backward_partial_sums_kernel<T, SavedStatistics<T>>,
         grid_blocks(s.work_items(), 1), kThreadsPerBlock, s, FusedActivation::of(g), x, gy, y, gamma, beta,
         statistics, scratch.partial_a, scratch.partial_b, static_cast<T*>(nullptr),
         g.fused_relu ? gy_through_relu : nullptr);
  launch("batchnorm2d_backward_train (gx)", train_gx_kernel<T>, grid_blocks(s.work_items(), 1),
         kThreadsPerBlock, s, FusedActivation::of(g), x, gy, y, gamma, beta, statistics, scratch.partial_a,
         scratch.partial_b, gx, ggamma, gbeta);
}

template <typename T>
void batchnorm2d_backward_eval(Device device, const BatchNorm2dGeometry& g, const T* x, const T* gy,
                               const T* y, const opmath_t<T>* gamma, const opmath_t<T>* beta,
                               const opmath_t<T>* running_mean, const opmath_t<T>* running_var,
                               opmath_t<T> eps, T* gx, opmath_t<T>* ggamma, opmath_t<T>* gbeta,
                               T* gy_through_relu) {
  if (g.channels_last) {
    return channels_last::batchnorm2d_backward_eval(device, g, x, gy, y, gamma, beta, running_mean,
                                                    running_var, eps, gx, ggamma, gbeta, gy_through_relu);
  }
  const ChannelSlices s = plan_slices(g);
  if (s.channels <= 0) return;
  const Scratch scratch(s.work_items(), device);
  launch("batchnorm2d_backward_eval (sums and gx)", backward_partial_sums_kernel<T, RunningStatistics<T>>,
         grid_blocks(s.work_items(), 1), kThreadsPerBlock, s, FusedActivation::of(g), x, gy, y, gamma, beta,
         RunningStatistics<T>{running_mean, running_var, static_cast<double>(eps)}, scratch.partial_a,
         scratch.partial_b, gx, g.fused_relu ? gy_through_relu : nullptr);
  launch("batchnorm2d_backward_eval (sums)", finish_gradient_sums_kernel<opmath_t<T>>, channel_blocks(s),
         kThreadsPerBlock, s.channels, s.slices, scratch.partial_a, scratch.partial_b, gbeta, ggamma);
}

template void batchnorm2d_forward_train<float>(Device, const BatchNorm2dGeometry&, const float*, const float*,
                                               const float*, float, float, float*, float*, float*, float*,
                                               float*, const float*);
template void batchnorm2d_forward_eval<float>(const BatchNorm2dGeometry&, const float*, const float*,
                                              const float*, const float*, const float*, float, float*,
                                              const float*);
template void batchnorm2d_backward_train<float>(Device, const BatchNorm2dGeometry&, const float*,
                                                const float*, const float*, const float*, const float*,
                                                const float*, const float*, float*, float*, float*, float*);
template void batchnorm2d_backward_eval<float>(Device, const BatchNorm2dGeometry&, const float*, const float*,
                                               const float*, const float*, const float*, const float*,
                                               const float*, float, float*, float*, float*, float*);

template void batchnorm2d_forward_train<double>(Device, const BatchNorm2dGeometry&, const double*,
                                                const double*, const double*, double, double, double*,
                                                double*, double*, double*, double*, const double*);
template void batchnorm2d_forward_eval<double>(const BatchNorm2dGeometry&, const double*, const double*,
                                               const double*, const double*, const double*, double, double*,
                                               const double*);
template void batchnorm2d_backward_train<double>(Device, const BatchNorm2dGeometry&, const double*,
                                                 const double*, const double*, const double*, const double*,
                                                 const double*, const double*, double*, double*, double*,
                                                 double*);
template void batchnorm2d_backward_eval<double>(Device, const BatchNorm2dGeometry&, const double*,
                                                const double*, const double*, const double*, const double*,
                                                const double*, const double*, double, double*, double*,
                                                double*, double*);

template void batchnorm2d_forward_train<bfloat16>(Device, const BatchNorm2dGeometry&, const bfloat16*,
                                                  const float*, const float*, float, float, float*, float*,
                                                  bfloat16*, float*, float*, const bfloat16*);
template void batchnorm2d_forward_eval<bfloat16>(const BatchNorm2dGeometry&, const bfloat16*, const float*,
                                                 const float*, const float*, const float*, float, bfloat16*,
                                                 const bfloat16*);
template void batchnorm2d_backward_train<bfloat16>(Device, const BatchNorm2dGeometry&, const bfloat16*,
                                                   const bfloat16*, const bfloat16*, const float*,
                                                   const float*, const float*, const float*, bfloat16*,
                                                   float*, float*, bfloat16*);
template void batchnorm2d_backward_eval<bfloat16>(Device, const BatchNorm2dGeometry&, const bfloat16*,
                                                  const bfloat16*, const bfloat16*, const float*,
                                                  const float*, const float*, const float*, float, bfloat16*,
                                                  float*, float*, bfloat16*);

}  // namespace kiln::kernels::cuda
