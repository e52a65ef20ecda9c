// A tiny convolutional network written directly with kiln's differentiable ops, before layers/ exists:
//
//   images [N, C, S, S]
//   -> conv 3x3 (C -> 4, padding 1) + bias -> relu -> max-pool 2x2     [N, 4, S/2, S/2]
//   -> conv 3x3 (4 -> 8, padding 1) -> batch-norm -> relu               [N, 8, S/2, S/2]
//   -> global average pool -> linear (8 -> classes)                     [N, classes]
//
// Its parameters are plain leaf tensors; a training step is forward, cross-entropy, backward, and a
// plain gradient step. The toy example and the end-to-end test both train it.
#pragma once

#include <cmath>
#include <vector>

#include "core/generator.hpp"
#include "core/ops.hpp"

namespace kiln::examples {

class ToyConvNet {
 public:
  ToyConvNet(std::int64_t channels, std::int64_t classes, Generator& generator)
      : conv1_weight_(he_normal({4, channels, 3, 3}, channels * 9, generator)),
        conv1_bias_(parameter(Tensor::zeros({4}))),
        conv2_weight_(he_normal({8, 4, 3, 3}, 4 * 9, generator)),
        bn_gamma_(parameter(Tensor::ones({8}))),
        bn_beta_(parameter(Tensor::zeros({8}))),
        bn_running_mean_(Tensor::zeros({8})),
        bn_running_var_(Tensor::ones({8})),
        fc_weight_(he_normal({8, classes}, 8, generator)),
        fc_bias_(parameter(Tensor::zeros({classes}))) {}

  // logits [N, classes]. `training` selects batch statistics (and updates the running ones) or the
  // running statistics in batch-norm.
  Tensor forward(const Tensor& images, bool training) const {
    Tensor h = relu(conv2d(images, conv1_weight_, conv1_bias_, {.padding = {1, 1}}));
    h = max_pool2d(h, {.kernel = {2, 2}});
    h = conv2d(h, conv2_weight_, Tensor(), {.padding = {1, 1}});
    h = relu(batch_norm2d(h, bn_gamma_, bn_beta_, bn_running_mean_, bn_running_var_, {.training = training}));
    return matmul(global_avg_pool2d(h), fc_weight_) + fc_bias_;
  }

  // One step of plain gradient descent on the gradients of the last backward(); clears them.
  void gradient_step(double learning_rate) {
    NoGradGuard no_grad;
    for (Tensor* p : {&conv1_weight_, &conv1_bias_, &conv2_weight_, &bn_gamma_, &bn_beta_, &fc_weight_, &fc_bias_}) {
      if (p->grad().defined()) p->copy_(*p - learning_rate * p->grad());
      p->zero_grad();
    }
  }

 private:
  static Tensor parameter(Tensor t) { return t.set_requires_grad(), t; }
  // He et al. (2015) initialization for a layer followed by ReLU: normal with std sqrt(2 / fan_in), where
  // fan_in counts the inputs of one output unit (C_in * KH * KW for a conv, in_features for a linear).
  static Tensor he_normal(const Shape& shape, std::int64_t fan_in, Generator& generator) {
    return parameter(Tensor::randn(shape, DType::Float32, &generator, 0.0, std::sqrt(2.0 / static_cast<double>(fan_in))));
  }

  Tensor conv1_weight_, conv1_bias_, conv2_weight_, bn_gamma_, bn_beta_, bn_running_mean_, bn_running_var_,
      fc_weight_, fc_bias_;
};

// Fraction of rows of `logits` whose largest entry is at `labels`.
inline double accuracy(const Tensor& logits, const Tensor& labels) {
  const std::vector<std::int64_t> predicted = argmax(logits, 1).to_vector<std::int64_t>();
  const std::vector<std::int64_t> truth = labels.to_vector<std::int64_t>();
  std::int64_t correct = 0;
  for (std::size_t i = 0; i < truth.size(); ++i) correct += predicted[i] == truth[i];
  return static_cast<double>(correct) / static_cast<double>(truth.size());
}

}  // namespace kiln::examples
