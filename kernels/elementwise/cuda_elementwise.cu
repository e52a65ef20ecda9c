// Elementwise kernels on a CUDA device (elementwise.hpp): unary maps and their backward, broadcasting binary
// maps, strided copies. The same math as reference.cpp, element for element:
//
//   unary:   x, y, gy, gx  [n] dense
//   binary:  a, b  read through their own strides over sizes[rank] (stride 0 = broadcast);  out dense
//   copy:    src, dst  each read / written through its own strides over sizes[rank]
//
// Launch geometry, every kernel here: blocks of kThreadsPerBlock threads, one element per thread per step of
// a grid-stride loop (at most kMaxGridBlocks blocks), so any element count runs in one launch.
//
// T is float, double or bfloat16. Values are computed in double and rounded once to T, exactly as the
// reference does (bfloat16 operands widen exactly; nothing accumulates): the results then agree with the
// CPU's to the last bit for + - * / and comparisons, and to the few ulps by which CUDA's double exp, log,
// tanh, erf and pow differ from glibc's for the rest (for bfloat16 that moves a result by at most one
// bfloat16 ulp, and only when the double lands next to a rounding boundary). These kernels are bound by
// memory traffic, and sm_90 runs double arithmetic at half the float rate, so the double costs little.
// Copies convert with static_cast, to bfloat16 by kiln::bfloat16's round-to-nearest-even, the CPU's own.
//
// Strided index spaces are first coalesced on the host (coalesce below): size-1 dimensions dropped and
// neighbours that every operand walks as one merged, so [N, C, H, W] + bias [1, C, 1, 1] becomes
// [N, C, H*W] and a dense operand pair becomes one dimension. A space that ends up one dimension deep with
// every stride 0 or 1 runs the dense kernels, which read a[i] or a[0] without any index arithmetic; the
// rest decompose each linear index over the coalesced sizes (in 32-bit arithmetic when the space has fewer
// than 2^32 elements: 64-bit division costs several times more).
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numbers>

#include "core/cuda_runtime.hpp"
#include "kernels/cuda_launch.cuh"
#include "kernels/elementwise/elementwise.hpp"

