// Elementwise activation layers: any shape in, the same shape out, no parameters. Each wraps the
// differentiable op of the same name in core/ops.hpp.
//
//   ReLU       max(x, 0)
//   ReLU6      min(max(x, 0), 6) (MobileNetV2's, which keeps activations in a range low precision holds)
//   LeakyReLU  x if x > 0, else negative_slope * x
//   Sigmoid    1 / (1 + exp(-x))
//   Tanh       tanh(x)
//   GELU       x * Phi(x), Phi the standard normal CDF (Hendrycks and Gimpel, 2016)
//   SiLU       x * sigmoid(x) (Swish: Ramachandran et al. 2017; EfficientNet's and YOLOv5's)
//   Hardsigmoid  relu6(x + 3) / 6, a piecewise-linear sigmoid (MobileNetV3's: Howard et al. 2019)
//   Hardswish    x * relu6(x + 3) / 6, a piecewise-polynomial SiLU (MobileNetV3's)
#pragma once

#include <string>

#include "layers/module.hpp"

namespace kiln::layers {

class ReLU : public Module {
 public:
  Tensor forward(const Tensor& input) override { return relu(input); }
  std::string describe() const override { return "ReLU()"; }
};

class ReLU6 : public Module {
 public:
  Tensor forward(const Tensor& input) override { return clamp(input, 0.0, 6.0); }
  std::string describe() const override { return "ReLU6()"; }
};

class LeakyReLU : public Module {
 public:
  explicit LeakyReLU(double negative_slope = 0.01);
  Tensor forward(const Tensor& input) override { return leaky_relu(input, negative_slope_); }
  std::string describe() const override;  // "LeakyReLU(negative_slope=0.01)"
  double negative_slope() const { return negative_slope_; }

 private:
  double negative_slope_;
};

class Sigmoid : public Module {
 public:
  Tensor forward(const Tensor& input) override { return sigmoid(input); }
  std::string describe() const override { return "Sigmoid()"; }
};

class Tanh : public Module {
 public:
  Tensor forward(const Tensor& input) override { return tanh(input); }
  std::string describe() const override { return "Tanh()"; }
};

class GELU : public Module {
 public:
  Tensor forward(const Tensor& input) override { return gelu(input); }
  std::string describe() const override { return "GELU()"; }
};

class SiLU : public Module {
 public:
  Tensor forward(const Tensor& input) override { return silu(input); }
  std::string describe() const override { return "SiLU()"; }
};

class Hardsigmoid : public Module {
 public:
  Tensor forward(const Tensor& input) override { return hardsigmoid(input); }
  std::string describe() const override { return "Hardsigmoid()"; }
};

class Hardswish : public Module {
 public:
  Tensor forward(const Tensor& input) override { return hardswish(input); }
  std::string describe() const override { return "Hardswish()"; }
};

}  // namespace kiln::layers
