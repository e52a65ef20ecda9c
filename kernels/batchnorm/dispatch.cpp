// The single dispatch point for the batch-normalization family: every caller goes through these functions,
// and only here is an implementation chosen. float and bfloat16 run the AVX-512 or AVX2 kernels when
// cpu_level() allows (bfloat16 activations in float lanes, rounded once when stored); double (gradient checks
// only) and the Reference level run the reference kernels. A CUDA device runs the CUDA kernels
// (cuda_batchnorm.cu), float, double and bfloat16.
#include <cmath>
#include <string>
#include <type_traits>

#include "core/error.hpp"
#include "core/profiler.hpp"
#include "kernels/batchnorm/batchnorm.hpp"
#include "kernels/cpu_level.hpp"

namespace kiln::kernels {
namespace {

// The geometry as the profiler's detail (core/profiler.hpp): "16 channels @32x32 n128", "+ residual" when a
// residual is added in, "+ relu" when the ReLU after it is fused in ("+ relu6" with its cap at 6), "+
// hardswish" when the hard swish is.
std::string profile_label(const BatchNorm2dGeometry& g, bool residual = false) {
  std::string label = std::to_string(g.channels) + " channels @" + std::to_string(g.height) + "x" +
                      std::to_string(g.width) + " n" + std::to_string(g.batch);
  if (residual) label += " + residual";
  label += fused_relu_label(g.fused_relu, g.relu_upper);
  if (g.fused_hardswish) label += " + hardswish";
  if (g.channels_last) label += " channels-last";
  return label;
}

// The fused activation as every kernel takes it. The ReLU's cap must be one T stores exactly, so the clamp
// and its mask agree on it (the vectorized kernels' mask test, batchnorm_vector_ops.hpp's
// highest_stored_below, counts on it), and above zero. The hard swish comes alone: not with the ReLU, and
// with neither a residual nor a kept gradient (both are the residual block's ReLU's, batchnorm.hpp).
template <typename T>
void check_fused_activation(const BatchNorm2dGeometry& g, const char* op, bool residual_or_kept) {
  KILN_CHECK(!g.fused_hardswish || (!g.fused_relu && !residual_or_kept), op,
             ": the fused hard swish takes neither a ReLU, a residual nor a kept gradient");
  if (std::isinf(g.relu_upper) && g.relu_upper > 0) return;
  KILN_CHECK(g.relu_upper > 0 && static_cast<float>(static_cast<T>(g.relu_upper)) == g.relu_upper, op,
             ": the fused ReLU's cap ", g.relu_upper, " must be above zero and exact in ",
             dtype_name(dtype_of_v<T>));
}

}  // namespace

std::string fused_relu_label(bool fused_relu, float relu_upper) {
  if (!fused_relu) return "";
  if (std::isinf(relu_upper)) return " + relu";
  return relu_upper == 6.0f ? " + relu6" : " + relu capped at " + std::to_string(relu_upper);
}

template <typename T>
void batchnorm2d_forward_train(Device device, const BatchNorm2dGeometry& g, const T* x,
                               const opmath_t<T>* gamma, const opmath_t<T>* beta, opmath_t<T> eps,
                               opmath_t<T> momentum, opmath_t<T>* running_mean, opmath_t<T>* running_var,
                               T* y, opmath_t<T>* save_mean, opmath_t<T>* save_invstd, const T* residual) {
  profiler::Scope profile("batchnorm2d_forward_train", device, dtype_of_v<T>);
  check_fused_activation<T>(g, "batchnorm2d_forward_train", residual != nullptr);
  if (profile.measuring())
    profile.set_detail(profile_label(g, residual != nullptr) + (y ? "" : " statistics"));
  KILN_CHECK(y || (device.is_cpu() && cpu_level() != CpuLevel::Reference && !std::is_same_v<T, double>),
             "batchnorm2d_forward_train: the statistics alone (no y) are the CPU's vectorized kernels'");
#ifdef KILN_WITH_CUDA
  if (device.is_cuda()) {
    return cuda::batchnorm2d_forward_train(device, g, x, gamma, beta, eps, momentum, running_mean,
                                           running_var, y, save_mean, save_invstd, residual);
  }
#endif
  require_cpu(device, "batchnorm2d_forward_train");
  if constexpr (std::is_same_v<T, float> || std::is_same_v<T, bfloat16>) {
    switch (cpu_level()) {
      case CpuLevel::Avx512:
        return avx512::batchnorm2d_forward_train(g, x, gamma, beta, eps, momentum, running_mean, running_var,
                                                 y, save_mean, save_invstd, residual);
      case CpuLevel::Avx2:
        return avx2::batchnorm2d_forward_train(g, x, gamma, beta, eps, momentum, running_mean, running_var, y,
                                               save_mean, save_invstd, residual);
      case CpuLevel::Reference:
        break;
    }
  }
  reference::batchnorm2d_forward_train(g, x, gamma, beta, eps, momentum, running_mean, running_var, y,
                                       save_mean, save_invstd, residual);
}

template <typename T>
void batchnorm2d_forward_eval(Device device, const BatchNorm2dGeometry& g, const T* x,
                              const opmath_t<T>* gamma, const opmath_t<T>* beta,
                              const opmath_t<T>* running_mean, const opmath_t<T>* running_var,
                              opmath_t<T> eps, T* y, const T* residual) {
  profiler::Scope profile("batchnorm2d_forward_eval", device, dtype_of_v<T>);
  check_fused_activation<T>(g, "batchnorm2d_forward_eval", residual != nullptr);
  if (profile.measuring()) profile.set_detail(profile_label(g, residual != nullptr));
#ifdef KILN_WITH_CUDA
  if (device.is_cuda()) {
    return cuda::batchnorm2d_forward_eval(g, x, gamma, beta, running_mean, running_var, eps, y, residual);
  }
#endif
  require_cpu(device, "batchnorm2d_forward_eval");
  if constexpr (std::is_same_v<T, float> || std::is_same_v<T, bfloat16>) {
    switch (cpu_level()) {
      case CpuLevel::Avx512:
        return avx512::batchnorm2d_forward_eval(g, x, gamma, beta, running_mean, running_var, eps, y,
                                                residual);
      case CpuLevel::Avx2:
        return avx2::batchnorm2d_forward_eval(g, x, gamma, beta, running_mean, running_var, eps, y, residual);
      case CpuLevel::Reference:
        break;
    }
  }
  reference::batchnorm2d_forward_eval(g, x, gamma, beta, running_mean, running_var, eps, y, residual);
}

template <typename T>
void batchnorm2d_backward_train(Device device, const BatchNorm2dGeometry& g, const T* x, const T* gy,
                                const T* y, const opmath_t<T>* gamma, const opmath_t<T>* beta,
                                const opmath_t<T>* save_mean, const opmath_t<T>* save_invstd, T* gx,
                                opmath_t<T>* ggamma, opmath_t<T>* gbeta, T* gy_through_relu) {
  profiler::Scope profile("batchnorm2d_backward_train", device, dtype_of_v<T>);
  check_fused_activation<T>(g, "batchnorm2d_backward_train", gy_through_relu != nullptr);
  if (profile.measuring()) profile.set_detail(profile_label(g, g.fused_relu && gy_through_relu));
#ifdef KILN_WITH_CUDA
  if (device.is_cuda()) {
    return cuda::batchnorm2d_backward_train(device, g, x, gy, y, gamma, beta, save_mean, save_invstd, gx,
                                            ggamma, gbeta, gy_through_relu);
  }
#endif
  require_cpu(device, "batchnorm2d_backward_train");
  if constexpr (std::is_same_v<T, float> || std::is_same_v<T, bfloat16>) {
    switch (cpu_level()) {
      case CpuLevel::Avx512:
        return avx512::batchnorm2d_backward_train(g, x, gy, y, gamma, beta, save_mean, save_invstd, gx,
                                                  ggamma, gbeta, gy_through_relu);
      case CpuLevel::Avx2:
        return avx2::batchnorm2d_backward_train(g, x, gy, y, gamma, beta, save_mean, save_invstd, gx, ggamma,
                                                gbeta, gy_through_relu);
      case CpuLevel::Reference:
        break;
    }
  }
  reference::batchnorm2d_backward_train(g, x, gy, y, gamma, beta, save_mean, save_invstd, gx, ggamma, gbeta,
                                        gy_through_relu);
}

template <typename T>
void batchnorm2d_backward_eval(Device device, const BatchNorm2dGeometry& g, const T* x, const T* gy,
                               const T* y, const opmath_t<T>* gamma, const opmath_t<T>* beta,
                               const opmath_t<T>* running_mean, const opmath_t<T>* running_var,
                               opmath_t<T> eps, T* gx, opmath_t<T>* ggamma, opmath_t<T>* gbeta,
                               T* gy_through_relu) {
  profiler::Scope profile("batchnorm2d_backward_eval", device, dtype_of_v<T>);
  check_fused_activation<T>(g, "batchnorm2d_backward_eval", gy_through_relu != nullptr);
  if (profile.measuring()) profile.set_detail(profile_label(g, g.fused_relu && gy_through_relu));
#ifdef KILN_WITH_CUDA
  if (device.is_cuda()) {
    return cuda::batchnorm2d_backward_eval(device, g, x, gy, y, gamma, beta, running_mean, running_var, eps,
                                           gx, ggamma, gbeta, gy_through_relu);
  }
#endif
  require_cpu(device, "batchnorm2d_backward_eval");
  if constexpr (std::is_same_v<T, float> || std::is_same_v<T, bfloat16>) {
    switch (cpu_level()) {
      case CpuLevel::Avx512:
        return avx512::batchnorm2d_backward_eval(g, x, gy, y, gamma, beta, running_mean, running_var, eps, gx,
                                                 ggamma, gbeta, gy_through_relu);
      case CpuLevel::Avx2:
        return avx2::batchnorm2d_backward_eval(g, x, gy, y, gamma, beta, running_mean, running_var, eps, gx,
                                               ggamma, gbeta, gy_through_relu);
      case CpuLevel::Reference:
        break;
    }
  }
  reference::batchnorm2d_backward_eval(g, x, gy, y, gamma, beta, running_mean, running_var, eps, gx, ggamma,
                                       gbeta, gy_through_relu);
}

template void batchnorm2d_forward_train<float>(Device, const BatchNorm2dGeometry&, const float*, const float*,
                                               const float*, float, float, float*, float*, float*, float*,
                                               float*, const float*);
template void batchnorm2d_forward_eval<float>(Device, const BatchNorm2dGeometry&, const float*, const float*,
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
template void batchnorm2d_forward_eval<double>(Device, const BatchNorm2dGeometry&, const double*,
                                               const double*, const double*, const double*, const double*,
                                               double, double*, const double*);
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
template void batchnorm2d_forward_eval<bfloat16>(Device, const BatchNorm2dGeometry&, const bfloat16*,
                                                 const float*, const float*, const float*, const float*,
                                                 float, bfloat16*, const bfloat16*);
template void batchnorm2d_backward_train<bfloat16>(Device, const BatchNorm2dGeometry&, const bfloat16*,
                                                   const bfloat16*, const bfloat16*, const float*,
                                                   const float*, const float*, const float*, bfloat16*,
                                                   float*, float*, bfloat16*);
template void batchnorm2d_backward_eval<bfloat16>(Device, const BatchNorm2dGeometry&, const bfloat16*,
                                                  const bfloat16*, const bfloat16*, const float*,
                                                  const float*, const float*, const float*, float, bfloat16*,
                                                  float*, float*, bfloat16*);

}  // namespace kiln::kernels