namespace kiln::kernels::cuda {
namespace {

// ---- the math, as in reference.cpp ------------------------------------------------------------------

// a * b rounded on its own. nvcc contracts a * b + c into one fused multiply-add, which g++ (building the
// reference for baseline x86-64, without FMA) never does; where a product feeds a sum this keeps the two
// roundings the reference makes.
__device__ double product(double a, double b) { return __dmul_rn(a, b); }

// 1 / (1 + e^-x) without overflow: for x < 0 the equal form e^x / (1 + e^x), where e^x < 1.
__device__ double sigmoid(double x) {
  if (x >= 0) return 1.0 / (1.0 + exp(-x));
  const double e = exp(x);
  return e / (1.0 + e);
}

// Phi(x), the standard normal CDF, and phi(x), its density; Phi as erfc, as the reference has it (accurate in
// the negative tail, where 1 + erf cancels).
__device__ double normal_cdf(double x) { return 0.5 * erfc(-x / std::numbers::sqrt2); }
__device__ double normal_pdf(double x) { return exp(-0.5 * x * x) / sqrt(2.0 * std::numbers::pi); }

// relu6(x + 3) / 6, the comparisons as the reference's std::max and std::min expand (a NaN passes through).
__device__ double hard_sigmoid(double x) {
  const double shifted = x + 3.0;
  const double above_zero = shifted < 0.0 ? 0.0 : shifted;  // std::max(shifted, 0.0)
  return (6.0 < above_zero ? 6.0 : above_zero) / 6.0;       // std::min(above_zero, 6.0) / 6
}

// op(x). The comparisons are written as the reference's std::max / std::min expand, so a NaN x passes
// through Relu and Clamp the same way.
__device__ double unary_value(UnaryOp op, const UnaryParams& params, double x) {
  switch (op) {
    case UnaryOp::Neg:
      return -x;
    case UnaryOp::Exp:
      return exp(x);
    case UnaryOp::Log:
      return log(x);
    case UnaryOp::Sqrt:
      return sqrt(x);
    case UnaryOp::Abs:
      return fabs(x);
    case UnaryOp::Relu:
      return x < 0 ? 0.0 : x;
    case UnaryOp::LeakyRelu:
      return x > 0 ? x : params.alpha * x;
    case UnaryOp::Sigmoid:
      return sigmoid(x);
    case UnaryOp::Tanh:
      return tanh(x);
    case UnaryOp::Gelu:
      return x * normal_cdf(x);
    case UnaryOp::Silu:
      return x * sigmoid(x);
    case UnaryOp::Hardsigmoid:
      return hard_sigmoid(x);
    case UnaryOp::Hardswish:
      return product(x, hard_sigmoid(x));
    case UnaryOp::Clamp: {
      const double above_low = x < params.low ? params.low : x;  // std::max(x, low)
      return params.high < above_low ? params.high : above_low;  // std::min(above_low, high)
    }
  }
  return x;  // unreachable: every op is handled above
}

// op'(x), given the forward's input x and output y = op(x).
__device__ double unary_derivative(UnaryOp op, const UnaryParams& params, double x, double y) {
  switch (op) {
    case UnaryOp::Neg:
      return -1.0;
    case UnaryOp::Exp:
      return exp(x);
    case UnaryOp::Log:
      return 1.0 / x;
    case UnaryOp::Sqrt:
      return 0.5 / sqrt(x);
    case UnaryOp::Abs:
      return x > 0 ? 1.0 : x < 0 ? -1.0 : 0.0;
    case UnaryOp::Relu:
      return x > 0 ? 1.0 : 0.0;
    case UnaryOp::LeakyRelu:
      return x > 0 ? 1.0 : params.alpha;
    case UnaryOp::Sigmoid:
      return y * (1.0 - y);
    case UnaryOp::Tanh:
      return 1.0 - product(y, y);
    case UnaryOp::Gelu:
      return normal_cdf(x) + product(x, normal_pdf(x));
    case UnaryOp::Silu: {
      const double s = sigmoid(x);
      return product(s, 1.0 + product(x, 1.0 - s));
    }
    case UnaryOp::Hardsigmoid:
      return -3.0 < x && x < 3.0 ? 1.0 / 6.0 : 0.0;
    case UnaryOp::Hardswish:
      return x <= -3.0 ? 0.0 : x >= 3.0 ? 1.0 : (2.0 * x + 3.0) / 6.0;
    case UnaryOp::Clamp:
      return params.low < x && x < params.high ? 1.0 : 0.0;
  }
  return 0.0;  // unreachable: every op is handled above
}

// op(a, b). Maximum and Minimum let a NaN in either operand through; otherwise they pick as std::max and
// std::min do (a on a tie, so max(-0, +0) is -0 as on the CPU).
__device__ double binary_value(BinaryOp op, double a, double b) {
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
      return pow(a, b);
    case BinaryOp::Maximum:
      if (isnan(a) || isnan(b)) return std::numeric_limits<double>::quiet_NaN();
      return a < b ? b : a;
    case BinaryOp::Minimum:
      if (isnan(a) || isnan(b)) return std::numeric_limits<double>::quiet_NaN();
      return b < a ? b : a;
    case BinaryOp::Equal:
      return a == b ? 1.0 : 0.0;
    case BinaryOp::Greater:
      return a > b ? 1.0 : 0.0;
    case BinaryOp::AddRelu: {
      const double sum = a + b;
      return sum < 0 ? 0.0 : sum;  // a NaN passes through, as relu's
    }
  }
  return 0.0;  // unreachable: every op is handled above
}

// ---- strided index spaces ---------------------------------------------------------------------------

// An index space sizes[rank] and, per operand, its element strides; passed to kernels by value (under
// 200 bytes of kernel parameters).
template <int Operands>
struct StridedSpace {
  int rank = 0;
  std::int64_t sizes[kMaxRank] = {};
  std::int64_t strides[Operands][kMaxRank] = {};
};

// sizes[rank] with size-1 dimensions dropped and each dimension merged into the one before it where every
// operand steps over the pair as over one dimension (outer stride == inner stride * inner size; stride 0
// pairs merge too). The row-major order of the elements, and so each one's linear index, is unchanged.
//   sizes [2, 3, 4], a strides [12, 4, 1], b strides [0, 1, 0]  ->  [2, 3, 4] (nothing merges)
//   sizes [2, 3, 4], a strides [12, 4, 1], b strides [0, 0, 0]  ->  [24], a [1], b [0]
template <int Operands>
StridedSpace<Operands> coalesce(int rank, const std::int64_t* sizes,
                                const std::array<const std::int64_t*, Operands>& strides) {
  StridedSpace<Operands> space;
  for (int d = 0; d < rank; ++d) {
    if (sizes[d] == 1) continue;
    bool merges = space.rank > 0;
    for (int k = 0; k < Operands && merges; ++k)
      merges = space.strides[k][space.rank - 1] == strides[k][d] * sizes[d];
    if (merges) {
      space.sizes[space.rank - 1] *= sizes[d];
      for (int k = 0; k < Operands; ++k) space.strides[k][space.rank - 1] = strides[k][d];
    } else {
      space.sizes[space.rank] = sizes[d];
      for (int k = 0; k < Operands; ++k) space.strides[k][space.rank] = strides[k][d];
      ++space.rank;
    }
  }
  return space;
}

// The step of operand k when the coalesced space is one dense run: 0 (one value, broadcast) or 1 (dense);
// -1 when it is neither and the index must be decomposed.
template <int Operands>
std::int64_t dense_step(const StridedSpace<Operands>& space, int k) {
  if (space.rank == 0) return 0;  // a single element
  if (space.rank > 1) return -1;
  const std::int64_t stride = space.strides[k][0];
  return stride == 0 || stride == 1 ? stride : -1;
}

// offsets[k] = index . strides[k] for the index whose row-major linear position is `linear`. The loop
// runs over all kMaxRank dimensions, unrolled, so the space's arrays are indexed by constants and stay in
// the kernel's parameter space instead of being copied to local memory.
template <typename Index, int Operands>
__device__ void offsets_of(Index linear, const StridedSpace<Operands>& space,
                           std::int64_t (&offsets)[Operands]) {
  for (int k = 0; k < Operands; ++k) offsets[k] = 0;
#pragma unroll
  for (int d = kMaxRank - 1; d >= 0; --d) {
    if (d >= space.rank) continue;
    const auto size = static_cast<Index>(space.sizes[d]);
    const auto digit = static_cast<std::int64_t>(linear % size);
    linear /= size;
    for (int k = 0; k < Operands; ++k) offsets[k] += digit * space.strides[k][d];
  }
}

// ---- kernels ----------------------------------------------------------------------------------------

// y[i] = op(x[i]). In place (y == x) is fine: each thread reads its element before writing it.
template <typename T>
__global__ void unary_forward_kernel(UnaryOp op, UnaryParams params, std::int64_t n, const T* x, T* y) {
  for (std::int64_t i = first_thread_index(); i < n; i += grid_thread_count())
    y[i] = static_cast<T>(unary_value(op, params, x[i]));
}

// gx[i] = gy[i] * op'(x[i], y[i]).
template <typename T>
__global__ void unary_backward_kernel(UnaryOp op, UnaryParams params, std::int64_t n, const T* x, const T* y,
                                      const T* gy, T* gx) {
  for (std::int64_t i = first_thread_index(); i < n; i += grid_thread_count()) {
    const double derivative = unary_derivative(op, params, x[i], y[i]);
    gx[i] = static_cast<T>(static_cast<double>(gy[i]) * derivative);
  }
}

// out[i] = op(a[i * a_step], b[i * b_step]), steps 0 (broadcast one value) or 1 (dense).
template <typename T>
__global__ void binary_dense_kernel(BinaryOp op, std::int64_t n, const T* a, std::int64_t a_step, const T* b,
                                    std::int64_t b_step, T* out) {
  for (std::int64_t i = first_thread_index(); i < n; i += grid_thread_count())
    out[i] = static_cast<T>(binary_value(op, a[i * a_step], b[i * b_step]));
}

// out[i] = op(a[index(i) . a_strides], b[index(i) . b_strides]); operands 0 and 1 of `space` are a and b.
template <typename T, typename Index>
__global__ void binary_strided_kernel(BinaryOp op, std::int64_t n, StridedSpace<2> space, const T* a,
                                      const T* b, T* out) {
  for (std::int64_t i = first_thread_index(); i < n; i += grid_thread_count()) {
    std::int64_t offsets[2];
    offsets_of(static_cast<Index>(i), space, offsets);
    out[i] = static_cast<T>(binary_value(op, a[offsets[0]], b[offsets[1]]));
  }
}

// dst[i] = Dst(src[i * src_step]), src_step 0 (fill with one value) or 1 (dense).
template <typename Src, typename Dst>
__global__ void copy_dense_kernel(std::int64_t n, const Src* src, std::int64_t src_step, Dst* dst) {
  for (std::int64_t i = first_thread_index(); i < n; i += grid_thread_count())
    dst[i] = static_cast<Dst>(src[i * src_step]);
}

// dst[index(i) . dst_strides] = Dst(src[index(i) . src_strides]); operands 0 and 1 of `space` are src and
// dst. A destination with a stride 0 writes one element from several threads (any one of them wins, where
// the reference's last write does); no caller makes such a destination.
template <typename Src, typename Dst, typename Index>
__global__ void copy_strided_kernel(std::int64_t n, StridedSpace<2> space, const Src* src, Dst* dst) {
  for (std::int64_t i = first_thread_index(); i < n; i += grid_thread_count()) {
    std::int64_t offsets[2];
    offsets_of(static_cast<Index>(i), space, offsets);
    dst[offsets[1]] = static_cast<Dst>(src[offsets[0]]);
  }
}

// Whether linear indices below n fit the 32-bit decomposition.
bool fits_32_bits(std::int64_t n) { return n <= std::int64_t{std::numeric_limits<std::uint32_t>::max()}; }

std::int64_t element_count(int rank, const std::int64_t* sizes) {
  std::int64_t count = 1;
  for (int d = 0; d < rank; ++d) count *= sizes[d];
  return count;
}

}  // namespace

