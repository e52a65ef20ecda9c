// What the CUDA batch-norm kernels share, NCHW (cuda_batchnorm.cu) and channels-last
// (cuda_batchnorm_channels_last.cu): the pair of sums they reduce, where a channel's statistics come from,
// the ReLU and the gradient it passes into batch norm, and the scratch for per-slice partial sums. Included
// by those .cu files only (device code).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "core/storage.hpp"
#include "kernels/batchnorm/batchnorm.hpp"
#include "kernels/cuda_grid.hpp"

namespace kiln::kernels::cuda::batchnorm_detail {

// The two sums every kernel needs (see cuda_batchnorm.cu's launch list), added by block_sum
// (kernels/cuda_block_sum.cuh) member by member. No member initializers: block_sum keeps them in a __shared__
// array, which cannot have a constructor; PairSums{} is zero.
struct PairSums {
  double a, b;
};
__device__ inline PairSums operator+(PairSums x, PairSums y) { return {x.a + y.a, x.b + y.b}; }
__device__ inline PairSums shuffle_down(PairSums v, int offset) {
  return {__shfl_down_sync(kFullWarpMask, v.a, offset), __shfl_down_sync(kFullWarpMask, v.b, offset)};
}

// Where a channel's mean and invstd come from. Each kernel takes one of these.
template <typename T>
struct SavedStatistics {  // train backward: what the forward saved
  const opmath_t<T>* save_mean;
  const opmath_t<T>* save_invstd;
  __device__ double mean(std::int64_t c) const { return static_cast<double>(save_mean[c]); }
  __device__ double invstd(std::int64_t c) const { return static_cast<double>(save_invstd[c]); }
};

template <typename T>
struct RunningStatistics {  // eval: invstd = 1 / sqrt(running_var + eps)
  const opmath_t<T>* running_mean;
  const opmath_t<T>* running_var;
  double eps;
  __device__ double mean(std::int64_t c) const { return static_cast<double>(running_mean[c]); }
  __device__ double invstd(std::int64_t c) const {
    return 1.0 / sqrt(static_cast<double>(running_var[c]) + eps);
  }
};

// The hard swish and its derivative in double, as the reference has them (reference.cpp: v * relu6(v + 3) /
// 6 with std::min and std::max's comparisons, so a NaN passes through; the derivative (2v + 3) / 6 strictly
// inside (-3, 3), 0 at and below -3, 1 at and above 3).
__device__ inline double hard_swish(double v) {
  const double shifted = v + 3.0;
  const double at_least_zero = shifted < 0.0 ? 0.0 : shifted;
  return v * ((6.0 < at_least_zero ? 6.0 : at_least_zero) / 6.0);
}
__device__ inline double hard_swish_derivative(double v) {
  return v <= -3.0 ? 0.0 : v >= 3.0 ? 1.0 : (2.0 * v + 3.0) / 6.0;
}

// The fused activation, as the kernels take it, by value: the ReLU (BatchNorm2dGeometry::fused_relu and
// relu_upper, its cap: +inf for none, 6 for ReLU6), or the hard swish (fused_hardswish).
struct FusedActivation {
  bool relu;
  float upper;
  bool hardswish;

  static FusedActivation of(const BatchNorm2dGeometry& g) {
    return {g.fused_relu, g.relu_upper, g.fused_hardswish};
  }

