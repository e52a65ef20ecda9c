// The precision a ladder step computes in: what its multiplies see. Every step of both ladders (the GEMM
// ladder, kernels/gemm/ladder, and the convolution ladder, kernels/conv2d/ladder) sums in float and writes
// float; the precision names the operands.
//
//   fp32  float operands, float multiplies (SIMT cores): the reference's result up to float summation.
//   tf32  float operands read by the tensor cores as TF32 (8-bit exponent, 10-bit mantissa): each operand
//         loses its low 13 mantissa bits, about 2^-11 relative, before an exact product.
//   bf16  bfloat16 operands (8-bit exponent, 7-bit mantissa), products exact in float: the only error is
//         the float summation, measured against the reference on the same bfloat16 values.
#pragma once

#include <string_view>

namespace kiln::kernels::ladder {

enum class Precision { Fp32, Tf32, Bf16 };

constexpr std::string_view precision_name(Precision precision) {
  switch (precision) {
    case Precision::Fp32:
      return "fp32";
    case Precision::Tf32:
      return "tf32";
    case Precision::Bf16:
      return "bf16";
  }
  return "?";
}

// The operand's relative rounding before it is multiplied: 0 where the multiply sees the stored value.
// tf32 keeps 10 mantissa bits; the tensor cores may truncate rather than round, so one unit of the last
// kept place (2^-10), not half of one, bounds it.
constexpr double operand_rounding(Precision precision) {
  return precision == Precision::Tf32 ? 0x1p-10 : 0.0;
}

}  // namespace kiln::kernels::ladder
