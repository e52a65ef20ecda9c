// Batch normalization over NCHW tensors (Ioffe & Szegedy, 2015), per channel c:
//
//   train:  mean_c = mean over (n, h, w) of x;  var_c = biased variance over (n, h, w)
//           invstd_c = 1 / sqrt(var_c + eps)
//           y = (x - mean_c) * invstd_c * gamma_c + beta_c
//           running_mean = (1 - momentum) * running_mean + momentum * mean_c
//           running_var  = (1 - momentum) * running_var  + momentum * var_c * m / (m - 1),  m = N*H*W
//           (the running variance is unbiased, as in PyTorch; with m == 1 the biased value is used)
//   eval:   y = (x - running_mean_c) / sqrt(running_var_c + eps) * gamma_c + beta_c
//
//   x, y, gy, gx  [N, C, H, W];  gamma, beta, running_*, save_*, ggamma, gbeta  [C]
//
// The train forward saves mean and invstd for the backward pass. Its backward, with xhat = (x-mean)*invstd:
//   gbeta_c  = sum gy
//   ggamma_c = sum gy * xhat
//   gx       = gamma_c * invstd_c / m * (m * gy - gbeta_c - xhat * ggamma_c)
// In eval mode the statistics are constants, so gx = gy * gamma_c * invstd_c.
// running_mean / running_var may be null in train mode (no running statistics tracked).
//
// Fused ReLU (g.fused_relu): y = relu(batchnorm(x)), computed in the same pass that normalizes, and the
// backward first takes ReLU's rule, gy * (y > 0 ? 1 : 0), inside its own two passes. A BN -> ReLU pair then
// costs two passes over memory forward and two backward, where the separate ops take three and three (ReLU's
// own read and write each way). The vectorized backward gives the separate ops' bits: ReLU's backward, then
// the plain one (tests/kernels/batchnorm_fast_test.cpp). The reference and CUDA kernels read y for the mask.
// The vectorized train backward recomputes it from x, which it reads anyway, as its forward made y: the same
// fma on the same floats (batchnorm_vector_ops.hpp), so the same bits as reading y from that forward, in five
// passes over memory where reading y takes seven. Its saved statistics must then be a vectorized forward's
// (at any level: they compute alike), whose y the mask is, bit for bit; after the reference's forward, whose
// y may differ in the last bit, a value within a rounding of zero may fall on the other side of the mask.
//
// Capped (g.relu_upper finite): y = min(relu(batchnorm(x)), relu_upper), ReLU6 at 6 (MobileNetV2's), the
// elementwise clamp's value, and the backward takes the clamp's rule, gy * (0 < y < relu_upper ? 1 : 0), in
// the same places: a clamp's own pass each way saved as the ReLU's is. The mask recomputed from x takes the
// rounding to T into account at the top as at zero (batchnorm_vector_ops.hpp), so it is y's bit for bit.
//
// Hard swish (g.fused_hardswish, instead of a ReLU): y = hardswish(batchnorm(x)), where hardswish(v) =
// v * min(max(v + 3, 0), 6) / 6 (MobileNetV3's; the elementwise op's formula, kernels/elementwise). Its
// gradient is no function of y (the hard swish dips below zero and comes back), so every backward kernel
// recomputes the normalized value v from x, which it reads anyway, with the statistics, gamma and beta:
// gy * hardswish'(v), that is (2v + 3) / 6 strictly inside (-3, 3), 0 at and below -3, 1 at and above 3, is
// the gradient batch norm receives. The forward then writes y alone, where the separate ops wrote v and y
// and read v twice more; the backward makes the plain backward's passes, where the hard swish's own read v
// and gy and wrote its gradient. The reference and CUDA kernels round v to T before the derivative, as the
// separate ops store it, and give the separate reference ops' values. The vectorized kernels take v as
// computed: for float the same value, so y is the separate ops' bits and the gradients are theirs within a
// rounding (GCC fuses the slope's product into gx's subtraction where both sit in registers); for bfloat16
// the value before its rounding. No residual and no gy_through_relu with it (no network adds a residual
// before a hard swish).
//
// Residual (the forward kernels' last argument, when not null): y = act(batchnorm(x) + residual), act being
// the fused ReLU or nothing, residual laid out as x. A residual block's tail, the shortcut's sum and the ReLU
// after it, then rides the normalizing pass: forward, batch norm's two passes (statistics, normalize) replace
// batch norm's two and the sum's own read, read and write. Backward, the residual's gradient is gy through
// ReLU's rule, gy * (y > 0 ? 1 : 0), which the fused backward computes in its first pass anyway: with
// gy_through_relu (the backward kernels' last argument, written with g.fused_relu only) that pass stores it,
// and the second pass reads it there instead of gy and y. ReLU's own backward and batch norm's plain one made
// eight passes over memory; this makes seven.
//
// Statistics alone: the train forward with y null computes and saves mean and invstd and moves the running
// statistics, and writes no output (on the CPU's vectorized kernels only): where a convolution after the
// batch norm takes its normalizing pass into its own copies (conv2d_forward_normalized_input).
//
// Types, for mixed-precision training: the activations x, y, gy, gx are T (float, double or bfloat16); the
// per-channel tensors and scalars (gamma, beta, running_*, save_*, ggamma, gbeta, eps, momentum) are
// opmath_t<T>: float beside bfloat16 (fp32 master weights and statistics), T itself for float and double.
// Every kernel accumulates its per-channel sums in double and rounds each output once.
#pragma once

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>

