// Vectorized float Sum over the middle axis of x [outer, reduced, inner], written once over a vector trait
// V (simd::FloatVector512 or FloatVector256) and instantiated by avx512.cpp and avx2.cpp. Max, Min and
// argmax stay on the reference kernel (dispatch.cpp).
//
// Two layouts, two loops:
//   inner == 1   each output sums a contiguous row (a loss mean: outer 1, reduced = every element), in
//                double lanes. A row is cut into fixed pieces of kPiece values, summed in parallel into a
//                table of doubles and combined in piece order, so even a single long row uses every
//                thread, and the result is the same for any thread count.
//   inner > 1    each output sums a column, elements `inner` apart (a Linear bias gradient: gy [B, F]
//                summed over B is outer 1, reduced B, inner F). Neighbouring columns are summed together,
//                a block of registers wide, in double lanes, row after row: the same additions in the same
//                order as the reference, so the result equals it bitwise. Threads split the column blocks.
#pragma once

#include <algorithm>
#include <cstdint>
#include <memory>

#include "kernels/reduce/reduce.hpp"

namespace kiln::kernels::vectorized {
namespace {

inline constexpr std::int64_t kPiece = 16384;            // a row's parallel piece
inline constexpr std::int64_t kReduceThreshold = 32768;  // below this many elements, one thread
inline constexpr int kColumnRegisters = 4;               // double registers per column block

// The sum of n contiguous floats, widened to double lanes: a loss mean over a whole tensor must be
// accurate to the last float bit, which float lanes (even summed per chunk) are not. Widening costs
// nothing measurable here: the loop is bound by memory, not by the converts.
template <class V>
double contiguous_sum(const float* x, std::int64_t n) {
  using D = typename V::DoubleReg;
  D lanes0 = V::broadcast_double(0.0), lanes1 = V::broadcast_double(0.0);
  std::int64_t i = 0;
  for (; i + 2 * V::double_width <= n; i += 2 * V::double_width) {
    lanes0 = V::add(lanes0, V::load_as_double(x + i));
    lanes1 = V::add(lanes1, V::load_as_double(x + i + V::double_width));
  }
  for (; i + V::double_width <= n; i += V::double_width) lanes0 = V::add(lanes0, V::load_as_double(x + i));
  if (i < n) lanes1 = V::add(lanes1, V::load_partial_as_double(x + i, n - i));  // masked-off lanes load 0
  alignas(64) double lanes[V::double_width];
  V::store(lanes, V::add(lanes0, lanes1));
  double sum = 0;
  for (const double lane : lanes) sum += lane;
  return sum;
}

template <class V>
void row_sums(const ReduceGeometry& g, const float* x, float* y) {
  const std::int64_t pieces_per_row = std::max<std::int64_t>(1, (g.reduced + kPiece - 1) / kPiece);
  const std::int64_t pieces = g.outer * pieces_per_row;
  const std::unique_ptr<double[]> piece_sums(new double[static_cast<std::size_t>(pieces)]);
#pragma omp parallel for schedule(static) if (g.outer * g.reduced >= kReduceThreshold)
  for (std::int64_t piece = 0; piece < pieces; ++piece) {
    const std::int64_t o = piece / pieces_per_row, begin = (piece % pieces_per_row) * kPiece;
    const std::int64_t end = std::min(g.reduced, begin + kPiece);
    piece_sums[static_cast<std::size_t>(piece)] = contiguous_sum<V>(x + o * g.reduced + begin, end - begin);
  }
  for (std::int64_t o = 0; o < g.outer; ++o) {
    double sum = 0;
    for (std::int64_t p = 0; p < pieces_per_row; ++p)
      sum += piece_sums[static_cast<std::size_t>(o * pieces_per_row + p)];
    y[o] = static_cast<float>(sum);
  }
}

template <class V>
void column_sums(const ReduceGeometry& g, const float* x, float* y) {
  using D = typename V::DoubleReg;
  constexpr std::int64_t block = kColumnRegisters * V::double_width;  // columns summed together
  const std::int64_t blocks_per_row = (g.inner + block - 1) / block;
  const std::int64_t tasks = g.outer * blocks_per_row;
#pragma omp parallel for schedule(static) if (g.outer * g.reduced * g.inner >= kReduceThreshold)
  for (std::int64_t task = 0; task < tasks; ++task) {
    const std::int64_t o = task / blocks_per_row, first = (task % blocks_per_row) * block;
    const std::int64_t columns = std::min(block, g.inner - first);
    const float* column_top = x + o * g.reduced * g.inner + first;  // x[o, 0, first]
    D sums[kColumnRegisters];
    for (D& s : sums) s = V::broadcast_double(0.0);
    for (std::int64_t r = 0; r < g.reduced; ++r) {
      const float* row = column_top + r * g.inner;
      for (int k = 0; k < kColumnRegisters; ++k) {
        const std::int64_t offset = k * V::double_width, count = std::min(V::double_width, columns - offset);
        if (count == V::double_width)
          sums[k] = V::add(sums[k], V::load_as_double(row + offset));
        else if (count > 0)
          sums[k] = V::add(sums[k], V::load_partial_as_double(row + offset, count));
      }
    }
    float* out = y + o * g.inner + first;
    for (int k = 0; k < kColumnRegisters; ++k) {
      const std::int64_t offset = k * V::double_width, count = std::min(V::double_width, columns - offset);
      if (count == V::double_width)
        V::store_as_float(out + offset, sums[k]);
      else if (count > 0)
        V::store_partial_as_float(out + offset, sums[k], count);
    }
  }
}

}  // namespace

template <class V>
void reduce_sum(const ReduceGeometry& g, const float* x, float* y) {
  if (g.inner == 1) {
    row_sums<V>(g, x, y);
  } else {
    column_sums<V>(g, x, y);
  }
}

}  // namespace kiln::kernels::vectorized
