// Reference reduction kernels: plain loops that read like the definitions in reduce.hpp. They are the
// oracle every optimized reduction is tested against, so clarity beats speed here.
//
//   x [outer, reduced, inner]  ->  y, indices [outer, inner]
//
// Each output y[o, i] looks at the column x[o, :, i], whose elements lie `inner` apart in memory.
#include <cmath>
#include <cstdint>

#include "kernels/reduce/reduce.hpp"

namespace kiln::kernels::reference {
namespace {

// Offset of x[o, r, i] in the dense [outer, reduced, inner] buffer.
std::int64_t offset_of(const ReduceGeometry& g, std::int64_t o, std::int64_t r, std::int64_t i) {
  return (o * g.reduced + r) * g.inner + i;
}

// Does `candidate` replace `best` as the running Max (or Min)? Only a strictly larger (smaller) value
// does, so ties stay with the first. A NaN beats any number and, once held, is never replaced, so a NaN
// anywhere in the column is the answer, and argmax points at the first NaN.
template <typename T>
bool replaces(ReduceOp op, T candidate, T best) {
  if (std::isnan(best)) return false;
  if (std::isnan(candidate)) return true;
  return op == ReduceOp::Max ? candidate > best : candidate < best;
}

// The index r of the first element of the column x[o, :, i] that no later element replaces. reduced > 0.
template <typename T>
std::int64_t extreme_index(ReduceOp op, const ReduceGeometry& g, const T* x, std::int64_t o, std::int64_t i) {
  std::int64_t best = 0;
  for (std::int64_t r = 1; r < g.reduced; ++r) {
    if (replaces(op, x[offset_of(g, o, r, i)], x[offset_of(g, o, best, i)])) best = r;
  }
  return best;
}

// sum over r of x[o, r, i]. The sum is accumulated in double so a long float sum stays accurate (a float
// accumulator stops growing once the total dwarfs each term); it is rounded to T once, at the end. For
// bfloat16 that is one rounding of the double sum, never a bfloat16 (or float) partial sum.
template <typename T>
T column_sum(const ReduceGeometry& g, const T* x, std::int64_t o, std::int64_t i) {
  double sum = 0.0;
  for (std::int64_t r = 0; r < g.reduced; ++r) sum += x[offset_of(g, o, r, i)];
  return static_cast<T>(sum);
}

}  // namespace

// y[o, i] = Sum / Max / Min over r of x[o, r, i]. Max and Min need reduced > 0 (core/ checks).
template <typename T>
void reduce(ReduceOp op, const ReduceGeometry& g, const T* x, T* y) {
  for (std::int64_t o = 0; o < g.outer; ++o) {
    for (std::int64_t i = 0; i < g.inner; ++i) {
      y[o * g.inner + i] =
          op == ReduceOp::Sum ? column_sum(g, x, o, i) : x[offset_of(g, o, extreme_index(op, g, x, o, i), i)];
    }
  }
}

// indices[o, i] = the first r where x[o, r, i] is largest (the first NaN, if any). reduced > 0.
template <typename T>
void argmax(const ReduceGeometry& g, const T* x, std::int64_t* indices) {
  for (std::int64_t o = 0; o < g.outer; ++o) {
    for (std::int64_t i = 0; i < g.inner; ++i)
      indices[o * g.inner + i] = extreme_index(ReduceOp::Max, g, x, o, i);
  }
}

template void reduce<float>(ReduceOp, const ReduceGeometry&, const float*, float*);
template void reduce<double>(ReduceOp, const ReduceGeometry&, const double*, double*);
template void reduce<bfloat16>(ReduceOp, const ReduceGeometry&, const bfloat16*, bfloat16*);
template void argmax<float>(const ReduceGeometry&, const float*, std::int64_t*);
template void argmax<double>(const ReduceGeometry&, const double*, std::int64_t*);
template void argmax<bfloat16>(const ReduceGeometry&, const bfloat16*, std::int64_t*);

}  // namespace kiln::kernels::reference
