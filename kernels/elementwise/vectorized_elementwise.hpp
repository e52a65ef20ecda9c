// Vectorized elementwise kernels, written once over a vector trait V (simd::FloatVector512 or
// FloatVector256) and an element type T, and instantiated by avx512.cpp and avx2.cpp. T is float, or
// bfloat16 for the ops whose float result rounds to the reference's bfloat16 bits (dispatch.cpp): the trait
// loads bfloat16 into float lanes and rounds on the way back, so the arithmetic is the float kernels'.
//
//   unary:   x, y, gy, gx  [n] dense
//   binary:  a, b, out over sizes[rank], seen as rows (see RowPlan in elementwise.hpp): out dense, each
//            operand either dense along a row or one value per row (a per-channel bias, a scalar)
//   copy:    src, dst dense along a row, strided between rows; or any strides, a row being the last
//            dimension (copy_strided_rows)
//
// Every element is independent, so threads may split the work anywhere: the results are the same for any
// thread count. Work is cut into fixed blocks of kBlock elements (or whole rows), threaded only when large.
// Tails use the trait's masked loads and stores, so nothing past a buffer's end is touched.
//
// Which ops have a fast path is decided in dispatch.cpp; the others (exp, log, pow, ...) stay on the
// reference kernel, which computes in double. Sigmoid and Tanh forward and GELU and SiLU both ways run
// simd/transcendentals.hpp's approximations, within a few ulps of the reference rather than its bits.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <vector>

#include "kernels/elementwise/elementwise.hpp"
#include "kernels/simd/hard_activations.hpp"
#include "kernels/simd/transcendentals.hpp"
#include "kernels/simd/transpose_8x8.hpp"

namespace kiln::kernels::vectorized {
namespace {

inline constexpr std::int64_t kBlock = 16384;                 // elements per parallel task
inline constexpr std::int64_t kElementwiseThreshold = 65536;  // below this, one thread is faster

// out[i] = f(in[i]) for i < n, f acting on whole registers.
template <class V, class T, class F>
void map1(std::int64_t n, const T* in, T* out, F f) {
  const std::int64_t blocks = (n + kBlock - 1) / kBlock;
#pragma omp parallel for schedule(static) if (n >= kElementwiseThreshold)
  for (std::int64_t block = 0; block < blocks; ++block) {
    const std::int64_t end = std::min(n, (block + 1) * kBlock);
    std::int64_t i = block * kBlock;
    for (; i + V::width <= end; i += V::width) V::store(out + i, f(V::load(in + i)));
    if (i < end) V::store_partial(out + i, f(V::load_partial(in + i, end - i)), end - i);
  }
}

// out[i] = f(p[i], q[i]) for i < n.
template <class V, class T, class F>
void map2(std::int64_t n, const T* p, const T* q, T* out, F f) {
  const std::int64_t blocks = (n + kBlock - 1) / kBlock;
#pragma omp parallel for schedule(static) if (n >= kElementwiseThreshold)
  for (std::int64_t block = 0; block < blocks; ++block) {
    const std::int64_t end = std::min(n, (block + 1) * kBlock);
    std::int64_t i = block * kBlock;
    for (; i + V::width <= end; i += V::width) V::store(out + i, f(V::load(p + i), V::load(q + i)));
    if (i < end) {
      const std::int64_t rest = end - i;
      V::store_partial(out + i, f(V::load_partial(p + i, rest), V::load_partial(q + i, rest)), rest);
    }
  }
}

// The element offsets of two operands at the first element of each row, for rows first_row, first_row + 1,
// ...: an odometer over the outer dimensions (the last one turns fastest), like StridedWalk.
class RowOdometer {
 public:
  RowOdometer(const RowPlan& plan, const std::int64_t* sizes, const std::int64_t* strides0,
              const std::int64_t* strides1, std::int64_t first_row)
      : rank_(plan.outer_rank), sizes_(sizes), strides_{strides0, strides1} {
    for (int d = rank_ - 1; d >= 0; --d) {
      digits_[d] = first_row % sizes[d];
      first_row /= sizes[d];
      for (int k = 0; k < 2; ++k) offsets_[k] += digits_[d] * strides_[k][d];
    }
  }
  std::int64_t offset(int operand) const { return offsets_[operand]; }
  void advance() {
    for (int d = rank_ - 1; d >= 0; --d) {
      if (++digits_[d] < sizes_[d]) {
        for (int k = 0; k < 2; ++k) offsets_[k] += strides_[k][d];
        return;
      }
      digits_[d] = 0;
      for (int k = 0; k < 2; ++k) offsets_[k] -= strides_[k][d] * (sizes_[d] - 1);
    }
  }

