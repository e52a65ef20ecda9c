// The arithmetic precision a model trains and evaluates in (`kiln train --precision fp32|bf16`).
//
// fp32: everything in float32.
// bf16: mixed precision. The input batch enters the model as bfloat16, so activations are stored in
//   bfloat16 (half the memory traffic and activation memory of fp32); convolutions and linear layers
//   multiply bfloat16 copies of their float32 weights with float32 accumulation (layers/compute_dtype.hpp);
//   batch normalization keeps float32 statistics. The logits return to float32 before the loss, softmax and
//   metrics, so losses and gradients of the loss start in float32; the optimizer updates float32 master
//   weights. bfloat16 has float32's exponent range, so no loss scaling is needed (float16 would need it).
//
// A checkpoint holds only float32 state, so precision is a choice of the process, like --device: a run can
// resume in the other precision, and prediction always runs in float32.
#pragma once

#include <string>
#include <string_view>

#include "core/tensor.hpp"
#include "layers/module.hpp"

namespace kiln::train {

enum class Precision { Float32, BFloat16 };

// "fp32" or "bf16"; anything else throws naming `flag` and the accepted values.
Precision parse_precision(std::string_view text, std::string_view flag = "--precision");
std::string_view precision_name(Precision precision);  // "fp32" | "bf16"
// The dtype activations are stored in under `precision`.
DType activation_dtype(Precision precision);

// The model's float32 logits for `images` (float32, as the loader gives them), computed in `precision`.
Tensor forward_logits(layers::Module& model, const Tensor& images, Precision precision);

}  // namespace kiln::train