  // On v, batch norm's value rounded to T: relu capped at upper as the elementwise reference's relu and
  // clamp have it (a NaN passes through; the comparisons with the cap are in double, which holds every T and
  // the cap exactly), or the hard swish in double, rounded to T once more (the reference's two ops).
  template <typename T>
  __device__ T apply(T v) const {
    if (hardswish) return static_cast<T>(hard_swish(static_cast<double>(v)));
    if (!relu) return v;
    if (v < T(0)) return T(0);
    return static_cast<double>(v) > static_cast<double>(upper) ? static_cast<T>(upper) : v;
  }
  // Whether y, the output, passes a gradient: relu's rule, y > 0, and the clamp's below a cap (a plain ReLU
  // passes y = +inf).
  template <typename T>
  __device__ bool passes(T y) const {
    return y > T(0) && (isinf(upper) || static_cast<double>(y) < static_cast<double>(upper));
  }
};

// A channel's normalization: (x - mean) * invstd * gamma + beta, each in double.
struct ChannelAffine {
  double mean, invstd, gamma, beta;
};

// The gradient batchnorm itself receives at one element: gy, or with the fused ReLU gy * relu'(y), in T
// as the reference computes it (so 0 * inf is NaN there and here; gy * 1 and gy * 0 are exact in bfloat16),
// or with the hard swish gy * hardswish'(v), v = x normalized by `channel` and rounded to T (the reference's
// order of operations), the product rounded to T.
template <typename T>
__device__ T gradient_into_batchnorm(FusedActivation activation, const T* gy, const T* y, const T* x,
                                     std::int64_t offset, const ChannelAffine& channel) {
  if (activation.hardswish) {
    const T v = static_cast<T>(
        (static_cast<double>(x[offset]) - channel.mean) * channel.invstd * channel.gamma + channel.beta);
    return static_cast<T>(static_cast<double>(gy[offset]) * hard_swish_derivative(static_cast<double>(v)));
  }
  return activation.relu ? static_cast<T>(gy[offset] * (activation.passes(y[offset]) ? T(1) : T(0)))
                         : gy[offset];
}

// ---- The formulas, once for both layouts ---------------------------------------------------------------

// A channel's statistics from its shifted sums (a: sum d, b: sum d^2, d = x - shift) over m values: the mean,
// the biased variance it is normalized with, and invstd. With m = 0 they are NaN, as in the reference.
struct ChannelMoments {
  double mean, biased_var, invstd;
};
__device__ inline ChannelMoments channel_moments(PairSums shifted, std::int64_t m, double shift, double eps) {
  const double count = static_cast<double>(m);
  const double mean_d = shifted.a / count;
  const double spread = shifted.b / count - mean_d * mean_d;
  const double biased_var = spread < 0 ? 0.0 : spread;  // rounding can dip below 0; a NaN stays NaN
  return {shift + mean_d, biased_var, 1.0 / sqrt(biased_var + eps)};
}

// What the forward keeps of channel c, written by one thread: mean and invstd (in opmath_t<T>, for the
// backward), and the running statistics moved by `momentum` when they are given, with the variance
// unbiased (it estimates the population's), except over a single value.
template <typename T>
__device__ void store_statistics(std::int64_t c, const ChannelMoments& moments, std::int64_t m,
                                 double momentum, opmath_t<T>* save_mean, opmath_t<T>* save_invstd,
                                 opmath_t<T>* running_mean, opmath_t<T>* running_var) {
  save_mean[c] = static_cast<opmath_t<T>>(moments.mean);
  save_invstd[c] = static_cast<opmath_t<T>>(moments.invstd);
  const double unbiased_var =
      m > 1 ? moments.biased_var * static_cast<double>(m) / static_cast<double>(m - 1) : moments.biased_var;
  if (running_mean) {
    running_mean[c] = static_cast<opmath_t<T>>((1.0 - momentum) * static_cast<double>(running_mean[c]) +
                                               momentum * moments.mean);
  }
  if (running_var) {
    running_var[c] = static_cast<opmath_t<T>>((1.0 - momentum) * static_cast<double>(running_var[c]) +
                                              momentum * unbiased_var);
  }
}

// y at element `at`: (x - mean) * invstd * gamma + beta in double, plus residual[at] when there is one,
// rounded to T once, then the fused activation (a no-op when there is none).
template <typename T>
__device__ T normalized(const T* x, const T* residual, std::int64_t at, double mean, double invstd,
                        double scale, double bias, FusedActivation activation) {
  double sum = (static_cast<double>(x[at]) - mean) * invstd * scale + bias;
  if (residual) sum += static_cast<double>(residual[at]);
  return activation.apply(static_cast<T>(sum));
}

// Scratch for the per-slice partial sums, in device memory: partial_a, partial_b [C, slices] (double).
// Freed when the Scratch goes out of scope, right after the launches that use it are enqueued: every
// kernel runs on the compute stream, so whatever reuses the block later runs after them.
struct Scratch {
  std::shared_ptr<Storage> storage;
  double *partial_a, *partial_b;

