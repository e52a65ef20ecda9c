// Threaded softmax and log-softmax over float tensors, written once over a vector trait V
// (simd::FloatVector512 or FloatVector256) and instantiated by avx512.cpp and avx2.cpp.
//
//   x, y, gy, gx  viewed as [outer, dim, inner]; a row is the `dim` values (o, 0..dim-1, i), `inner` apart.
//
// Design: one row is normalized by one thread, start to end, so results never depend on the thread count;
// threads split the outer * inner rows. The arithmetic follows the reference (exp, the sums of the forward
// and the per-element formulas in double, rounded to float once), so the forwards are bitwise equal to it:
//   - the max is exact in any order, so contiguous rows (inner == 1) take it with vector max over lanes;
//   - the forward softmax calls std::exp once per element, not twice: exp(x_k - max) is kept in a per-thread
//     double scratch row between the sum and the division (the reference recomputes it);
//   - the backward sums (sum gy * y, sum gy) of contiguous rows are split across double vector lanes
//     (width / 2 lanes, added in a fixed order), which differs from the reference's sequential sum only by
//     rounding in double, far below a float ulp of the output.
// There is no vector exp here: std::exp in double keeps the reference's accuracy; the speedup is threads,
// the single exp per element and vectorized max and backward sums.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "kernels/softmax/softmax.hpp"

namespace kiln::kernels::vectorized {
namespace {

inline constexpr std::int64_t kParallelThreshold = 16384;  // below this many elements, threads cost more

// One softmax row: element k sits at start + k * stride.
struct Row {
  std::int64_t start;
  std::int64_t stride;
  std::int64_t at(std::int64_t k) const { return start + k * stride; }
};

// Calls visit(row, scratch) for each of the outer * inner rows, threads splitting the rows; scratch is a
// per-thread buffer of `dim` doubles.
template <typename Visit>
void for_each_row_parallel(const SoftmaxGeometry& g, Visit visit) {
  const std::int64_t rows = g.outer * g.inner;
#pragma omp parallel if (rows * g.dim >= kParallelThreshold)
  {
    std::vector<double> scratch(static_cast<std::size_t>(g.dim));
#pragma omp for schedule(static)
    for (std::int64_t r = 0; r < rows; ++r) {
      const std::int64_t o = r / g.inner, i = r % g.inner;
      visit(Row{o * g.dim * g.inner + i, g.inner}, scratch.data());
    }
  }
}

// max_k x[row(k)]. Contiguous rows: a vector of running maxima over full vectors, then its lanes and the
// tail. max is exact, so the order does not change the result.
template <class V>
float row_max(const float* x, Row row, std::int64_t dim) {
  float largest = x[row.at(0)];
  std::int64_t k = 0;
  if (row.stride == 1 && dim >= V::width) {
    const float* p = x + row.start;
    typename V::Reg maxima = V::load(p);
    for (k = V::width; k + V::width <= dim; k += V::width) maxima = V::max(V::load(p + k), maxima);
    float lanes[V::width];
    V::store(lanes, maxima);
    for (const float lane : lanes) largest = std::fmax(largest, lane);
  }
  for (; k < dim; ++k) largest = std::fmax(largest, x[row.at(k)]);
  return largest;
}

// The width / 2 double lanes of `partial`, added in lane order.
template <class V>
double sum_double_lanes(typename V::DoubleReg partial) {
  double lanes[V::double_width];
  V::store(lanes, partial);
  double total = 0.0;
  for (const double lane : lanes) total += lane;
  return total;
}

// sum_k a[row(k)] * b[row(k)] in double (b == nullptr: sum_k a[row(k)]). Contiguous rows split the sum
// across double lanes; strided rows add in order.
template <class V>
double row_dot_in_double(const float* a, const float* b, Row row, std::int64_t dim) {
  if (row.stride != 1) {
    double total = 0.0;
    for (std::int64_t k = 0; k < dim; ++k) {
      const double b_k = b ? static_cast<double>(b[row.at(k)]) : 1.0;
      total += static_cast<double>(a[row.at(k)]) * b_k;
    }
    return total;
  }
  const float* pa = a + row.start;
  const float* pb = b ? b + row.start : nullptr;
  typename V::DoubleReg partial = V::broadcast_double(0.0);
  for (std::int64_t k = 0; k < dim; k += V::double_width) {
    const std::int64_t count = std::min<std::int64_t>(V::double_width, dim - k);
    const auto a_k =
        count == V::double_width ? V::load_as_double(pa + k) : V::load_partial_as_double(pa + k, count);
    if (pb) {
      const auto b_k =
          count == V::double_width ? V::load_as_double(pb + k) : V::load_partial_as_double(pb + k, count);
      partial = V::add(partial, V::mul(a_k, b_k));
    } else {
      partial = V::add(partial, a_k);
    }
  }
  return sum_double_lanes<V>(partial);
}

}  // namespace

// y_k = exp(x_k - max x) / sum_j exp(x_j - max x)
template <class V>
void softmax_forward(const SoftmaxGeometry& g, const float* x, float* y) {
  for_each_row_parallel(g, [&](Row row, double* exps) {
    const double shift = static_cast<double>(row_max<V>(x, row, g.dim));
    double sum = 0.0;
    for (std::int64_t k = 0; k < g.dim; ++k) {
      exps[k] = std::exp(static_cast<double>(x[row.at(k)]) - shift);
      sum += exps[k];
    }
    for (std::int64_t k = 0; k < g.dim; ++k) y[row.at(k)] = static_cast<float>(exps[k] / sum);
  });
}

// gx_k = y_k * (gy_k - sum_j gy_j y_j)
template <class V>
void softmax_backward(const SoftmaxGeometry& g, const float* y, const float* gy, float* gx) {
  for_each_row_parallel(g, [&](Row row, double*) {
    const double gy_dot_y = row_dot_in_double<V>(gy, y, row, g.dim);
    for (std::int64_t k = 0; k < g.dim; ++k) {
      const double y_k = static_cast<double>(y[row.at(k)]);
      gx[row.at(k)] = static_cast<float>(y_k * (static_cast<double>(gy[row.at(k)]) - gy_dot_y));
    }
  });
}

// y_k = x_k - max x - log sum_j exp(x_j - max x)
template <class V>
void log_softmax_forward(const SoftmaxGeometry& g, const float* x, float* y) {
  for_each_row_parallel(g, [&](Row row, double*) {
    const double shift = static_cast<double>(row_max<V>(x, row, g.dim));
    double sum = 0.0;
    for (std::int64_t k = 0; k < g.dim; ++k) sum += std::exp(static_cast<double>(x[row.at(k)]) - shift);
    const double log_sum = std::log(sum);
    for (std::int64_t k = 0; k < g.dim; ++k) {
      y[row.at(k)] = static_cast<float>(static_cast<double>(x[row.at(k)]) - shift - log_sum);
    }
  });
}

// gx_k = gy_k - exp(y_k) * sum_j gy_j
template <class V>
void log_softmax_backward(const SoftmaxGeometry& g, const float* y, const float* gy, float* gx) {
  for_each_row_parallel(g, [&](Row row, double*) {
    const double gy_sum = row_dot_in_double<V>(gy, nullptr, row, g.dim);
    for (std::int64_t k = 0; k < g.dim; ++k) {
      const double softmax_k = std::exp(static_cast<double>(y[row.at(k)]));
      gx[row.at(k)] = static_cast<float>(static_cast<double>(gy[row.at(k)]) - softmax_k * gy_sum);
    }
  });
}

}  // namespace kiln::kernels::vectorized
