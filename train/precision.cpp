#include "train/precision.hpp"

#include "core/error.hpp"

namespace kiln::train {

Precision parse_precision(std::string_view text, std::string_view flag) {
  if (text == "fp32") return Precision::Float32;
  if (text == "bf16") return Precision::BFloat16;
  fail(flag, " ", text, ": expected fp32 or bf16");
}

std::string_view precision_name(Precision precision) {
  return precision == Precision::BFloat16 ? "bf16" : "fp32";
}

DType activation_dtype(Precision precision) {
  return precision == Precision::BFloat16 ? DType::BFloat16 : DType::Float32;
}

Tensor forward_logits(layers::Module& model, const Tensor& images, Precision precision) {
  // Both casts are differentiable (and identities under fp32): the loss's gradient reaches the model as
  // bfloat16 through the second, and nothing flows into the images through the first.
  return model(images.to(activation_dtype(precision))).to(DType::Float32);
}

}  // namespace kiln::train