#include "core/bfloat16.hpp"
#include "core/device.hpp"

namespace kiln::kernels {

// The fused ReLU as the profiler's detail names it (core/profiler.hpp): "" without one, " + relu",
// " + relu6" with its cap at 6, " + relu capped at X" with another (batch norm's and the convolutions'
// details alike).
std::string fused_relu_label(bool fused_relu, float relu_upper);

struct BatchNorm2dGeometry {
  std::int64_t batch = 1, channels = 1, height = 1, width = 1;
  bool fused_relu = false;  // y = relu(batchnorm(x)); the backward then reads y
  // With fused_relu, the ReLU's cap: y = min(relu(batchnorm(x)), relu_upper). +inf is the plain ReLU, 6
  // ReLU6.
  float relu_upper = std::numeric_limits<float>::infinity();
  // y = hardswish(batchnorm(x)) (see the top of the file); not with fused_relu.
  bool fused_hardswish = false;
  // x, y, gy, gx stored channels-last, [N, H, W, C] (the CPU and the CUDA kernels).
  bool channels_last = false;
};

template <typename T>
void batchnorm2d_forward_train(Device device, const BatchNorm2dGeometry& g, const T* x,
                               const opmath_t<T>* gamma, const opmath_t<T>* beta, opmath_t<T> eps,
                               opmath_t<T> momentum, opmath_t<T>* running_mean, opmath_t<T>* running_var,
                               T* y, opmath_t<T>* save_mean, opmath_t<T>* save_invstd,
                               const T* residual = nullptr);
// Eval mode's per-channel multiplier gamma / sqrt(running_var + eps), in double and rounded once: the
// vectorized eval kernels' and conv2d_forward_batchnorm_eval's (conv2d.hpp), whose outputs are then the same
// bits.
inline float batchnorm_eval_scale(float gamma, float running_var, float eps) {
  return static_cast<float>(1.0 / std::sqrt(static_cast<double>(running_var) + eps) * gamma);
}

template <typename T>
void batchnorm2d_forward_eval(Device device, const BatchNorm2dGeometry& g, const T* x,
                              const opmath_t<T>* gamma, const opmath_t<T>* beta,
                              const opmath_t<T>* running_mean, const opmath_t<T>* running_var,
                              opmath_t<T> eps, T* y, const T* residual = nullptr);
// Train-mode backward, from the statistics saved by the forward, gamma and beta as the forward had them. y
// (the forward's output) is read only with g.fused_relu and may be null otherwise; so in every backward
// below. The vectorized kernels recompute the fused ReLU's mask from x instead, where no gradient is kept
// (so y must be what the forward at this dispatch level stored; see the top of the file). beta is read
// where the fused activation's input is recomputed from x (the hard swish's, everywhere; the ReLU's mask, in
// the vectorized kernels).
template <typename T>
void batchnorm2d_backward_train(Device device, const BatchNorm2dGeometry& g, const T* x, const T* gy,
                                const T* y, const opmath_t<T>* gamma, const opmath_t<T>* beta,
                                const opmath_t<T>* save_mean, const opmath_t<T>* save_invstd, T* gx,
                                opmath_t<T>* ggamma, opmath_t<T>* gbeta, T* gy_through_relu = nullptr);
// Eval-mode backward, through the running statistics.
template <typename T>
void batchnorm2d_backward_eval(Device device, const BatchNorm2dGeometry& g, const T* x, const T* gy,
                               const T* y, const opmath_t<T>* gamma, const opmath_t<T>* beta,
                               const opmath_t<T>* running_mean, const opmath_t<T>* running_var,
                               opmath_t<T> eps, T* gx, opmath_t<T>* ggamma, opmath_t<T>* gbeta,
                               T* gy_through_relu = nullptr);

namespace reference {
template <typename T>
void batchnorm2d_forward_train(const BatchNorm2dGeometry& g, const T* x, const opmath_t<T>* gamma,
                               const opmath_t<T>* beta, opmath_t<T> eps, opmath_t<T> momentum,
                               opmath_t<T>* running_mean, opmath_t<T>* running_var, T* y,
                               opmath_t<T>* save_mean, opmath_t<T>* save_invstd, const T* residual = nullptr);
template <typename T>
void batchnorm2d_forward_eval(const BatchNorm2dGeometry& g, const T* x, const opmath_t<T>* gamma,
                              const opmath_t<T>* beta, const opmath_t<T>* running_mean,
                              const opmath_t<T>* running_var, opmath_t<T> eps, T* y,
                              const T* residual = nullptr);
template <typename T>
void batchnorm2d_backward_train(const BatchNorm2dGeometry& g, const T* x, const T* gy, const T* y,
                                const opmath_t<T>* gamma, const opmath_t<T>* beta,
                                const opmath_t<T>* save_mean, const opmath_t<T>* save_invstd, T* gx,
                                opmath_t<T>* ggamma, opmath_t<T>* gbeta, T* gy_through_relu = nullptr);
template <typename T>
void batchnorm2d_backward_eval(const BatchNorm2dGeometry& g, const T* x, const T* gy, const T* y,
                               const opmath_t<T>* gamma, const opmath_t<T>* beta,
                               const opmath_t<T>* running_mean, const opmath_t<T>* running_var,
                               opmath_t<T> eps, T* gx, opmath_t<T>* ggamma, opmath_t<T>* gbeta,
                               T* gy_through_relu = nullptr);
}  // namespace reference

// Vectorized kernels (vectorized_batchnorm.hpp), one namespace per instruction set, same contracts:
// statistics in one pass (shifted sums), threads over channels. T is float or bfloat16 (activations in
// bfloat16, computed in float lanes; parameters and statistics float, as opmath_t<bfloat16> is).
namespace avx512 {
template <typename T>
void batchnorm2d_forward_train(const BatchNorm2dGeometry& g, const T* x, const float* gamma,
                               const float* beta, float eps, float momentum, float* running_mean,
                               float* running_var, T* y, float* save_mean, float* save_invstd,
                               const T* residual);
template <typename T>
void batchnorm2d_forward_eval(const BatchNorm2dGeometry& g, const T* x, const float* gamma, const float* beta,
                              const float* running_mean, const float* running_var, float eps, T* y,
                              const T* residual);
template <typename T>
void batchnorm2d_backward_train(const BatchNorm2dGeometry& g, const T* x, const T* gy, const T* y,
                                const float* gamma, const float* beta, const float* save_mean,
                                const float* save_invstd, T* gx, float* ggamma, float* gbeta,
                                T* gy_through_relu);
template <typename T>
void batchnorm2d_backward_eval(const BatchNorm2dGeometry& g, const T* x, const T* gy, const T* y,
                               const float* gamma, const float* beta, const float* running_mean,
                               const float* running_var, float eps, T* gx, float* ggamma, float* gbeta,
                               T* gy_through_relu);
}  // namespace avx512
namespace avx2 {
template <typename T>
void batchnorm2d_forward_train(const BatchNorm2dGeometry& g, const T* x, const float* gamma,
                               const float* beta, float eps, float momentum, float* running_mean,
                               float* running_var, T* y, float* save_mean, float* save_invstd,
                               const T* residual);
template <typename T>
void batchnorm2d_forward_eval(const BatchNorm2dGeometry& g, const T* x, const float* gamma, const float* beta,
                              const float* running_mean, const float* running_var, float eps, T* y,
                              const T* residual);
template <typename T>
void batchnorm2d_backward_train(const BatchNorm2dGeometry& g, const T* x, const T* gy, const T* y,
                                const float* gamma, const float* beta, const float* save_mean,
                                const float* save_invstd, T* gx, float* ggamma, float* gbeta,
                                T* gy_through_relu);
template <typename T>
void batchnorm2d_backward_eval(const BatchNorm2dGeometry& g, const T* x, const T* gy, const T* y,
                               const float* gamma, const float* beta, const float* running_mean,
                               const float* running_var, float eps, T* gx, float* ggamma, float* gbeta,
                               T* gy_through_relu);
}  // namespace avx2

// CUDA kernels (cuda_batchnorm.cu, and cuda_batchnorm_channels_last.cu for channels-last tensors; built when
// CMake finds a CUDA compiler), float, double and bfloat16,
// same contracts: on the current device, on the compute stream, asynchronously; every pointer is device
// memory, and `device` (the current device) is where the kernels' scratch for per-channel sums is allocated.
// Statistics in one pass (shifted sums in double); every per-channel sum is added in a fixed order, without
// atomics, so results are the same on every run (not bitwise the reference's: the order differs).
namespace cuda {
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
}  // namespace cuda

}  // namespace kiln::kernels