 private:
  int rank_;
  const std::int64_t* sizes_;
  std::array<const std::int64_t*, 2> strides_;
  std::array<std::int64_t, kMaxRank> digits_{};
  std::array<std::int64_t, 2> offsets_{};
};

// Calls row_body(row, offset0, offset1, begin, length) over every row, for its elements [begin, begin +
// length): whole rows, threaded over fixed groups of rows, or, when a row is longer than kBlock (a dense
// tensor is one row), fixed pieces of kBlock elements, so that a single row still uses every thread.
template <class RowBody>
void for_each_row(const RowPlan& plan, const std::int64_t* sizes, const std::int64_t* strides0,
                  const std::int64_t* strides1, RowBody row_body) {
  std::int64_t rows = 1;
  for (int d = 0; d < plan.outer_rank; ++d) rows *= sizes[d];
  const bool parallel = rows * plan.row_length >= kElementwiseThreshold;
  if (plan.row_length > kBlock) {
    const std::int64_t pieces_per_row = (plan.row_length + kBlock - 1) / kBlock;
#pragma omp parallel for schedule(static) if (parallel)
    for (std::int64_t task = 0; task < rows * pieces_per_row; ++task) {
      const std::int64_t row = task / pieces_per_row, begin = (task % pieces_per_row) * kBlock;
      const RowOdometer at_row(plan, sizes, strides0, strides1, row);
      row_body(row, at_row.offset(0), at_row.offset(1), begin, std::min(kBlock, plan.row_length - begin));
    }
    return;
  }
  const std::int64_t rows_per_group = std::max<std::int64_t>(1, kBlock / plan.row_length);
  const std::int64_t groups = (rows + rows_per_group - 1) / rows_per_group;
#pragma omp parallel for schedule(static) if (parallel)
  for (std::int64_t group = 0; group < groups; ++group) {
    const std::int64_t first = group * rows_per_group, last = std::min(rows, first + rows_per_group);
    RowOdometer rows_walk(plan, sizes, strides0, strides1, first);
    for (std::int64_t row = first; row < last; ++row, rows_walk.advance()) {
      row_body(row, rows_walk.offset(0), rows_walk.offset(1), 0, plan.row_length);
    }
  }
}

// out[i] = f(a_i, b_i) for i < n, where an operand marked constant is its single value a[0] / b[0].
template <class V, class T, class F>
void binary_row(const T* a, bool a_constant, const T* b, bool b_constant, T* out, std::int64_t n, F f) {
  using Reg = typename V::Reg;
  const Reg a_value = V::broadcast(a[0]), b_value = V::broadcast(b[0]);
  std::int64_t i = 0;
  for (; i + V::width <= n; i += V::width) {
    const Reg va = a_constant ? a_value : V::load(a + i), vb = b_constant ? b_value : V::load(b + i);
    V::store(out + i, f(va, vb));
  }
  if (i < n) {
    const Reg va = a_constant ? a_value : V::load_partial(a + i, n - i);
    const Reg vb = b_constant ? b_value : V::load_partial(b + i, n - i);
    V::store_partial(out + i, f(va, vb), n - i);
  }
}

template <class V, class T, class F>
void binary_rows(const RowPlan& plan, const std::int64_t* sizes, const T* a, const std::int64_t* a_strides,
                 const T* b, const std::int64_t* b_strides, T* out, F f) {
  const bool a_constant = plan.constant_in_row[0], b_constant = plan.constant_in_row[1];
  for_each_row(plan, sizes, a_strides, b_strides,
               [&](std::int64_t row, std::int64_t a_offset, std::int64_t b_offset, std::int64_t begin,
                   std::int64_t length) {
                 binary_row<V>(a + a_offset + (a_constant ? 0 : begin), a_constant,
                               b + b_offset + (b_constant ? 0 : begin), b_constant,
                               out + row * plan.row_length + begin, length, f);
               });
}

}  // namespace

// ---- unary -------------------------------------------------------------------------------------------

// The ops dispatch.cpp sends here: Neg, Abs, Relu, LeakyRelu, Clamp, Sqrt, Sigmoid, Tanh, Gelu, Silu,
// Hardsigmoid and Hardswish (on bfloat16 only some: dispatch.cpp). Max and min return their second operand
// when either is NaN, so max(0, x) and min(high, max(low, x)) let a NaN x through, as the reference does;
// IEEE sqrt is correctly rounded, so Sqrt matches the reference bitwise; Sigmoid, Tanh, Gelu and Silu are
// within a few ulps of it (simd/transcendentals.hpp).
template <class V, class T>
void unary_forward(UnaryOp op, const UnaryParams& params, std::int64_t n, const T* x, T* y) {
  using Reg = typename V::Reg;
  const Reg zero = V::zero();
  switch (op) {
    case UnaryOp::Neg:
      return map1<V>(n, x, y, [](Reg v) { return V::neg(v); });
    case UnaryOp::Abs:
      return map1<V>(n, x, y, [](Reg v) { return V::abs(v); });
    case UnaryOp::Relu:
      return map1<V>(n, x, y, [zero](Reg v) { return V::max(zero, v); });
    case UnaryOp::LeakyRelu: {
      const Reg alpha = V::broadcast(static_cast<float>(params.alpha));
      return map1<V>(n, x, y,
                     [zero, alpha](Reg v) { return V::select(V::greater(v, zero), v, V::mul(alpha, v)); });
    }
    case UnaryOp::Clamp: {
      const Reg low = V::broadcast(static_cast<float>(params.low)),
                high = V::broadcast(static_cast<float>(params.high));
      return map1<V>(n, x, y, [low, high](Reg v) { return V::min(high, V::max(low, v)); });
    }
    case UnaryOp::Sqrt:
      return map1<V>(n, x, y, [](Reg v) { return V::sqrt(v); });
    case UnaryOp::Sigmoid:
      return map1<V>(n, x, y, [](Reg v) { return simd::sigmoid<V>(v); });
    case UnaryOp::Tanh:
      return map1<V>(n, x, y, [](Reg v) { return simd::tanh<V>(v); });
    case UnaryOp::Gelu:
      return map1<V>(n, x, y, [](Reg v) { return simd::gelu<V>(v); });
    case UnaryOp::Silu:
      return map1<V>(n, x, y, [](Reg v) { return simd::silu<V>(v); });
    case UnaryOp::Hardsigmoid:
      return map1<V>(n, x, y, [](Reg v) { return simd::hard_sigmoid<V>(v); });
    case UnaryOp::Hardswish:
      return map1<V>(n, x, y, [](Reg v) { return simd::hard_swish<V>(v); });
    default:
      return;  // not vectorized: dispatch.cpp never sends it here
  }
}

// gx = gy * op'(x). The derivative is built as a register and multiplied in, as the reference multiplies by
// 1.0 or 0.0, so gy * 0 stays a signed zero (or NaN for an infinite gy) exactly as there. Sigmoid and Tanh
// read the forward's output y: s' = y (1 - y), tanh' = 1 - y^2.
template <class V, class T>
void unary_backward(UnaryOp op, const UnaryParams& params, std::int64_t n, const T* x, const T* y,
                    const T* gy, T* gx) {
  using Reg = typename V::Reg;
  const Reg zero = V::zero(), one = V::broadcast(1.0f);
  switch (op) {
    case UnaryOp::Neg:
      return map1<V>(n, gy, gx, [](Reg g) { return V::neg(g); });
    case UnaryOp::Relu:
      return map2<V>(n, x, gy, gx, [zero, one](Reg v, Reg g) {
        return V::mul(g, V::select(V::greater(v, zero), one, zero));
      });
    case UnaryOp::LeakyRelu: {
      const Reg alpha = V::broadcast(static_cast<float>(params.alpha));
      return map2<V>(n, x, gy, gx, [zero, one, alpha](Reg v, Reg g) {
        return V::mul(g, V::select(V::greater(v, zero), one, alpha));
      });
    }
    case UnaryOp::Abs: {
      const Reg minus_one = V::broadcast(-1.0f);
      return map2<V>(n, x, gy, gx, [zero, one, minus_one](Reg v, Reg g) {
        return V::mul(g, V::select(V::greater(v, zero), one, V::select(V::less(v, zero), minus_one, zero)));
      });
    }
    case UnaryOp::Clamp: {
      const Reg low = V::broadcast(static_cast<float>(params.low)),
                high = V::broadcast(static_cast<float>(params.high));
      return map2<V>(n, x, gy, gx, [zero, one, low, high](Reg v, Reg g) {
        return V::mul(g, V::select(V::both(V::greater(v, low), V::less(v, high)), one, zero));
      });
    }
    case UnaryOp::Sigmoid:
      return map2<V>(n, y, gy, gx, [one](Reg s, Reg g) { return V::mul(g, V::mul(s, V::sub(one, s))); });
    case UnaryOp::Tanh:
      return map2<V>(n, y, gy, gx, [one](Reg t, Reg g) { return V::mul(g, V::sub(one, V::mul(t, t))); });
    case UnaryOp::Gelu:
      return map2<V>(n, x, gy, gx, [](Reg v, Reg g) { return V::mul(g, simd::gelu_derivative<V>(v)); });
    case UnaryOp::Silu:
      return map2<V>(n, x, gy, gx, [](Reg v, Reg g) { return V::mul(g, simd::silu_derivative<V>(v)); });
    case UnaryOp::Hardsigmoid:
      return map2<V>(n, x, gy, gx, [](Reg v, Reg g) { return simd::hard_sigmoid_gradient<V>(v, g); });
    case UnaryOp::Hardswish:
      return map2<V>(n, x, gy, gx, [](Reg v, Reg g) { return simd::hard_swish_gradient<V>(v, g); });
    default:
      return;  // not vectorized: dispatch.cpp never sends it here
  }
}

// ---- binary ------------------------------------------------------------------------------------------

// Add, Sub, Mul, Div: float arithmetic is correctly rounded, so these match the reference (double, rounded
// once) bitwise; AddRelu too (rounding keeps the sum's sign, so clamping before or after it agrees). On
// bfloat16 the float result rounds once more, in the store: dispatch.cpp says why that is the reference's
// rounding for Add, Sub, AddRelu and Mul.
template <class V, class T>
void binary_forward(BinaryOp op, const RowPlan& plan, const std::int64_t* sizes, const T* a,
                    const std::int64_t* a_strides, const T* b, const std::int64_t* b_strides, T* out) {
  using Reg = typename V::Reg;
  switch (op) {
    case BinaryOp::Add:
      return binary_rows<V>(plan, sizes, a, a_strides, b, b_strides, out,
                            [](Reg p, Reg q) { return V::add(p, q); });
    case BinaryOp::Sub:
      return binary_rows<V>(plan, sizes, a, a_strides, b, b_strides, out,
                            [](Reg p, Reg q) { return V::sub(p, q); });
    case BinaryOp::Mul:
      return binary_rows<V>(plan, sizes, a, a_strides, b, b_strides, out,
                            [](Reg p, Reg q) { return V::mul(p, q); });
    case BinaryOp::Div:
      return binary_rows<V>(plan, sizes, a, a_strides, b, b_strides, out,
                            [](Reg p, Reg q) { return V::div(p, q); });
    case BinaryOp::AddRelu:  // max returns its second operand on NaN, so a NaN sum passes through
      return binary_rows<V>(plan, sizes, a, a_strides, b, b_strides, out,
                            [](Reg p, Reg q) { return V::max(V::zero(), V::add(p, q)); });
    default:
      return;  // not vectorized: dispatch.cpp never sends it here
  }
}

// ---- copy and fill -----------------------------------------------------------------------------------

// Rows dense in both src and dst: each is one memcpy, which the C library already runs at full width
// (V is unused; the template keeps each instruction set's copy a separate function).
template <class V, class T>
void copy_rows(const RowPlan& plan, const std::int64_t* sizes, const T* src, const std::int64_t* src_strides,
               T* dst, const std::int64_t* dst_strides) {
  for_each_row(plan, sizes, src_strides, dst_strides,
               [&](std::int64_t, std::int64_t src_offset, std::int64_t dst_offset, std::int64_t begin,
                   std::int64_t length) {
                 std::memcpy(dst + dst_offset + begin, src + src_offset + begin,
                             static_cast<std::size_t>(length) * sizeof(T));
               });
}

// A conversion between float and bfloat16 whose rows are dense in src and dst (a cast of a dense tensor,
// the bf16 step's weight copies and the batch): each row widened exactly or rounded once, a register at a
// time, as bfloat16's conversions do one value at a time.
template <class V, class Src, class Dst>
void convert_rows(const RowPlan& plan, const std::int64_t* sizes, const Src* src,
                  const std::int64_t* src_strides, Dst* dst, const std::int64_t* dst_strides) {
  for_each_row(plan, sizes, src_strides, dst_strides,
               [&](std::int64_t, std::int64_t src_offset, std::int64_t dst_offset, std::int64_t begin,
                   std::int64_t length) {
                 const Src* from = src + src_offset + begin;
                 Dst* to = dst + dst_offset + begin;
                 std::int64_t i = 0;
                 for (; i + V::width <= length; i += V::width) V::store(to + i, V::load(from + i));
                 if (i < length) V::store_partial(to + i, V::load_partial(from + i, length - i), length - i);
               });
}

// A copy whose rows are not dense on some side (a subsampling slice such as x[:, :, ::2, ::2], a
// transposed view): the last dimension is the row, copied element by element with each side's stride, and
// the rows are threaded as copy_rows' are.
template <class V, class T>
void copy_strided_rows(int rank, const std::int64_t* sizes, const T* src, const std::int64_t* src_strides,
                       T* dst, const std::int64_t* dst_strides) {
  const RowPlan plan{.outer_rank = rank - 1, .row_length = sizes[rank - 1]};
  const std::int64_t src_step = src_strides[rank - 1], dst_step = dst_strides[rank - 1];
  for_each_row(plan, sizes, src_strides, dst_strides,
               [&](std::int64_t, std::int64_t src_offset, std::int64_t dst_offset, std::int64_t begin,
                   std::int64_t length) {
                 const T* from = src + src_offset + begin * src_step;
                 T* to = dst + dst_offset + begin * dst_step;
                 for (std::int64_t i = 0; i < length; ++i) to[i * dst_step] = from[i * src_step];
               });
}

// dst[b][j][i] = src[b][i][j] for count matrices of rows x columns: the conversions between NCHW and
// channels-last (an image is [C][H*W] one way, [H*W][C] the other), through the register transposes of
// transpose_matrix (16 x 16 blocks in the AVX-512 objects, 8 x 8 ones otherwise), threaded over the matrices
// (or, for a single one, not at all: the conversions come in batches).
template <class V>
void transpose_matrices(std::int64_t count, std::int64_t rows, std::int64_t columns, const float* src,
                        float* dst) {
  const std::int64_t size = rows * columns;
#pragma omp parallel for schedule(static) if (count * size >= kElementwiseThreshold)
  for (std::int64_t b = 0; b < count; ++b)
    transpose_matrix(src + b * size, columns, rows, columns, dst + b * size, rows);
}

// The same for bfloat16, through the float transpose: rows 2i and 2i + 1 paired into one row of 32-bit
// elements, pairs[i][j] = (src[2i][j], src[2i + 1][j]), whose 32-bit transpose is the 2-byte one (its row j
// holds dst[j][2i] and dst[j][2i + 1] side by side). Bits only move (the float transpose shuffles, never
// computes). An odd row count takes the element-by-element walk.
template <class V>
void transpose_matrices(std::int64_t count, std::int64_t rows, std::int64_t columns, const bfloat16* src,
                        bfloat16* dst) {
  const std::int64_t size = rows * columns, pair_rows = rows / 2;
#pragma omp parallel if (count * size >= kElementwiseThreshold)
  {
    std::vector<std::uint32_t> pairs(static_cast<std::size_t>(rows % 2 == 0 ? pair_rows * columns : 0));
#pragma omp for schedule(static)
    for (std::int64_t b = 0; b < count; ++b) {
      const bfloat16* const from = src + b * size;
      bfloat16* const to = dst + b * size;
      if (rows % 2 != 0) {
        for (std::int64_t i = 0; i < rows; ++i)
          for (std::int64_t j = 0; j < columns; ++j) to[j * rows + i] = from[i * columns + j];
        continue;
      }
      for (std::int64_t i = 0; i < pair_rows; ++i) {
        const bfloat16* const first = from + 2 * i * columns;
        const bfloat16* const second = first + columns;
        std::uint32_t* const out = pairs.data() + i * columns;
        for (std::int64_t j = 0; j < columns; ++j)
          out[j] = std::uint32_t{first[j].bits} | std::uint32_t{second[j].bits} << 16;
      }
      transpose_matrix(reinterpret_cast<const float*>(pairs.data()), columns, pair_rows, columns,
                       reinterpret_cast<float*>(to), pair_rows);
    }
  }
}

template <class V, class T>
void fill(std::int64_t n, T value, T* out) {
  using Reg = typename V::Reg;
  const Reg v = V::broadcast(value);
  const std::int64_t blocks = (n + kBlock - 1) / kBlock;
#pragma omp parallel for schedule(static) if (n >= kElementwiseThreshold)
  for (std::int64_t block = 0; block < blocks; ++block) {
    const std::int64_t end = std::min(n, (block + 1) * kBlock);
    std::int64_t i = block * kBlock;
    for (; i + V::width <= end; i += V::width) V::store(out + i, v);
    if (i < end) V::store_partial(out + i, v, end - i);
  }
}

}  // namespace kiln::kernels::vectorized