template <typename T>
void unary_forward(UnaryOp op, const UnaryParams& params, std::int64_t n, const T* x, T* y) {
  if (n == 0) return;
  launch("unary_forward", unary_forward_kernel<T>, grid_blocks(n), kThreadsPerBlock, op, params, n, x, y);
}

template <typename T>
void unary_backward(UnaryOp op, const UnaryParams& params, std::int64_t n, const T* x, const T* y,
                    const T* gy, T* gx) {
  if (n == 0) return;
  launch("unary_backward", unary_backward_kernel<T>, grid_blocks(n), kThreadsPerBlock, op, params, n, x, y,
         gy, gx);
}

template <typename T>
void binary_forward(BinaryOp op, int rank, const std::int64_t* sizes, const T* a,
                    const std::int64_t* a_strides, const T* b, const std::int64_t* b_strides, T* out) {
  const std::int64_t n = element_count(rank, sizes);
  if (n == 0) return;
  // out is dense, so it merges wherever a and b do and need not take part in coalescing.
  const StridedSpace<2> space = coalesce<2>(rank, sizes, {a_strides, b_strides});
  const std::int64_t a_step = dense_step(space, 0), b_step = dense_step(space, 1);
  if (a_step >= 0 && b_step >= 0) {
    launch("binary_forward", binary_dense_kernel<T>, grid_blocks(n), kThreadsPerBlock, op, n, a, a_step, b,
           b_step, out);
  } else if (fits_32_bits(n)) {
    launch("binary_forward", binary_strided_kernel<T, std::uint32_t>, grid_blocks(n), kThreadsPerBlock, op, n,
           space, a, b, out);
  } else {
    launch("binary_forward", binary_strided_kernel<T, std::int64_t>, grid_blocks(n), kThreadsPerBlock, op, n,
           space, a, b, out);
  }
}