  // Room for `count` partial sums of each kind (C * slices).
  Scratch(std::int64_t count, Device device)
      : storage(Storage::allocate(static_cast<std::size_t>(2 * count) * sizeof(double), device)) {
    partial_a = static_cast<double*>(storage->data());
    partial_b = partial_a + count;
  }
};

// Eval backward: one thread per channel adds the channel's slices in order into gbeta = sum gy' and
// ggamma = sum gy' * xhat (there is no later kernel to merge them in). partial_* are [C, slices].
template <typename Parameter>
__global__ void finish_gradient_sums_kernel(std::int64_t channels, std::int64_t slices,
                                            const double* partial_gy, const double* partial_gy_xhat,
                                            Parameter* gbeta, Parameter* ggamma) {
  const std::int64_t grid_stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t c = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; c < channels;
       c += grid_stride) {
    double total_gy = 0, total_gy_xhat = 0;
    for (std::int64_t slice = 0; slice < slices; ++slice) {
      total_gy += partial_gy[c * slices + slice];
      total_gy_xhat += partial_gy_xhat[c * slices + slice];
    }
    gbeta[c] = static_cast<Parameter>(total_gy);
    ggamma[c] = static_cast<Parameter>(total_gy_xhat);
  }
}

}  // namespace kiln::kernels::cuda::batchnorm_detail

// The channels-last kernels (cuda_batchnorm_channels_last.cu), batchnorm.hpp's cuda:: contracts for
// [N, H, W, C] tensors; cuda_batchnorm.cu's entry points hand them a geometry with channels_last set.
namespace kiln::kernels::cuda::channels_last {
template <typename T>
void batchnorm2d_forward_train(Device device, const BatchNorm2dGeometry& g, const T* x,
                               const opmath_t<T>* gamma, const opmath_t<T>* beta, opmath_t<T> eps,
                               opmath_t<T> momentum, opmath_t<T>* running_mean, opmath_t<T>* running_var,
                               T* y, opmath_t<T>* save_mean, opmath_t<T>* save_invstd, const T* residual);
template <typename T>
void batchnorm2d_forward_eval(const BatchNorm2dGeometry& g, const T* x, const opmath_t<T>* gamma,
                              const opmath_t<T>* beta, const opmath_t<T>* running_mean,
                              const opmath_t<T>* running_var, opmath_t<T> eps, T* y, const T* residual);
template <typename T>
void batchnorm2d_backward_train(Device device, const BatchNorm2dGeometry& g, const T* x, const T* gy,
                                const T* y, const opmath_t<T>* gamma, const opmath_t<T>* beta,
                                const opmath_t<T>* save_mean, const opmath_t<T>* save_invstd, T* gx,
                                opmath_t<T>* ggamma, opmath_t<T>* gbeta, T* gy_through_relu);
template <typename T>
void batchnorm2d_backward_eval(Device device, const BatchNorm2dGeometry& g, const T* x, const T* gy,
                               const T* y, const opmath_t<T>* gamma, const opmath_t<T>* beta,
                               const opmath_t<T>* running_mean, const opmath_t<T>* running_var,
                               opmath_t<T> eps, T* gx, opmath_t<T>* ggamma, opmath_t<T>* gbeta,
                               T* gy_through_relu);
}  // namespace kiln::kernels::cuda::channels_last
