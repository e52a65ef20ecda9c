// The GEMM ladder: one CUDA kernel per step, from a loop per output element to tensor cores fed by
// asynchronous copies, each step in its own file (NN_name.cu) so it can be read, and changed, alone.
// README.md beside this file walks the steps: what each changes, why it is faster, what it measured.
// Every step is validated against reference::gemm (tests/cuda/gemm_ladder_test.cpp) and timed against
// cuBLAS (bench/ladder/gemm_ladder.cpp).
//
// Every step computes the same thing, row-major and dense (lda = K, ldb = N, ldc = N):
//
//   C[M, N] = alpha * A[M, K] * B[K, N] + beta * C[M, N]
//
// C is float and every sum is float. A and B are float for the fp32 and tf32 steps and bfloat16 for the bf16
// steps (ladder/precision.hpp). beta == 0 never reads C, so C may start as anything, NaN included (BLAS
// semantics; the tests poison it). M, N and K are any size >= 1; a step whose loads are vectors needs K and
// N to be multiples of its `alignment` and A, B and C to start on 16 bytes (as every cudaMalloc'd block and
// every tensor kiln allocates do), so that every row starts on 16 bytes; its launcher checks both. Each
// launch runs on the compute stream (cuda::compute_stream) and returns at once.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>

#include "core/bfloat16.hpp"
#include "kernels/ladder/precision.hpp"

namespace kiln::kernels::gemm_ladder {

using ladder::Precision;

struct Problem {
  int m = 1, n = 1, k = 1;
  float alpha = 1.0f, beta = 0.0f;
};

// One rung. `launch` takes A and B as float (fp32, tf32) or bfloat16 (bf16), as `precision` says.
struct Step {
  std::string_view name;     // "05_mma_tf32": the file, without .cu
  std::string_view summary;  // what this step changes from the one before, in a line
  Precision precision;
  int alignment;  // K and N must be multiples of this (elements); 1: any shape
  void (*launch)(const Problem& problem, const void* a, const void* b, float* c);
  bool needs_wgmma = false;  // a Hopper step: runs only where ladder::wgmma_available() (ladder/hopper.hpp)
};

// The steps in ladder order; empty in a build without CUDA.
std::span<const Step> steps();

// Whether `step` runs `problem` here: sizes >= 1, the alignment, M*K, K*N, M*N below 2^31 (the kernels index
// with int), and for a Hopper step, a build and a device that have wgmma.
bool supports(const Step& step, const Problem& problem);

// Throws a kiln::Error naming the step and the reason when !supports(step, problem); every launcher calls it.
void require_supported(std::string_view step_name, const Problem& problem, int alignment);
// Throws a kiln::Error naming the step unless A, B and C start on 16 bytes; the vector steps call it too
// (supports() cannot see pointers).
void require_16_byte_operands(std::string_view step_name, const void* a, const void* b, const float* c);

// The launchers, one per file. Each checks the problem (require_supported) and launches its kernel.
void launch_01_naive(const Problem& problem, const float* a, const float* b, float* c);
void launch_02_shared_tiled(const Problem& problem, const float* a, const float* b, float* c);
void launch_03_register_blocked(const Problem& problem, const float* a, const float* b, float* c);
void launch_04_vectorized(const Problem& problem, const float* a, const float* b, float* c);
void launch_05_mma_tf32(const Problem& problem, const float* a, const float* b, float* c);
void launch_06_mma_bf16(const Problem& problem, const bfloat16* a, const bfloat16* b, float* c);
void launch_07_mma_bf16_swizzled(const Problem& problem, const bfloat16* a, const bfloat16* b, float* c);
void launch_08_wgmma_bf16(const Problem& problem, const bfloat16* a, const bfloat16* b, float* c);
void launch_09_tma_wgmma_bf16(const Problem& problem, const bfloat16* a, const bfloat16* b, float* c);
void launch_10_wgmma_tf32(const Problem& problem, const float* a, const float* b, float* c);
void launch_11_tma_wgmma_tf32(const Problem& problem, const float* a, const float* b, float* c);

}  // namespace kiln::kernels::gemm_ladder