template <typename Src, typename Dst>
void copy_strided(int rank, const std::int64_t* sizes, const Src* src, const std::int64_t* src_strides,
                  Dst* dst, const std::int64_t* dst_strides) {
  const std::int64_t n = element_count(rank, sizes);
  if (n == 0) return;
  const StridedSpace<2> space = coalesce<2>(rank, sizes, {src_strides, dst_strides});
  const std::int64_t src_step = dense_step(space, 0), dst_step = dense_step(space, 1);
  if (src_step >= 0 && dst_step == 1) {
    launch("copy_strided", copy_dense_kernel<Src, Dst>, grid_blocks(n), kThreadsPerBlock, n, src, src_step,
           dst);
  } else if (fits_32_bits(n)) {
    launch("copy_strided", copy_strided_kernel<Src, Dst, std::uint32_t>, grid_blocks(n), kThreadsPerBlock, n,
           space, src, dst);
  } else {
    launch("copy_strided", copy_strided_kernel<Src, Dst, std::int64_t>, grid_blocks(n), kThreadsPerBlock, n,
           space, src, dst);
  }
}

template void unary_forward<float>(UnaryOp, const UnaryParams&, std::int64_t, const float*, float*);
template void unary_forward<double>(UnaryOp, const UnaryParams&, std::int64_t, const double*, double*);
template void unary_backward<float>(UnaryOp, const UnaryParams&, std::int64_t, const float*, const float*,
                                    const float*, float*);
template void unary_backward<double>(UnaryOp, const UnaryParams&, std::int64_t, const double*, const double*,
                                     const double*, double*);
template void unary_forward<bfloat16>(UnaryOp, const UnaryParams&, std::int64_t, const bfloat16*, bfloat16*);
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
template void copy_strided<std::int32_t, std::int32_t>(int, const std::int64_t*, const std::int32_t*,
                                                       const std::int64_t*, std::int32_t*,
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

}  // namespace kiln::kernels::cuda
