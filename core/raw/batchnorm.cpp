// Tensor-level calls of the batch-normalization kernels. Mixed dtypes, as batchnorm.hpp's kernels take
// them: x, y, gy, gx in x's dtype; gamma, beta, the running and saved statistics and ggamma, gbeta in its
// opmath dtype (float32 beside bfloat16, x's own dtype for float32 and float64).
#include "kernels/batchnorm/batchnorm.hpp"

#include "core/raw.hpp"
#include "kernels/cpu_level.hpp"
#include "kernels/elementwise/elementwise.hpp"

namespace kiln::raw {
namespace {

// The dtype of the per-channel tensors beside an input of dtype x: opmath_t of x's element type.
DType channel_dtype(DType x, std::string_view op) {
  return visit_floating(x, op, []<typename T>() { return dtype_of_v<opmath_t<T>>; });
}

// Throws unless every defined per-channel tensor has channel_dtype(x) and x's device.
void check_channel_dtype_and_device(std::string_view op, const Tensor& x,
                                    std::initializer_list<const Tensor*> per_channel) {
  const DType expected = channel_dtype(x.dtype(), op);
  for (const Tensor* t : per_channel) {
    if (!t->defined()) continue;
    KILN_CHECK(t->dtype() == expected, op, ": per-channel tensor ", t->describe(), " must be ",
               dtype_name(expected), " for an input of dtype ", dtype_name(x.dtype()));
    KILN_CHECK(t->device() == x.device(), op, ": device mismatch, ", x.device().str(), " and ",
               t->device().str());
  }
}

// The train forward of `input` (x in g's layout; `added`, the residual, likewise or undefined) into `result`,
// whose save_mean and save_invstd it makes: normalizing into result.output, or, with that undefined, the
// statistics alone (the CPU's vectorized kernels; the dispatch refuses it elsewhere).
void forward_train(const kernels::BatchNorm2dGeometry& g, const Tensor& x, const Tensor& input,
                   const Tensor& gamma, const Tensor& beta, const Tensor& running_mean,
                   const Tensor& running_var, const BatchNormOptions& options, const Tensor& added,
                   BatchNormResult& result) {
  KILN_CHECK(g.batch * g.height * g.width > 1,
             "batch_norm2d: training needs more than one value per channel, got ", x.shape());
  KILN_CHECK(running_mean.defined() == running_var.defined(),
             "batch_norm2d: running_mean and running_var must be given together");
  const DType statistics_dtype = channel_dtype(x.dtype(), "batch_norm2d");
  result.save_mean = Tensor::empty({g.channels}, statistics_dtype, x.device());
  result.save_invstd = Tensor::empty({g.channels}, statistics_dtype, x.device());
  visit_floating(x.dtype(), "batch_norm2d", [&]<typename T>() {
    using P = opmath_t<T>;
    kernels::batchnorm2d_forward_train<T>(x.device(), g, input.data<T>(), gamma.data<P>(), beta.data<P>(),
                                          static_cast<P>(options.eps), static_cast<P>(options.momentum),
                                          data_or_null<P>(running_mean), data_or_null<P>(running_var),
                                          data_or_null<T>(result.output), result.save_mean.data<P>(),
                                          result.save_invstd.data<P>(), data_or_null<T>(added));
  });
}

}  // namespace

kernels::BatchNorm2dGeometry batchnorm2d_geometry(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                                                  const Tensor& running_mean, const Tensor& running_var) {
  KILN_CHECK(x.dim() == 4, "batch_norm2d: input must be [N, C, H, W], got ", x.shape());
  check_channel_dtype_and_device("batch_norm2d", x, {&gamma, &beta, &running_mean, &running_var});
  const Shape channels{x.size(1)};
  for (const Tensor* t : {&gamma, &beta, &running_mean, &running_var}) {
    KILN_CHECK(!t->defined() || (t->shape() == channels && t->is_contiguous()), "batch_norm2d: per-channel tensor ",
               t->describe(), " must be a dense [", x.size(1), "] for input ", x.shape());
  }
  KILN_CHECK(gamma.defined() && beta.defined(), "batch_norm2d: gamma and beta are required");
  return {x.size(0), x.size(1), x.size(2), x.size(3)};
}

BatchNormResult batchnorm2d_forward(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                                    const Tensor& running_mean, const Tensor& running_var,
                                    const BatchNormOptions& options, const Tensor& residual) {
  kernels::BatchNorm2dGeometry g = batchnorm2d_geometry(x, gamma, beta, running_mean, running_var);
  g.fused_relu = options.fused_relu;
  g.relu_upper = options.relu_upper;
  g.fused_hardswish = options.fused_hardswish;
  g.channels_last = runs_channels_last(x);
  const Tensor input = in_layout(x, g.channels_last);
  Tensor added;  // the residual in x's layout, when there is one
  if (residual.defined()) {
    KILN_CHECK(residual.shape() == x.shape(), "batch_norm2d: residual ", residual.describe(),
               " must have the input's shape ", x.shape());
    check_same_dtype_and_device("batch_norm2d", x, {&residual});
    added = in_layout(residual, g.channels_last);
  }
  BatchNormResult result{empty_like(input), Tensor(), Tensor(), residual.defined() && options.fused_relu};
  if (options.training) {
    forward_train(g, x, input, gamma, beta, running_mean, running_var, options, added, result);
  } else {
    KILN_CHECK(running_mean.defined() && running_var.defined(),
               "batch_norm2d: eval mode needs running_mean and running_var");
    visit_floating(x.dtype(), "batch_norm2d", [&]<typename T>() {
      using P = opmath_t<T>;
      kernels::batchnorm2d_forward_eval<T>(x.device(), g, input.data<T>(), gamma.data<P>(), beta.data<P>(),
                                           running_mean.data<P>(), running_var.data<P>(),
                                           static_cast<P>(options.eps), result.output.data<T>(),
                                           data_or_null<T>(added));
    });
  }
  return result;
}

BatchNormResult batchnorm2d_statistics(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                                       const Tensor& running_mean, const Tensor& running_var,
                                       const BatchNormOptions& options) {
  kernels::BatchNorm2dGeometry g = batchnorm2d_geometry(x, gamma, beta, running_mean, running_var);
  KILN_CHECK(options.training && x.dtype() == DType::Float32 && x.device().is_cpu() &&
                 !runs_channels_last(x) && kernels::cpu_level() != kernels::CpuLevel::Reference,
             "batch_norm2d statistics: float NCHW training on the CPU's fast kernels only, got ",
             x.describe());
  g.fused_relu = options.fused_relu;
  g.relu_upper = options.relu_upper;
  g.fused_hardswish = options.fused_hardswish;
  BatchNormResult result;  // no output: the statistics alone
  forward_train(g, x, contiguous(x), gamma, beta, running_mean, running_var, options, Tensor(), result);
  return result;
}

ChannelNormalization batchnorm_channel_normalization(const BatchNormResult& saved, const Tensor& gamma,
                                                     const Tensor& beta, const BatchNormOptions& options) {
  // The normalizing pass's own coefficients: the saved mean, invstd * gamma as one float product, beta.
  return {.shift = saved.save_mean,
          .scale = binary(kernels::BinaryOp::Mul, saved.save_invstd, gamma, "batch_norm2d"),
          .offset = contiguous(beta),
          .relu = options.fused_relu,
          .relu_upper = options.relu_upper,
          .hardswish = options.fused_hardswish};
}

BatchNormGrads batchnorm2d_backward(const Tensor& gy, const Tensor& x, const Tensor& gamma,
                                    const Tensor& beta, const BatchNormResult& saved,
                                    const Tensor& running_mean, const Tensor& running_var,
                                    const BatchNormOptions& options, bool keep_through_relu) {
  kernels::BatchNorm2dGeometry g{.batch = x.size(0),
                                 .channels = x.size(1),
                                 .height = x.size(2),
                                 .width = x.size(3),
                                 .fused_relu = options.fused_relu,
                                 .relu_upper = options.relu_upper,
                                 .fused_hardswish = options.fused_hardswish};
  KILN_CHECK(!keep_through_relu || options.fused_relu,
             "batch_norm2d backward: the gradient through the ReLU needs the fused ReLU");
  // Without the output (batchnorm2d_statistics), the CPU's fast float kernels recompute the mask from x.
  const bool mask_from_x = x.device().is_cpu() && kernels::cpu_level() != kernels::CpuLevel::Reference &&
                           x.dtype() == DType::Float32 && !keep_through_relu;
  KILN_CHECK(!options.fused_relu || saved.output.defined() || mask_from_x,
             "batch_norm2d backward: the fused ReLU needs the forward's output");
  KILN_CHECK(!saved.residual_before_relu || keep_through_relu,
             "batch_norm2d backward: after a residual added before the ReLU, the gradient through the ReLU "
             "must be kept (it is the residual's)");
  check_same_dtype_and_device("batch_norm2d backward", x, {&gy, &saved.output});
  check_channel_dtype_and_device(
      "batch_norm2d backward", x,
      {&gamma, &beta, &saved.save_mean, &saved.save_invstd, &running_mean, &running_var});
  // Channels-last on the CPU when x is stored so (gy and the saved output are brought to it), else NCHW.
  g.channels_last = runs_channels_last(x);
  const Tensor input = in_layout(x, g.channels_last), grad_output = in_layout(gy, g.channels_last);
  const Tensor output =
      options.fused_relu && saved.output.defined() ? in_layout(saved.output, g.channels_last) : Tensor();
  const DType parameter_dtype = channel_dtype(x.dtype(), "batch_norm2d backward");
  BatchNormGrads grads{empty_like(input), Tensor::empty({g.channels}, parameter_dtype, x.device()),
                       Tensor::empty({g.channels}, parameter_dtype, x.device()),
                       keep_through_relu ? empty_like(input) : Tensor()};
  visit_floating(x.dtype(), "batch_norm2d backward", [&]<typename T>() {
    using P = opmath_t<T>;
    if (options.training) {
      kernels::batchnorm2d_backward_train<T>(
          x.device(), g, input.data<T>(), grad_output.data<T>(), data_or_null<T>(output), gamma.data<P>(),
          beta.data<P>(), saved.save_mean.data<P>(), saved.save_invstd.data<P>(), grads.x.data<T>(),
          grads.gamma.data<P>(), grads.beta.data<P>(), data_or_null<T>(grads.through_relu));
    } else {
      kernels::batchnorm2d_backward_eval<T>(
          x.device(), g, input.data<T>(), grad_output.data<T>(), data_or_null<T>(output), gamma.data<P>(),
          beta.data<P>(), running_mean.data<P>(), running_var.data<P>(), static_cast<P>(options.eps),
          grads.x.data<T>(), grads.gamma.data<P>(), grads.beta.data<P>(),
          data_or_null<T>(grads.through_relu));
    }
  });
  return grads;
}

}  // namespace kiln::raw
