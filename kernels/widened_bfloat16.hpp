// bfloat16 operands run through the float kernels: widened (exactly) into float scratch from the CPU's
// caching allocator, and a float result rounded (to nearest, ties to even) back, by the elementwise family's
// vectorized conversions. The conv2d and GEMM dispatchers' bfloat16 paths that have no kernel of their own
// go through here.
//
// A matrix is rows x cols with row stride ld; the gaps between rows (ld > cols) are neither read nor
// written. A dense vector of count values is one such row.
#pragma once

#include <cstdint>

#include "core/bfloat16.hpp"
#include "kernels/cpu_scratch.hpp"

namespace kiln::kernels {

// The values as a dense float [rows, cols].
CpuScratch widened(const bfloat16* values, std::int64_t rows, std::int64_t cols, std::int64_t ld);
CpuScratch widened(const bfloat16* values, std::int64_t count);

// The dense float [rows, cols] `wide` rounded into `out`, row stride ld.
void round_into(const float* wide, std::int64_t rows, std::int64_t cols, bfloat16* out, std::int64_t ld);
void round_into(const float* wide, std::int64_t count, bfloat16* out);

}  // namespace kiln::kernels
