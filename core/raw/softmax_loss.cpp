// Tensor-level calls of the softmax, cross-entropy, binary cross-entropy and dropout kernels.
#include "core/generator.hpp"
#include "core/raw.hpp"
#include "kernels/dropout/dropout.hpp"
#include "kernels/loss/bce_with_logits.hpp"
#include "kernels/loss/cross_entropy.hpp"
#include "kernels/softmax/softmax.hpp"

namespace kiln::raw {
namespace {

// A dense tensor normalized along `axis` as the kernels' [outer, dim, inner] view.
kernels::SoftmaxGeometry softmax_geometry(const Shape& shape, int axis, std::string_view op) {
  const int normalized = normalize_axis(axis, std::max(shape.rank(), 1), op);
  kernels::SoftmaxGeometry g;
  for (int i = 0; i < shape.rank(); ++i) {
    if (i < normalized) g.outer *= shape[i];
    else if (i == normalized) g.dim = shape[i];
    else g.inner *= shape[i];
  }
  return g;
}

template <typename Forward>
Tensor softmax_like_forward(const Tensor& x, int axis, std::string_view op, Forward forward) {
  const kernels::SoftmaxGeometry g = softmax_geometry(x.shape(), axis, op);
  const Tensor input = contiguous(x);
  Tensor output = Tensor::empty(x.shape(), x.dtype(), x.device());
  visit_float_or_double(x.dtype(), op, [&]<typename T>() { forward(g, input.data<T>(), output.data<T>()); });
  return output;
}

template <typename Backward>
Tensor softmax_like_backward(const Tensor& y, const Tensor& gy, int axis, std::string_view op, Backward backward) {
  const kernels::SoftmaxGeometry g = softmax_geometry(y.shape(), axis, op);
  const Tensor output = contiguous(y), grad_output = contiguous(gy);
  Tensor grad_input = Tensor::empty(y.shape(), y.dtype(), y.device());
  visit_float_or_double(y.dtype(), op, [&]<typename T>() {
    backward(g, output.data<T>(), grad_output.data<T>(), grad_input.data<T>());
  });
  return grad_input;
}

void check_cross_entropy_inputs(const Tensor& logits, const Tensor& labels, const Tensor& class_weight,
                                double smoothing) {
  KILN_CHECK(logits.dim() == 2, "cross_entropy: logits must be [N, C], got ", logits.shape());
  KILN_CHECK(labels.dtype() == DType::Int64 && labels.shape() == Shape{logits.size(0)},
             "cross_entropy: labels must be int64 [", logits.size(0), "], got ", labels.describe());
  KILN_CHECK(!class_weight.defined() || class_weight.shape() == Shape{logits.size(1)},
             "cross_entropy: class_weight must be [", logits.size(1), "], got ", class_weight.describe());
  check_same_dtype_and_device("cross_entropy", logits, {&class_weight});
  KILN_CHECK(smoothing >= 0.0 && smoothing < 1.0, "cross_entropy: label_smoothing ", smoothing,
             " must be in [0, 1)");
  // Labels on the CPU are checked here, naming the first bad one. Labels on a GPU are not read back (that
  // would make the host wait for the device at every step): the CUDA kernels give a sample whose label is out
  // of range a NaN loss and read nothing out of bounds, so the run stops at its NaN check, as PyTorch's
  // device-side assert stops it.
  if (!labels.device().is_cpu()) return;
  const std::int64_t classes = logits.size(1);
  for (std::int64_t label : labels.to_vector<std::int64_t>()) {
    KILN_CHECK(label >= 0 && label < classes, "cross_entropy: label ", label, " is outside [0, ", classes, ")");
  }
}

}  // namespace

Tensor softmax_forward(const Tensor& x, int axis) {
  return softmax_like_forward(x, axis, "softmax", [&]<typename T>(const auto& g, const T* in, T* out) {
    kernels::softmax_forward<T>(x.device(), g, in, out);
  });
}

Tensor softmax_backward(const Tensor& y, const Tensor& gy, int axis) {
  return softmax_like_backward(y, gy, axis, "softmax backward",
                               [&]<typename T>(const auto& g, const T* out, const T* grad_out, T* grad_in) {
                                 kernels::softmax_backward<T>(y.device(), g, out, grad_out, grad_in);
                               });
}

Tensor log_softmax_forward(const Tensor& x, int axis) {
  return softmax_like_forward(x, axis, "log_softmax", [&]<typename T>(const auto& g, const T* in, T* out) {
    kernels::log_softmax_forward<T>(x.device(), g, in, out);
  });
}

Tensor log_softmax_backward(const Tensor& y, const Tensor& gy, int axis) {
  return softmax_like_backward(y, gy, axis, "log_softmax backward",
                               [&]<typename T>(const auto& g, const T* out, const T* grad_out, T* grad_in) {
                                 kernels::log_softmax_backward<T>(y.device(), g, out, grad_out, grad_in);
                               });
}

CrossEntropyResult cross_entropy_forward(const Tensor& logits, const Tensor& labels, const Tensor& class_weight,
                                         double smoothing) {
  check_cross_entropy_inputs(logits, labels, class_weight, smoothing);
  const kernels::CrossEntropyGeometry g{logits.size(0), logits.size(1)};
  const Tensor input = contiguous(logits), targets = contiguous(labels);
  const Tensor weight = class_weight.defined() ? contiguous(class_weight) : Tensor();
  CrossEntropyResult result{Tensor::empty({g.batch}, logits.dtype(), logits.device()),
                            Tensor::empty(logits.shape(), logits.dtype(), logits.device())};
  visit_float_or_double(logits.dtype(), "cross_entropy", [&]<typename T>() {
    kernels::cross_entropy_forward<T>(logits.device(), g, input.data<T>(), targets.data<std::int64_t>(),
                                      data_or_null<T>(weight), static_cast<T>(smoothing), result.loss.data<T>(),
                                      result.log_probs.data<T>());
  });
  return result;
}

Tensor cross_entropy_backward(const CrossEntropyResult& saved, const Tensor& labels, const Tensor& class_weight,
                              double smoothing, const Tensor& gloss) {
  const Tensor& log_probs = saved.log_probs;
  const kernels::CrossEntropyGeometry g{log_probs.size(0), log_probs.size(1)};
  const Tensor targets = contiguous(labels), grad_loss = contiguous(gloss);
  const Tensor weight = class_weight.defined() ? contiguous(class_weight) : Tensor();
  Tensor grad_logits = Tensor::empty(log_probs.shape(), log_probs.dtype(), log_probs.device());
  visit_float_or_double(log_probs.dtype(), "cross_entropy backward", [&]<typename T>() {
    kernels::cross_entropy_backward<T>(log_probs.device(), g, log_probs.data<T>(), targets.data<std::int64_t>(),
                                       data_or_null<T>(weight), static_cast<T>(smoothing), grad_loss.data<T>(),
                                       grad_logits.data<T>());
  });
  return grad_logits;
}

Tensor bce_with_logits_forward(const Tensor& logits, const Tensor& targets, const Tensor& pos_weight) {
  check_same_dtype_and_device("binary_cross_entropy_with_logits", logits, {&targets, &pos_weight});
  KILN_CHECK(targets.shape() == logits.shape(), "binary_cross_entropy_with_logits: targets ", targets.describe(),
             " must match logits ", logits.describe());
  const Tensor input = contiguous(logits), target = contiguous(targets);
  // pos_weight is per label ([C] for [N, C] logits); the kernel reads it per element.
  const Tensor weight = pos_weight.defined() ? contiguous(pos_weight.expand(logits.shape())) : Tensor();
  Tensor loss = Tensor::empty(logits.shape(), logits.dtype(), logits.device());
  visit_float_or_double(logits.dtype(), "binary_cross_entropy_with_logits", [&]<typename T>() {
    kernels::bce_with_logits_forward<T>(logits.device(), logits.numel(), input.data<T>(), target.data<T>(),
                                        data_or_null<T>(weight), loss.data<T>());
  });
  return loss;
}

Tensor bce_with_logits_backward(const Tensor& logits, const Tensor& targets, const Tensor& pos_weight,
                                const Tensor& gloss) {
  const Tensor input = contiguous(logits), target = contiguous(targets), grad_loss = contiguous(gloss);
  const Tensor weight = pos_weight.defined() ? contiguous(pos_weight.expand(logits.shape())) : Tensor();
  Tensor grad_logits = Tensor::empty(logits.shape(), logits.dtype(), logits.device());
  visit_float_or_double(logits.dtype(), "binary_cross_entropy_with_logits backward", [&]<typename T>() {
    kernels::bce_with_logits_backward<T>(logits.device(), logits.numel(), input.data<T>(), target.data<T>(),
                                         data_or_null<T>(weight), grad_loss.data<T>(), grad_logits.data<T>());
  });
  return grad_logits;
}

DropoutResult dropout_forward(const Tensor& x, double p, Generator& generator) {
  KILN_CHECK(p >= 0.0 && p <= 1.0, "dropout: probability ", p, " must be in [0, 1]");
  const Tensor input = contiguous(x);
  DropoutResult result{Tensor::empty(x.shape(), x.dtype(), x.device()), Tensor::empty(x.shape(), x.dtype(), x.device())};
  const kernels::PhiloxState state = generator.take(static_cast<std::uint64_t>(x.numel()));
  visit_floating(x.dtype(), "dropout", [&]<typename T>() {
    kernels::dropout_forward<T>(x.device(), x.numel(), static_cast<opmath_t<T>>(p), state, input.data<T>(),
                                result.output.data<T>(), result.mask.data<T>());
  });
  return result;
}

}  // namespace kiln::raw
