// Elementwise kernels: unary maps and their backward, broadcasting binary maps, strided copies and fill.
//
// Unary kernels read and write dense buffers of n elements. Binary kernels and copies walk an N-d index
// space `sizes[rank]` and read each operand through its own element strides; a broadcast dimension has
// stride 0, so broadcasting costs no copy. Outputs of binary kernels are dense (row-major over `sizes`).
// In-place use (out aliasing an input with the same layout) is allowed: each element is read before it
// is written.
//
// T is float, double or bfloat16 for the unary and binary maps. The reference and CUDA kernels compute each
// element in double and round it once to T (for bfloat16 too: no float or bfloat16 intermediate); the AVX
// kernels (float only, below) compute in float. bfloat16 has no AVX kernels: on the CPU it runs the
// reference.
#pragma once

#include <cstdint>

#include "core/bfloat16.hpp"
#include "core/device.hpp"

namespace kiln::kernels {

inline constexpr int kMaxRank = 8;

enum class UnaryOp {
  Neg,          // -x
  Exp,          // e^x
  Log,          // ln x
  Sqrt,         // sqrt x
  Abs,          // |x|             (d/dx = sign x, 0 at 0)
  Relu,         // max(x, 0)       (d/dx = 1 for x > 0, else 0)
  LeakyRelu,    // x > 0 ? x : alpha * x
  Sigmoid,      // 1 / (1 + e^-x)  (computed without overflow for large |x|)
  Tanh,         // tanh x
  Gelu,         // x * Phi(x) = x/2 * (1 + erf(x / sqrt 2))  (the exact form, PyTorch's default)
  Silu,         // x * sigmoid(x)  (Swish; d/dx = s (1 + x (1 - s)), s = sigmoid(x))
  Hardsigmoid,  // min(max(x + 3, 0), 6) / 6  (d/dx = 1/6 strictly inside (-3, 3), else 0)
  Hardswish,    // x * min(max(x + 3, 0), 6) / 6  (d/dx = (2x + 3) / 6 strictly inside (-3, 3), 0 below, 1
                // above)
  Clamp,        // min(max(x, low), high)  (d/dx = 1 strictly inside (low, high), else 0)
};

struct UnaryParams {
  double alpha = 0.01;  // LeakyRelu slope
  double low = 0.0;     // Clamp bounds
  double high = 0.0;
};

enum class BinaryOp {
  Add, Sub, Mul, Div,
  Pow,      // a^b
  Maximum,  // max(a, b)  (NaN propagates, as in PyTorch)
  Minimum,  // min(a, b)  (NaN propagates)
  Equal,    // a == b ? 1 : 0
  Greater,  // a > b ? 1 : 0
  AddRelu,  // relu(a + b): a residual block's sum and its ReLU in one pass (NaN passes, as relu's)
};

// y[i] = op(x[i]) for i < n.
template <typename T>
void unary_forward(Device device, UnaryOp op, const UnaryParams& params, std::int64_t n, const T* x, T* y);
// gx[i] = gy[i] * op'(x[i]); x is the forward's input and y its output (each op reads whichever gives
// the derivative most cheaply: Sigmoid and Tanh read y, the rest read x).
template <typename T>
void unary_backward(Device device, UnaryOp op, const UnaryParams& params, std::int64_t n, const T* x,
                    const T* y, const T* gy, T* gx);

// out[index] = op(a[index . a_strides], b[index . b_strides]) for every index in sizes[rank]; out dense.
template <typename T>
void binary_forward(Device device, BinaryOp op, int rank, const std::int64_t* sizes, const T* a,
                    const std::int64_t* a_strides, const T* b, const std::int64_t* b_strides, T* out);

// dst[index . dst_strides] = Dst(src[index . src_strides]) for every index in sizes[rank].
// Instantiated for every pair of float, double, bfloat16 and int64, and uint8 -> float/double/bfloat16
// (decoded images). To bfloat16 rounds to nearest even; from bfloat16 is exact.
template <typename Src, typename Dst>
void copy_strided(Device device, int rank, const std::int64_t* sizes, const Src* src,
                  const std::int64_t* src_strides, Dst* dst, const std::int64_t* dst_strides);

// out[i] = value for i < n. Instantiated for float, double, bfloat16, int64.
template <typename T> void fill(Device device, std::int64_t n, T value, T* out);

namespace reference {
template <typename T>
void unary_forward(UnaryOp op, const UnaryParams& params, std::int64_t n, const T* x, T* y);
template <typename T>
void unary_backward(UnaryOp op, const UnaryParams& params, std::int64_t n, const T* x, const T* y, const T* gy,
                    T* gx);
template <typename T>
void binary_forward(BinaryOp op, int rank, const std::int64_t* sizes, const T* a, const std::int64_t* a_strides,
                    const T* b, const std::int64_t* b_strides, T* out);
template <typename Src, typename Dst>
void copy_strided(int rank, const std::int64_t* sizes, const Src* src, const std::int64_t* src_strides, Dst* dst,
                  const std::int64_t* dst_strides);
template <typename T> void fill(std::int64_t n, T value, T* out);
}  // namespace reference

// A binary op's or a copy's index space seen as rows, for the vectorized kernels: the trailing dimensions
// (all but the first outer_rank) form rows of row_length elements along which each operand is either dense
// (stride 1, then the product of the sizes after it) or constant (stride 0: one value per row, a broadcast).
// dispatch.cpp builds the plan from the strides and keeps a layout that does not fit on the reference.
//   [N, C, H, W] + bias [1, C, 1, 1]:  outer_rank 2, row_length H*W, a dense, b constant
//   [N, F] + bias [F]:                 outer_rank 1, row_length F, both dense
struct RowPlan {
  int outer_rank = 0;
  std::int64_t row_length = 1;
  bool constant_in_row[2] = {false, false};  // per operand (a, b) or (src, dst)
};

// Vectorized kernels (vectorized_elementwise.hpp), one namespace per instruction set, each function
// instantiated for float and bfloat16 (computing in float lanes; convert_rows for float -> bfloat16 and
// back). Each handles only the ops and layouts dispatch.cpp sends it: unary Neg, Abs, Relu, LeakyRelu,
// Clamp, Sqrt (forward) and Neg, Abs, Relu, LeakyRelu, Clamp, Sigmoid, Tanh (backward); binary Add, Sub,
// Mul, Div, AddRelu over a RowPlan; copies whose rows are dense in src and dst (copy_rows, convert_rows), and
// the others of rank >= 1, row by row (copy_strided_rows); batches of float and bfloat16 matrix transposes
// (transpose_matrices: dst[b][j][i] = src[b][i][j]), which is what a copy between NCHW and channels-last is;
// fill. For bfloat16 it sends the subset whose float result rounds to the reference's bits (dispatch.cpp).
namespace avx512 {
template <typename T>
void unary_forward(UnaryOp op, const UnaryParams& params, std::int64_t n, const T* x, T* y);
template <typename T>
void unary_backward(UnaryOp op, const UnaryParams& params, std::int64_t n, const T* x, const T* y,
                    const T* gy, T* gx);
template <typename T>
void binary_forward(BinaryOp op, const RowPlan& plan, const std::int64_t* sizes, const T* a,
                    const std::int64_t* a_strides, const T* b, const std::int64_t* b_strides, T* out);
template <typename T>
void copy_rows(const RowPlan& plan, const std::int64_t* sizes, const T* src, const std::int64_t* src_strides,
               T* dst, const std::int64_t* dst_strides);
template <typename Src, typename Dst>
void convert_rows(const RowPlan& plan, const std::int64_t* sizes, const Src* src,
                  const std::int64_t* src_strides, Dst* dst, const std::int64_t* dst_strides);
template <typename T>
void copy_strided_rows(int rank, const std::int64_t* sizes, const T* src, const std::int64_t* src_strides,
                       T* dst, const std::int64_t* dst_strides);
void transpose_matrices(std::int64_t count, std::int64_t rows, std::int64_t columns, const float* src,
                        float* dst);
void transpose_matrices(std::int64_t count, std::int64_t rows, std::int64_t columns, const bfloat16* src,
                        bfloat16* dst);
template <typename T>
void fill(std::int64_t n, T value, T* out);
}  // namespace avx512
namespace avx2 {
template <typename T>
void unary_forward(UnaryOp op, const UnaryParams& params, std::int64_t n, const T* x, T* y);
template <typename T>
void unary_backward(UnaryOp op, const UnaryParams& params, std::int64_t n, const T* x, const T* y,
                    const T* gy, T* gx);
template <typename T>
void binary_forward(BinaryOp op, const RowPlan& plan, const std::int64_t* sizes, const T* a,
                    const std::int64_t* a_strides, const T* b, const std::int64_t* b_strides, T* out);
template <typename T>
void copy_rows(const RowPlan& plan, const std::int64_t* sizes, const T* src, const std::int64_t* src_strides,
               T* dst, const std::int64_t* dst_strides);
template <typename Src, typename Dst>
void convert_rows(const RowPlan& plan, const std::int64_t* sizes, const Src* src,
                  const std::int64_t* src_strides, Dst* dst, const std::int64_t* dst_strides);
template <typename T>
void copy_strided_rows(int rank, const std::int64_t* sizes, const T* src, const std::int64_t* src_strides,
                       T* dst, const std::int64_t* dst_strides);
void transpose_matrices(std::int64_t count, std::int64_t rows, std::int64_t columns, const float* src,
                        float* dst);
void transpose_matrices(std::int64_t count, std::int64_t rows, std::int64_t columns, const bfloat16* src,
                        bfloat16* dst);
template <typename T>
void fill(std::int64_t n, T value, T* out);
}  // namespace avx2

// CUDA kernels (cuda_elementwise.cu, cuda_fill.cu; built when CMake finds a CUDA compiler). Each runs on the
// current device, on the compute stream, asynchronously: it returns once its kernels are enqueued. Data
// pointers are device memory; sizes and strides are host arrays. Same contracts as the functions above, and
// the reference's math (in double, rounded once to T).
namespace cuda {
template <typename T>
void unary_forward(UnaryOp op, const UnaryParams& params, std::int64_t n, const T* x, T* y);
template <typename T>
void unary_backward(UnaryOp op, const UnaryParams& params, std::int64_t n, const T* x, const T* y,
                    const T* gy, T* gx);
template <typename T>
void binary_forward(BinaryOp op, int rank, const std::int64_t* sizes, const T* a,
                    const std::int64_t* a_strides, const T* b, const std::int64_t* b_strides, T* out);
// Instantiated for the same pairs as copy_strided above.
template <typename Src, typename Dst>
void copy_strided(int rank, const std::int64_t* sizes, const Src* src, const std::int64_t* src_strides,
                  Dst* dst, const std::int64_t* dst_strides);
template <typename T>
void fill(std::int64_t n, T value, T* out);
}  // namespace cuda

}  // namespace kiln::kernels
