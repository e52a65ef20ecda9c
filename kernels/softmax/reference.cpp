// Reference softmax and log-softmax: plain loops that read like the formulas in softmax.hpp. They are the
// oracle every faster version is tested against, so they favour clarity and accuracy over speed: the
// exponentials and sums are computed in double and rounded to T once, at the end.
#include <cmath>
#include <cstdint>

#include "kernels/softmax/softmax.hpp"

namespace kiln::kernels::reference {
namespace {

// The tensor is viewed as [outer, dim, inner]; element (o, k, i) sits at (o * dim + k) * inner + i.
// A "row" is the `dim` elements that one softmax normalizes together: fixed (o, i), k = 0 .. dim - 1.
// It starts at o * dim * inner + i and its elements are `inner` apart.
struct Row {
  std::int64_t start;
  std::int64_t stride;
  std::int64_t at(std::int64_t k) const { return start + k * stride; }
};

// Calls visit(row) for each of the outer * inner rows.
template <typename Visit>
void for_each_row(const SoftmaxGeometry& g, Visit visit) {
  for (std::int64_t o = 0; o < g.outer; ++o) {
    for (std::int64_t i = 0; i < g.inner; ++i) visit(Row{o * g.dim * g.inner + i, g.inner});
  }
}

// max_k x[row(k)]: subtracting it makes every exponent <= 0, so exp never overflows and the largest term
// is exactly 1, so the sum never underflows to 0 either.
template <typename T>
double row_max(const T* x, Row row, std::int64_t dim) {
  double largest = static_cast<double>(x[row.at(0)]);
  for (std::int64_t k = 1; k < dim; ++k) largest = std::fmax(largest, static_cast<double>(x[row.at(k)]));
  return largest;
}

// sum_k exp(x[row(k)] - shift)
template <typename T>
double row_sum_exp(const T* x, Row row, std::int64_t dim, double shift) {
  double sum = 0.0;
  for (std::int64_t k = 0; k < dim; ++k) sum += std::exp(static_cast<double>(x[row.at(k)]) - shift);
  return sum;
}

}  // namespace

// y_k = exp(x_k - max x) / sum_j exp(x_j - max x)
template <typename T>
void softmax_forward(const SoftmaxGeometry& g, const T* x, T* y) {
  for_each_row(g, [&](Row row) {
    const double shift = row_max(x, row, g.dim);
    const double sum = row_sum_exp(x, row, g.dim, shift);
    for (std::int64_t k = 0; k < g.dim; ++k) {
      y[row.at(k)] = static_cast<T>(std::exp(static_cast<double>(x[row.at(k)]) - shift) / sum);
    }
  });
}

// gx_k = y_k * (gy_k - sum_j gy_j y_j): the Jacobian of softmax is diag(y) - y y^T.
template <typename T>
void softmax_backward(const SoftmaxGeometry& g, const T* y, const T* gy, T* gx) {
  for_each_row(g, [&](Row row) {
    double gy_dot_y = 0.0;
    for (std::int64_t k = 0; k < g.dim; ++k) {
      gy_dot_y += static_cast<double>(gy[row.at(k)]) * static_cast<double>(y[row.at(k)]);
    }
    for (std::int64_t k = 0; k < g.dim; ++k) {
      const double y_k = static_cast<double>(y[row.at(k)]);
      gx[row.at(k)] = static_cast<T>(y_k * (static_cast<double>(gy[row.at(k)]) - gy_dot_y));
    }
  });
}

// y_k = x_k - max x - log sum_j exp(x_j - max x)
template <typename T>
void log_softmax_forward(const SoftmaxGeometry& g, const T* x, T* y) {
  for_each_row(g, [&](Row row) {
    const double shift = row_max(x, row, g.dim);
    const double log_sum = std::log(row_sum_exp(x, row, g.dim, shift));
    for (std::int64_t k = 0; k < g.dim; ++k) {
      y[row.at(k)] = static_cast<T>(static_cast<double>(x[row.at(k)]) - shift - log_sum);
    }
  });
}

// gx_k = gy_k - exp(y_k) * sum_j gy_j: the Jacobian of log-softmax is I - 1 softmax^T, and exp(y) is the
// softmax.
template <typename T>
void log_softmax_backward(const SoftmaxGeometry& g, const T* y, const T* gy, T* gx) {
  for_each_row(g, [&](Row row) {
    double gy_sum = 0.0;
    for (std::int64_t k = 0; k < g.dim; ++k) gy_sum += static_cast<double>(gy[row.at(k)]);
    for (std::int64_t k = 0; k < g.dim; ++k) {
      const double softmax_k = std::exp(static_cast<double>(y[row.at(k)]));
      gx[row.at(k)] = static_cast<T>(static_cast<double>(gy[row.at(k)]) - softmax_k * gy_sum);
    }
  });
}

template void softmax_forward<float>(const SoftmaxGeometry&, const float*, float*);
template void softmax_forward<double>(const SoftmaxGeometry&, const double*, double*);
template void softmax_backward<float>(const SoftmaxGeometry&, const float*, const float*, float*);
template void softmax_backward<double>(const SoftmaxGeometry&, const double*, const double*, double*);
template void log_softmax_forward<float>(const SoftmaxGeometry&, const float*, float*);
template void log_softmax_forward<double>(const SoftmaxGeometry&, const double*, double*);
template void log_softmax_backward<float>(const SoftmaxGeometry&, const float*, const float*, float*);
template void log_softmax_backward<double>(const SoftmaxGeometry&, const double*, const double*, double*);

}  // namespace kiln::kernels::reference
