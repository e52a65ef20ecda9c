// Linear: a fully connected layer, y = x W^T + b.
//
//   input [N, in_features] -> output [N, out_features]
//
// weight [out_features, in_features] (PyTorch's layout: row o holds the input weights of output o),
// bias [out_features].
#pragma once

#include <cstdint>
#include <string>

#include "core/generator.hpp"
#include "layers/module.hpp"

namespace kiln::layers {

class Linear : public Module {
 public:
  // PyTorch's default initialization: weight and bias uniform in +-1/sqrt(in_features).
  Linear(std::int64_t in_features, std::int64_t out_features, Generator& generator, bool bias = true);

  Tensor forward(const Tensor& input) override;
  std::string describe() const override;  // "Linear(in_features=64, out_features=10, bias=true)"

  const Tensor& weight() const { return weight_; }
  const Tensor& bias() const { return bias_; }  // undefined when the layer has no bias
  std::int64_t in_features() const { return in_features_; }
  std::int64_t out_features() const { return out_features_; }

 private:
  std::int64_t in_features_, out_features_;
  Tensor weight_, bias_;
};

}  // namespace kiln::layers
