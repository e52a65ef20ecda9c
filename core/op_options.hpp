// Option structs of the nn ops: plain values, shared by the differentiable API (core/ops.hpp) and the
// tensor-level kernel calls (core/raw.hpp). Pairs are (height, width).
#pragma once

#include <array>
#include <cstdint>
#include <limits>

namespace kiln {

using Pair = std::array<std::int64_t, 2>;

struct Conv2dOptions {
  Pair stride{1, 1};
  Pair padding{0, 0};
  Pair dilation{1, 1};
  std::int64_t groups = 1;
};

struct Pool2dOptions {
  Pair kernel{2, 2};
  Pair stride{0, 0};  // {0, 0} means "equal to the kernel", as in PyTorch
  Pair padding{0, 0};
  bool ceil_mode = false;
  bool count_include_pad = true;  // average pooling only
};

struct BatchNormOptions {
  bool training = true;
  double momentum = 0.1;
  double eps = 1e-5;
  // relu(batch_norm2d(x)) as one op: the ReLU runs inside batchnorm's passes (kernels/batchnorm).
  bool fused_relu = false;
  // The fused ReLU's cap, min(relu(...), relu_upper): +inf for none, 6 for ReLU6 (clamp(x, 0, 6)'s value and
  // gradient). Above zero and exact in the activations' dtype.
  float relu_upper = std::numeric_limits<float>::infinity();
  // hardswish(batch_norm2d(x)) as one op (MobileNetV3's BN -> hard swish): the hard swish runs inside batch
  // norm's passes, its gradient recomputed from x. Not with fused_relu, nor a residual.
  bool fused_hardswish = false;
};

enum class Reduction { None, Mean, Sum };

struct CrossEntropyOptions {
  double label_smoothing = 0.0;
  Reduction reduction = Reduction::Mean;
};

}  // namespace kiln
