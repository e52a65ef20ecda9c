// Mixed precision inside a layer.
//
// A layer's parameters stay float32: they are the master weights the optimizer updates. When activations
// arrive in bfloat16 (`kiln train --precision bf16`), a convolution or linear layer computes with a bfloat16
// copy of its weight and bias made by the differentiable cast Tensor::to(DType), so the bfloat16 gradient
// flows back through the cast into the parameter's float32 gradient. The GEMM under the layer multiplies
// bfloat16 operands and accumulates in float32. Batch normalization makes no copy: its kernels take
// bfloat16 activations with float32 parameters and statistics directly.
#pragma once

#include "core/tensor.hpp"

namespace kiln::layers {

// `parameter` (float32) as bfloat16 when `input` is bfloat16; the parameter itself otherwise, so a float64
// gradient check or any other dtype mismatch reaches the op unchanged (and the op reports a mismatch).
// An undefined parameter (no bias) stays undefined.
inline Tensor as_compute_dtype(const Tensor& parameter, const Tensor& input) {
  const bool mixed =
      parameter.defined() && parameter.dtype() == DType::Float32 && input.dtype() == DType::BFloat16;
  return mixed ? parameter.to(DType::BFloat16) : parameter;
}

}  // namespace kiln::layers
