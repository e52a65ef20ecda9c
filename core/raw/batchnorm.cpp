// Tensor-level calls of the batch-normalization kernels.
#include "core/raw.hpp"
#include "kernels/batchnorm/batchnorm.hpp"

namespace kiln::raw {
namespace {

kernels::BatchNorm2dGeometry batchnorm_geometry(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                                                const Tensor& running_mean, const Tensor& running_var) {
  KILN_CHECK(x.dim() == 4, "batch_norm2d: input must be [N, C, H, W], got ", x.shape());
  check_same_dtype_and_device("batch_norm2d", x, {&gamma, &beta, &running_mean, &running_var});
  const Shape channels{x.size(1)};
  for (const Tensor* t : {&gamma, &beta, &running_mean, &running_var}) {
    KILN_CHECK(!t->defined() || (t->shape() == channels && t->is_contiguous()), "batch_norm2d: per-channel tensor ",
               t->describe(), " must be a dense [", x.size(1), "] for input ", x.shape());
  }
  KILN_CHECK(gamma.defined() && beta.defined(), "batch_norm2d: gamma and beta are required");
  return {x.size(0), x.size(1), x.size(2), x.size(3)};
}

template <typename T> T* data_or_null(const Tensor& t) { return t.defined() ? t.data<T>() : nullptr; }

}  // namespace

BatchNormResult batchnorm2d_forward(const Tensor& x, const Tensor& gamma, const Tensor& beta,
                                    const Tensor& running_mean, const Tensor& running_var,
                                    const BatchNormOptions& options) {
  kernels::BatchNorm2dGeometry g = batchnorm_geometry(x, gamma, beta, running_mean, running_var);
  g.fused_relu = options.fused_relu;
  const Tensor input = contiguous(x);
  BatchNormResult result{Tensor::empty(x.shape(), x.dtype(), x.device()), Tensor(), Tensor()};
  if (options.training) {
    KILN_CHECK(g.batch * g.height * g.width > 1, "batch_norm2d: training needs more than one value per channel, got ",
               x.shape());
    KILN_CHECK(running_mean.defined() == running_var.defined(),
               "batch_norm2d: running_mean and running_var must be given together");
    result.save_mean = Tensor::empty({g.channels}, x.dtype(), x.device());
    result.save_invstd = Tensor::empty({g.channels}, x.dtype(), x.device());
    visit_floating(x.dtype(), "batch_norm2d", [&]<typename T>() {
      kernels::batchnorm2d_forward_train<T>(x.device(), g, input.data<T>(), gamma.data<T>(), beta.data<T>(),
                                            static_cast<T>(options.eps), static_cast<T>(options.momentum),
                                            data_or_null<T>(running_mean), data_or_null<T>(running_var),
                                            result.output.data<T>(), result.save_mean.data<T>(),
                                            result.save_invstd.data<T>());
    });
  } else {
    KILN_CHECK(running_mean.defined() && running_var.defined(),
               "batch_norm2d: eval mode needs running_mean and running_var");
    visit_floating(x.dtype(), "batch_norm2d", [&]<typename T>() {
      kernels::batchnorm2d_forward_eval<T>(x.device(), g, input.data<T>(), gamma.data<T>(), beta.data<T>(),
                                           running_mean.data<T>(), running_var.data<T>(),
                                           static_cast<T>(options.eps), result.output.data<T>());
    });
  }
  return result;
}

BatchNormGrads batchnorm2d_backward(const Tensor& gy, const Tensor& x, const Tensor& gamma,
                                    const BatchNormResult& saved, const Tensor& running_mean,
                                    const Tensor& running_var, const BatchNormOptions& options) {
  const kernels::BatchNorm2dGeometry g{x.size(0), x.size(1), x.size(2), x.size(3), options.fused_relu};
  KILN_CHECK(!options.fused_relu || saved.output.defined(),
             "batch_norm2d backward: the fused ReLU needs the forward's output");
  const Tensor input = contiguous(x), grad_output = contiguous(gy);
  const Tensor output = options.fused_relu ? contiguous(saved.output) : Tensor();
  BatchNormGrads grads{Tensor::empty(x.shape(), x.dtype(), x.device()),
                       Tensor::empty({g.channels}, x.dtype(), x.device()),
                       Tensor::empty({g.channels}, x.dtype(), x.device())};
  visit_floating(x.dtype(), "batch_norm2d backward", [&]<typename T>() {
    if (options.training) {
      kernels::batchnorm2d_backward_train<T>(x.device(), g, input.data<T>(), grad_output.data<T>(),
                                             data_or_null<T>(output), gamma.data<T>(),
                                             saved.save_mean.data<T>(), saved.save_invstd.data<T>(),
                                             grads.x.data<T>(), grads.gamma.data<T>(), grads.beta.data<T>());
    } else {
      kernels::batchnorm2d_backward_eval<T>(x.device(), g, input.data<T>(), grad_output.data<T>(),
                                            data_or_null<T>(output), gamma.data<T>(),
                                            running_mean.data<T>(), running_var.data<T>(),
                                            static_cast<T>(options.eps), grads.x.data<T>(), grads.gamma.data<T>(),
                                            grads.beta.data<T>());
    }
  });
  return grads;
}

}  // namespace kiln::raw
