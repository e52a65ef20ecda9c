// Reductions along one axis of a dense tensor viewed as [outer, reduced, inner].
//
// Reducing several axes at once is the caller's job: core/ permutes the reduced axes to be adjacent and
// makes the tensor dense, so every reduction reaches this kernel as the middle axis of a 3-d view.
//
//   x [outer, reduced, inner]  ->  y [outer, inner]
//   T is float, double or bfloat16.
//   Sum:  y = sum over the middle axis, accumulated in double (for float and bfloat16 too, so long sums stay
//         accurate) and rounded once to T
//   Max / Min: the largest / smallest value (NaN propagates); exact, an element of x
//   argmax: the index along the middle axis of the first largest value, as int64 (a NaN counts as
//   largest, matching Max)
// reduced == 0 gives Sum 0 and is an error for Max/Min/argmax (core/ rejects it before calling).
#pragma once

#include <cstdint>

#include "core/bfloat16.hpp"
#include "core/device.hpp"

namespace kiln::kernels {

enum class ReduceOp { Sum, Max, Min };

struct ReduceGeometry {
  std::int64_t outer = 1, reduced = 1, inner = 1;
};

template <typename T> void reduce(Device device, ReduceOp op, const ReduceGeometry& g, const T* x, T* y);
template <typename T> void argmax(Device device, const ReduceGeometry& g, const T* x, std::int64_t* indices);

namespace reference {
template <typename T> void reduce(ReduceOp op, const ReduceGeometry& g, const T* x, T* y);
template <typename T> void argmax(const ReduceGeometry& g, const T* x, std::int64_t* indices);
}  // namespace reference

// Vectorized float Sum (vectorized_reduce.hpp), one namespace per instruction set, accumulating in double
// like the reference: column sums (inner > 1) equal it bitwise; row sums (inner == 1) differ only in the
// order of the double additions.
namespace avx512 {
void reduce_sum(const ReduceGeometry& g, const float* x, float* y);
}  // namespace avx512
namespace avx2 {
void reduce_sum(const ReduceGeometry& g, const float* x, float* y);
}  // namespace avx2

// CUDA kernels (cuda_reduce.cu, built when CMake finds a CUDA compiler). Each runs on the current device, on
// the compute stream, asynchronously; x, y and indices are device memory on `device`, which also serves
// the scratch a split reduction needs. Deterministic (no atomics). Sum accumulates in double for every T
// (bfloat16 too) and differs from the reference only in the order of its double additions; Max, Min and
// argmax give exactly the reference's element.
namespace cuda {
template <typename T>
void reduce(Device device, ReduceOp op, const ReduceGeometry& g, const T* x, T* y);
template <typename T>
void argmax(Device device, const ReduceGeometry& g, const T* x, std::int64_t* indices);
}  // namespace cuda

}  // namespace kiln::kernels
