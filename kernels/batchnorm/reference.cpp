// Reference batch-normalization kernels: plain loops that read like the formulas in batchnorm.hpp.
// They are the oracle every optimized batchnorm kernel is tested against, so clarity beats speed here.
//
//   x, y, gy, gx  [N, C, H, W] (channels-last: [N, H, W, C]);  gamma, beta, running_*, save_*, ggamma, gbeta
//   [C]
//
// Statistics are per channel, over the m = N*H*W values of that channel. Every per-channel sum is
// accumulated in double: m is often in the hundreds of thousands, and a float running sum loses digits
// that the mean, the variance and the gradients all need. The variance is computed in two passes (mean
// first, then squared deviations), which stays accurate when the mean is large next to the spread.
// Every output is rounded once: activations to T, per-channel results to opmath_t<T> (batchnorm.hpp).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "kernels/batchnorm/batchnorm.hpp"

namespace kiln::kernels::reference {
namespace {

// Where value i (i < H*W) of sample n's plane of channel c sits: NCHW keeps the plane contiguous, at
// (n * C + c) * H * W; channels-last interleaves the channels, so the plane's values are C apart. Every loop
// below visits n, then i, in the same order for both layouts, so both give the same bits.
std::int64_t offset(const BatchNorm2dGeometry& g, std::int64_t n, std::int64_t c, std::int64_t i) {
  const std::int64_t plane = g.height * g.width;
  if (g.channels_last) return (n * plane + i) * g.channels + c;
  return (n * g.channels + c) * plane + i;
}

// sum over (n, h, w) of values[n, c, h, w]
template <typename T>
double channel_sum(const BatchNorm2dGeometry& g, const T* values, std::int64_t c) {
  const std::int64_t plane = g.height * g.width;
  double sum = 0;
  for (std::int64_t n = 0; n < g.batch; ++n) {
    for (std::int64_t i = 0; i < plane; ++i) sum += values[offset(g, n, c, i)];
  }
  return sum;
}

// sum over (n, h, w) of (values[n, c, h, w] - mean)^2
template <typename T>
double channel_squared_deviations(const BatchNorm2dGeometry& g, const T* values, std::int64_t c,
                                  double mean) {
  const std::int64_t plane = g.height * g.width;
  double sum = 0;
  for (std::int64_t n = 0; n < g.batch; ++n) {
    for (std::int64_t i = 0; i < plane; ++i) {
      const T value = values[offset(g, n, c, i)];
      sum += (value - mean) * (value - mean);
    }
  }
  return sum;
}

// relu capped at `upper` (+inf: none), as the elementwise reference's relu and clamp have it: a NaN passes
// through.
template <typename T>
T capped_relu(T v, float upper) {
  if (v < 0) return T(0);
  return v > upper ? static_cast<T>(upper) : v;
}

// The hard swish and its derivative in double, as the elementwise reference has them
// (kernels/elementwise/reference.cpp): v * relu6(v + 3) / 6; (2v + 3) / 6 strictly inside (-3, 3), 0 at and
// below -3, 1 at and above 3.
double hard_swish(double v) { return v * (std::min(std::max(v + 3.0, 0.0), 6.0) / 6.0); }
double hard_swish_derivative(double v) { return v <= -3.0 ? 0.0 : v >= 3.0 ? 1.0 : (2.0 * v + 3.0) / 6.0; }

// The normalized value at element `at`, (x - mean) * invstd * gamma_c + beta_c in double, rounded to T: what
// batch norm alone would store.
template <typename T>
T normalized_value(const T* x, std::int64_t at, double mean, double invstd, double gamma, double beta) {
  return static_cast<T>((x[at] - mean) * invstd * gamma + beta);
}

// y[n, c, :, :] = (x[n, c, :, :] - mean) * invstd * gamma_c + beta_c, the same for train and eval mode;
// only where mean and invstd come from differs. With a residual, plus residual[n, c, :, :] (in double, before
// the one rounding); with g.fused_relu, y = relu of that, capped at g.relu_upper; with g.fused_hardswish, the
// hard swish of the value rounded to T, rounded once more: the separate ops' bits.
template <typename T>
void normalize_channel(const BatchNorm2dGeometry& g, const T* x, const opmath_t<T>* gamma,
                       const opmath_t<T>* beta, std::int64_t c, double mean, double invstd, const T* residual,
                       T* y) {
  const std::int64_t plane = g.height * g.width;
  for (std::int64_t n = 0; n < g.batch; ++n) {
    for (std::int64_t i = 0; i < plane; ++i) {
      const std::int64_t at = offset(g, n, c, i);
      double sum = (x[at] - mean) * invstd * gamma[c] + beta[c];
      if (residual) sum += static_cast<double>(residual[at]);
      const T normalized = static_cast<T>(sum);
      if (g.fused_hardswish) {
        y[at] = static_cast<T>(hard_swish(static_cast<double>(normalized)));
      } else {
        y[at] = g.fused_relu ? capped_relu(normalized, g.relu_upper) : normalized;
      }
    }
  }
}

// The gradient batchnorm itself receives: gy, or with g.fused_relu gy * relu'(y) first, the elementwise
// reference's relu rule (y > 0 exactly where the normalized value was, as y = relu of it), and with a cap its
// clamp's rule (0 < y < relu_upper, likewise). gy * 1 and gy * 0 are exact in T, bfloat16 included. With the
// fused ReLU it is also written to kept_through_relu when that is not null (batchnorm.hpp's gy_through_relu).
// With g.fused_hardswish, gy * hardswish'(v), v the normalized value recomputed from x (channel c's mean[c]
// and invstd[c], gamma and beta) and rounded to T as the forward rounds it, the product rounded to T: the
// elementwise reference's backward on batch norm's output. (In train mode the saved statistics are the
// forward's rounded to opmath_t<T>, so v may be a rounding away from the forward's; in eval mode it is it.)
template <typename T>
std::vector<T> gradient_into_batchnorm(const BatchNorm2dGeometry& g, const T* gy, const T* y, const T* x,
                                       const std::vector<double>& mean, const std::vector<double>& invstd,
                                       const opmath_t<T>* gamma, const opmath_t<T>* beta,
                                       T* kept_through_relu) {
  const std::int64_t size = g.batch * g.channels * g.height * g.width;
  std::vector<T> into(gy, gy + size);
  if (g.fused_hardswish) {
    for (std::int64_t c = 0; c < g.channels; ++c) {
      for (std::int64_t n = 0; n < g.batch; ++n) {
        for (std::int64_t i = 0; i < g.height * g.width; ++i) {
          const std::int64_t at = offset(g, n, c, i);
          const T v = normalized_value(x, at, mean[c], invstd[c], gamma[c], beta[c]);
          into[at] = static_cast<T>(static_cast<double>(gy[at]) * hard_swish_derivative(v));
        }
      }
    }
  } else if (g.fused_relu) {
    for (std::int64_t i = 0; i < size; ++i) {
      const bool passes = y[i] > 0 && (std::isinf(g.relu_upper) || y[i] < g.relu_upper);
      into[i] = static_cast<T>(gy[i] * (passes ? T(1) : T(0)));
    }
    if (kept_through_relu) std::copy(into.begin(), into.end(), kept_through_relu);
  }
  return into;
}

// The gradients of gamma_c and beta_c, the same formulas in train and eval mode:
//   ggamma_c = sum over (n, h, w) of gy * xhat,  gbeta_c = sum of gy,  where xhat = (x - mean) * invstd.
struct AffineGradients {
  double ggamma = 0, gbeta = 0;
};

template <typename T>
AffineGradients affine_gradients(const BatchNorm2dGeometry& g, const T* x, const T* gy, std::int64_t c,
                                 double mean, double invstd) {
  const std::int64_t plane = g.height * g.width;
  AffineGradients sums;
  for (std::int64_t n = 0; n < g.batch; ++n) {
    for (std::int64_t i = 0; i < plane; ++i) {
      const std::int64_t at = offset(g, n, c, i);
      const double xhat = (x[at] - mean) * invstd;
      sums.ggamma += gy[at] * xhat;
      sums.gbeta += gy[at];
    }
  }
  return sums;
}

}  // namespace

// ---- train mode --------------------------------------------------------------------------------------

// Normalizes each channel by its own batch statistics, saves mean_c and invstd_c for the backward pass, and
// (when running_mean / running_var are given) moves the running statistics toward this batch's.
template <typename T>
void batchnorm2d_forward_train(const BatchNorm2dGeometry& g, const T* x, const opmath_t<T>* gamma,
                               const opmath_t<T>* beta, opmath_t<T> eps, opmath_t<T> momentum,
                               opmath_t<T>* running_mean, opmath_t<T>* running_var, T* y,
                               opmath_t<T>* save_mean, opmath_t<T>* save_invstd, const T* residual) {
  const std::int64_t m = g.batch * g.height * g.width;  // values per channel
  for (std::int64_t c = 0; c < g.channels; ++c) {
    const double mean = channel_sum(g, x, c) / static_cast<double>(m);
    const double biased_var = channel_squared_deviations(g, x, c, mean) / static_cast<double>(m);
    const double invstd = 1.0 / std::sqrt(biased_var + eps);

    normalize_channel(g, x, gamma, beta, c, mean, invstd, residual, y);
    save_mean[c] = static_cast<opmath_t<T>>(mean);
    save_invstd[c] = static_cast<opmath_t<T>>(invstd);

    // The running variance estimates the population's, so it takes the unbiased m / (m - 1) correction;
    // a single value has no spread to correct, and keeps the biased (zero) variance.
    const double unbiased_var =
        m > 1 ? biased_var * static_cast<double>(m) / static_cast<double>(m - 1) : biased_var;
    if (running_mean) {
      running_mean[c] = static_cast<opmath_t<T>>((1.0 - momentum) * running_mean[c] + momentum * mean);
    }
    if (running_var) {
      running_var[c] = static_cast<opmath_t<T>>((1.0 - momentum) * running_var[c] + momentum * unbiased_var);
    }
  }
}

// With xhat = (x - mean) * invstd and y = gamma * xhat + beta, where mean and invstd depend on every x of
// the channel:
//   gbeta_c  = sum gy
//   ggamma_c = sum gy * xhat
//   gx       = gamma_c * invstd_c / m * (m * gy - gbeta_c - xhat * ggamma_c)
// The two subtracted terms are the gradient flowing back through the mean and through the variance.
template <typename T>
void batchnorm2d_backward_train(const BatchNorm2dGeometry& g, const T* x, const T* gy, const T* y,
                                const opmath_t<T>* gamma, const opmath_t<T>* beta,
                                const opmath_t<T>* save_mean, const opmath_t<T>* save_invstd, T* gx,
                                opmath_t<T>* ggamma, opmath_t<T>* gbeta, T* gy_through_relu) {
  const std::vector<double> means(save_mean, save_mean + g.channels),
      invstds(save_invstd, save_invstd + g.channels);
  const std::vector<T> gradient =
      gradient_into_batchnorm(g, gy, y, x, means, invstds, gamma, beta, gy_through_relu);
  gy = gradient.data();
  const std::int64_t plane = g.height * g.width;
  const double m = static_cast<double>(g.batch * plane);  // values per channel
  for (std::int64_t c = 0; c < g.channels; ++c) {
    const double mean = save_mean[c], invstd = save_invstd[c];
    const AffineGradients sums = affine_gradients(g, x, gy, c, mean, invstd);
    ggamma[c] = static_cast<opmath_t<T>>(sums.ggamma);
    gbeta[c] = static_cast<opmath_t<T>>(sums.gbeta);

    const double factor = gamma[c] * invstd / m;
    for (std::int64_t n = 0; n < g.batch; ++n) {
      for (std::int64_t i = 0; i < plane; ++i) {
        const std::int64_t at = offset(g, n, c, i);
        const double xhat = (x[at] - mean) * invstd;
        gx[at] = static_cast<T>(factor * (m * gy[at] - sums.gbeta - xhat * sums.ggamma));
      }
    }
  }
}

// ---- eval mode ---------------------------------------------------------------------------------------

// y = (x - running_mean_c) / sqrt(running_var_c + eps) * gamma_c + beta_c: a fixed affine map per channel.
template <typename T>
void batchnorm2d_forward_eval(const BatchNorm2dGeometry& g, const T* x, const opmath_t<T>* gamma,
                              const opmath_t<T>* beta, const opmath_t<T>* running_mean,
                              const opmath_t<T>* running_var, opmath_t<T> eps, T* y, const T* residual) {
  for (std::int64_t c = 0; c < g.channels; ++c) {
    const double invstd = 1.0 / std::sqrt(static_cast<double>(running_var[c]) + eps);
    normalize_channel(g, x, gamma, beta, c, running_mean[c], invstd, residual, y);
  }
}

// The running statistics are constants here, so y is affine in x:
//   gx = gy * gamma_c * invstd_c,  ggamma_c = sum gy * xhat,  gbeta_c = sum gy,
// with xhat = (x - running_mean_c) * invstd_c and invstd_c = 1 / sqrt(running_var_c + eps).
template <typename T>
void batchnorm2d_backward_eval(const BatchNorm2dGeometry& g, const T* x, const T* gy, const T* y,
                               const opmath_t<T>* gamma, const opmath_t<T>* beta,
                               const opmath_t<T>* running_mean, const opmath_t<T>* running_var,
                               opmath_t<T> eps, T* gx, opmath_t<T>* ggamma, opmath_t<T>* gbeta,
                               T* gy_through_relu) {
  std::vector<double> means(running_mean, running_mean + g.channels), invstds(g.channels);
  for (std::int64_t c = 0; c < g.channels; ++c)
    invstds[c] = 1.0 / std::sqrt(static_cast<double>(running_var[c]) + eps);
  const std::vector<T> gradient =
      gradient_into_batchnorm(g, gy, y, x, means, invstds, gamma, beta, gy_through_relu);
  gy = gradient.data();
  const std::int64_t plane = g.height * g.width;
  for (std::int64_t c = 0; c < g.channels; ++c) {
    const double invstd = invstds[c];
    const AffineGradients sums = affine_gradients(g, x, gy, c, running_mean[c], invstd);
    ggamma[c] = static_cast<opmath_t<T>>(sums.ggamma);
    gbeta[c] = static_cast<opmath_t<T>>(sums.gbeta);

    const double scale = gamma[c] * invstd;
    for (std::int64_t n = 0; n < g.batch; ++n) {
      for (std::int64_t i = 0; i < plane; ++i) {
        const std::int64_t at = offset(g, n, c, i);
        gx[at] = static_cast<T>(gy[at] * scale);
      }
    }
  }
}

// ---- explicit instantiations -------------------------------------------------------------------------

template void batchnorm2d_forward_train<float>(const BatchNorm2dGeometry&, const float*, const float*,
                                               const float*, float, float, float*, float*, float*, float*,
                                               float*, const float*);
template void batchnorm2d_forward_eval<float>(const BatchNorm2dGeometry&, const float*, const float*,
                                              const float*, const float*, const float*, float, float*,
                                              const float*);
template void batchnorm2d_backward_train<float>(const BatchNorm2dGeometry&, const float*, const float*,
                                                const float*, const float*, const float*, const float*,
                                                const float*, float*, float*, float*, float*);
template void batchnorm2d_backward_eval<float>(const BatchNorm2dGeometry&, const float*, const float*,
                                               const float*, const float*, const float*, const float*,
                                               const float*, float, float*, float*, float*, float*);

template void batchnorm2d_forward_train<double>(const BatchNorm2dGeometry&, const double*, const double*,
                                                const double*, double, double, double*, double*, double*,
                                                double*, double*, const double*);
template void batchnorm2d_forward_eval<double>(const BatchNorm2dGeometry&, const double*, const double*,
                                               const double*, const double*, const double*, double, double*,
                                               const double*);
template void batchnorm2d_backward_train<double>(const BatchNorm2dGeometry&, const double*, const double*,
                                                 const double*, const double*, const double*, const double*,
                                                 const double*, double*, double*, double*, double*);
template void batchnorm2d_backward_eval<double>(const BatchNorm2dGeometry&, const double*, const double*,
                                                const double*, const double*, const double*, const double*,
                                                const double*, double, double*, double*, double*, double*);

template void batchnorm2d_forward_train<bfloat16>(const BatchNorm2dGeometry&, const bfloat16*, const float*,
                                                  const float*, float, float, float*, float*, bfloat16*,
                                                  float*, float*, const bfloat16*);
template void batchnorm2d_forward_eval<bfloat16>(const BatchNorm2dGeometry&, const bfloat16*, const float*,
                                                 const float*, const float*, const float*, float, bfloat16*,
                                                 const bfloat16*);
template void batchnorm2d_backward_train<bfloat16>(const BatchNorm2dGeometry&, const bfloat16*,
                                                   const bfloat16*, const bfloat16*, const float*,
                                                   const float*, const float*, const float*, bfloat16*,
                                                   float*, float*, bfloat16*);
template void batchnorm2d_backward_eval<bfloat16>(const BatchNorm2dGeometry&, const bfloat16*,
                                                  const bfloat16*, const bfloat16*, const float*,
                                                  const float*, const float*, const float*, float, bfloat16*,
                                                  float*, float*, bfloat16*);

}  // namespace kiln::kernels::reference
