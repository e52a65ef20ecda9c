// Reference elementwise kernels: plain loops that read like the formulas in elementwise.hpp. They are the
// oracle every optimized elementwise kernel is tested against, so clarity beats speed here.
//
//   unary:   x, y, gy, gx  [n] dense
//   binary:  a, b  read through their own strides over sizes[rank] (stride 0 = broadcast);  out dense
//   copy:    src, dst  each read / written through its own strides over sizes[rank]
//
// Unary and binary values are computed in double and rounded once to T (float, double or bfloat16), so a
// float or bfloat16 result is as close to the true value as T can hold (for + - * / on float this is
// exactly what float arithmetic gives). bfloat16 operands are read exactly (their implicit widening).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numbers>

#include "core/bfloat16.hpp"
#include "kernels/elementwise/elementwise.hpp"
#include "kernels/elementwise/strided_walk.hpp"

namespace kiln::kernels::reference {
namespace {

// 1 / (1 + e^-x), written so neither branch can overflow: for x >= 0, e^-x <= 1; for x < 0 it uses the
// equal form e^x / (1 + e^x), where e^x < 1. Either way a large |x| only underflows to 0 or 1.
double sigmoid(double x) {
  if (x >= 0) return 1.0 / (1.0 + std::exp(-x));
  const double e = std::exp(x);
  return e / (1.0 + e);
}

// Phi(x), the standard normal CDF, and phi(x), its density. Phi as erfc(-x / sqrt 2) / 2, the same
// function as (1 + erf(x / sqrt 2)) / 2, but without that form's cancellation below zero, where erf nears
// -1: it rounded Phi to 0 for x below -8.3 (GELU's -2.3e-16 at -8.375 became -0).
double normal_cdf(double x) { return 0.5 * std::erfc(-x / std::numbers::sqrt2); }
double normal_pdf(double x) { return std::exp(-0.5 * x * x) / std::sqrt(2.0 * std::numbers::pi); }

// MobileNetV3's piecewise-linear sigmoid, relu6(x + 3) / 6 (PyTorch's hardsigmoid), NaN passing through.
double hard_sigmoid(double x) { return std::min(std::max(x + 3.0, 0.0), 6.0) / 6.0; }

// op(x).
double unary_value(UnaryOp op, const UnaryParams& params, double x) {
  switch (op) {
    case UnaryOp::Neg:
      return -x;
    case UnaryOp::Exp:
      return std::exp(x);
    case UnaryOp::Log:
      return std::log(x);
    case UnaryOp::Sqrt:
      return std::sqrt(x);
    case UnaryOp::Abs:
      return std::abs(x);
    case UnaryOp::Relu:
      return x < 0 ? 0.0 : x;  // written so a NaN passes through, as in PyTorch
    case UnaryOp::LeakyRelu:
      return x > 0 ? x : params.alpha * x;
    case UnaryOp::Sigmoid:
      return sigmoid(x);
    case UnaryOp::Tanh:
      return std::tanh(x);
    case UnaryOp::Gelu:
      return x * normal_cdf(x);
    case UnaryOp::Silu:
      return x * sigmoid(x);
    case UnaryOp::Hardsigmoid:
      return hard_sigmoid(x);
    case UnaryOp::Hardswish:
      return x * hard_sigmoid(x);
    case UnaryOp::Clamp:
      return std::min(std::max(x, params.low), params.high);
  }
  return x;  // unreachable: every op is handled above
}

// op'(x), given the forward's input x and output y = op(x).
double unary_derivative(UnaryOp op, const UnaryParams& params, double x, double y) {
  switch (op) {
    case UnaryOp::Neg:
      return -1.0;
    case UnaryOp::Exp:
      return std::exp(x);
    case UnaryOp::Log:
      return 1.0 / x;
    case UnaryOp::Sqrt:
      return 0.5 / std::sqrt(x);
    case UnaryOp::Abs:
      return x > 0 ? 1.0 : x < 0 ? -1.0 : 0.0;
    case UnaryOp::Relu:
      return x > 0 ? 1.0 : 0.0;
    case UnaryOp::LeakyRelu:
      return x > 0 ? 1.0 : params.alpha;
    case UnaryOp::Sigmoid:
      return y * (1.0 - y);  // s' = s (1 - s)
    case UnaryOp::Tanh:
      return 1.0 - y * y;  // tanh' = 1 - tanh^2
    case UnaryOp::Gelu:
      return normal_cdf(x) + x * normal_pdf(x);  // (x Phi(x))' = Phi(x) + x phi(x)
    case UnaryOp::Silu: {
      const double s = sigmoid(x);  // (x s)' = s + x s (1 - s)
      return s * (1.0 + x * (1.0 - s));
    }
    case UnaryOp::Hardsigmoid:
      return -3.0 < x && x < 3.0 ? 1.0 / 6.0 : 0.0;
    case UnaryOp::Hardswish:  // (x (x + 3) / 6)' inside; 0 and x's 1 outside (PyTorch's, but for the kinks)
      return x <= -3.0 ? 0.0 : x >= 3.0 ? 1.0 : (2.0 * x + 3.0) / 6.0;
    case UnaryOp::Clamp:
      return params.low < x && x < params.high ? 1.0 : 0.0;
  }
  return 0.0;  // unreachable: every op is handled above
}

// op(a, b). Maximum and Minimum let a NaN in either operand through, as PyTorch does.
double binary_value(BinaryOp op, double a, double b) {
  switch (op) {
    case BinaryOp::Add:
      return a + b;
    case BinaryOp::Sub:
      return a - b;
    case BinaryOp::Mul:
      return a * b;
    case BinaryOp::Div:
      return a / b;
    case BinaryOp::Pow:
      return std::pow(a, b);
    case BinaryOp::Maximum:
      if (std::isnan(a) || std::isnan(b)) return std::numeric_limits<double>::quiet_NaN();
      return std::max(a, b);
    case BinaryOp::Minimum:
      if (std::isnan(a) || std::isnan(b)) return std::numeric_limits<double>::quiet_NaN();
      return std::min(a, b);
    case BinaryOp::Equal:
      return a == b ? 1.0 : 0.0;
    case BinaryOp::Greater:
      return a > b ? 1.0 : 0.0;
    case BinaryOp::AddRelu: {
      const double sum = a + b;
      return sum < 0 ? 0.0 : sum;  // written so a NaN passes through, as relu does
    }
  }
  return 0.0;  // unreachable: every op is handled above
}

}  // namespace

// ---- unary -------------------------------------------------------------------------------------------

// y[i] = op(x[i]).
template <typename T>
void unary_forward(UnaryOp op, const UnaryParams& params, std::int64_t n, const T* x, T* y) {
  for (std::int64_t i = 0; i < n; ++i) y[i] = static_cast<T>(unary_value(op, params, x[i]));
}

// gx[i] = gy[i] * op'(x[i]). Each element is read before it is written, so gx may alias gy.
template <typename T>
void unary_backward(UnaryOp op, const UnaryParams& params, std::int64_t n, const T* x, const T* y,
                    const T* gy, T* gx) {
  for (std::int64_t i = 0; i < n; ++i) {
    gx[i] = static_cast<T>(gy[i] * unary_derivative(op, params, x[i], y[i]));
  }
}

// ---- binary ------------------------------------------------------------------------------------------

// out[index] = op(a[index . a_strides], b[index . b_strides]) for every index in sizes[rank]; out is dense,
// so its offset is simply the running count i.
template <typename T>
void binary_forward(BinaryOp op, int rank, const std::int64_t* sizes, const T* a,
                    const std::int64_t* a_strides, const T* b, const std::int64_t* b_strides, T* out) {
  const std::int64_t count = index_space_size(rank, sizes);
  StridedWalk<2> walk(rank, sizes, {a_strides, b_strides});
  for (std::int64_t i = 0; i < count; ++i, walk.advance()) {
    out[i] = static_cast<T>(binary_value(op, a[walk.offset(0)], b[walk.offset(1)]));
  }
}

// ---- copy and fill -----------------------------------------------------------------------------------

// dst[index . dst_strides] = Dst(src[index . src_strides]). The conversion is static_cast: floating to
// integer truncates toward zero, and a value Dst cannot hold (NaN, out of range) is not defined; to
// bfloat16 it rounds to nearest even (NaN, infinities and signed zeros kept), from bfloat16 it is exact.
template <typename Src, typename Dst>
void copy_strided(int rank, const std::int64_t* sizes, const Src* src, const std::int64_t* src_strides,
                  Dst* dst, const std::int64_t* dst_strides) {
  const std::int64_t count = index_space_size(rank, sizes);
  StridedWalk<2> walk(rank, sizes, {src_strides, dst_strides});
  for (std::int64_t i = 0; i < count; ++i, walk.advance()) {
    dst[walk.offset(1)] = static_cast<Dst>(src[walk.offset(0)]);
  }
}

// out[i] = value.
template <typename T>
void fill(std::int64_t n, T value, T* out) {
  for (std::int64_t i = 0; i < n; ++i) out[i] = value;
}

// ---- instantiations ----------------------------------------------------------------------------------

template void unary_forward<float>(UnaryOp, const UnaryParams&, std::int64_t, const float*, float*);
template void unary_forward<double>(UnaryOp, const UnaryParams&, std::int64_t, const double*, double*);
template void unary_forward<bfloat16>(UnaryOp, const UnaryParams&, std::int64_t, const bfloat16*, bfloat16*);
template void unary_backward<float>(UnaryOp, const UnaryParams&, std::int64_t, const float*, const float*,
                                    const float*, float*);
template void unary_backward<double>(UnaryOp, const UnaryParams&, std::int64_t, const double*, const double*,
                                     const double*, double*);
template void unary_backward<bfloat16>(UnaryOp, const UnaryParams&, std::int64_t, const bfloat16*,
                                       const bfloat16*, const bfloat16*, bfloat16*);

template void binary_forward<float>(BinaryOp, int, const std::int64_t*, const float*, const std::int64_t*,
                                    const float*, const std::int64_t*, float*);
template void binary_forward<double>(BinaryOp, int, const std::int64_t*, const double*, const std::int64_t*,
                                     const double*, const std::int64_t*, double*);
template void binary_forward<bfloat16>(BinaryOp, int, const std::int64_t*, const bfloat16*,
                                       const std::int64_t*, const bfloat16*, const std::int64_t*, bfloat16*);

// copy_strided: every pair of float, double, bfloat16 and int64, and uint8 -> float / double / bfloat16
// (decoded images).
template void copy_strided<float, float>(int, const std::int64_t*, const float*, const std::int64_t*, float*,
                                         const std::int64_t*);
template void copy_strided<float, double>(int, const std::int64_t*, const float*, const std::int64_t*,
                                          double*, const std::int64_t*);
template void copy_strided<float, std::int64_t>(int, const std::int64_t*, const float*, const std::int64_t*,
                                                std::int64_t*, const std::int64_t*);
template void copy_strided<double, float>(int, const std::int64_t*, const double*, const std::int64_t*,
                                          float*, const std::int64_t*);
template void copy_strided<double, double>(int, const std::int64_t*, const double*, const std::int64_t*,
                                           double*, const std::int64_t*);
template void copy_strided<double, std::int64_t>(int, const std::int64_t*, const double*, const std::int64_t*,
                                                 std::int64_t*, const std::int64_t*);
template void copy_strided<std::int64_t, float>(int, const std::int64_t*, const std::int64_t*,
                                                const std::int64_t*, float*, const std::int64_t*);
template void copy_strided<std::int64_t, double>(int, const std::int64_t*, const std::int64_t*,
                                                 const std::int64_t*, double*, const std::int64_t*);
template void copy_strided<std::int64_t, std::int64_t>(int, const std::int64_t*, const std::int64_t*,
                                                       const std::int64_t*, std::int64_t*,
                                                       const std::int64_t*);
template void copy_strided<std::uint8_t, float>(int, const std::int64_t*, const std::uint8_t*,
                                                const std::int64_t*, float*, const std::int64_t*);
template void copy_strided<std::uint8_t, double>(int, const std::int64_t*, const std::uint8_t*,
                                                 const std::int64_t*, double*, const std::int64_t*);

template void copy_strided<std::uint8_t, bfloat16>(int, const std::int64_t*, const std::uint8_t*,
                                                   const std::int64_t*, bfloat16*, const std::int64_t*);
template void copy_strided<float, bfloat16>(int, const std::int64_t*, const float*, const std::int64_t*,
                                            bfloat16*, const std::int64_t*);
template void copy_strided<double, bfloat16>(int, const std::int64_t*, const double*, const std::int64_t*,
                                             bfloat16*, const std::int64_t*);
template void copy_strided<std::int64_t, bfloat16>(int, const std::int64_t*, const std::int64_t*,
                                                   const std::int64_t*, bfloat16*, const std::int64_t*);
template void copy_strided<bfloat16, bfloat16>(int, const std::int64_t*, const bfloat16*, const std::int64_t*,
                                               bfloat16*, const std::int64_t*);
template void copy_strided<bfloat16, float>(int, const std::int64_t*, const bfloat16*, const std::int64_t*,
                                            float*, const std::int64_t*);
template void copy_strided<bfloat16, double>(int, const std::int64_t*, const bfloat16*, const std::int64_t*,
                                             double*, const std::int64_t*);
template void copy_strided<bfloat16, std::int64_t>(int, const std::int64_t*, const bfloat16*,
                                                   const std::int64_t*, std::int64_t*, const std::int64_t*);

template void fill<float>(std::int64_t, float, float*);
template void fill<double>(std::int64_t, double, double*);
template void fill<bfloat16>(std::int64_t, bfloat16, bfloat16*);
template void fill<std::int64_t>(std::int64_t, std::int64_t, std::int64_t*);
// int32 (max pooling's argmax) only moves as itself.
template void copy_strided<std::int32_t, std::int32_t>(int, const std::int64_t*, const std::int32_t*,
                                                       const std::int64_t*, std::int32_t*,
                                                       const std::int64_t*);
template void fill<std::int32_t>(std::int64_t, std::int32_t, std::int32_t*);

}  // namespace kiln::kernels::reference
