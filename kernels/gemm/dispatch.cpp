// The single dispatch point for GEMM: every caller goes through this function, and only here is an
// implementation chosen. float runs the fastest version cpu_level() allows (AVX-512, then AVX2, then the
// reference); double is used only by gradient checks and keeps the reference. bfloat16 runs the AVX512-BF16
// kernel where the CPU has it; elsewhere its operands are widened to float (exactly) and run through the
// float GEMM, and C is rounded to bfloat16 once. On a CUDA device all three run through cuBLAS
// (cuda_gemm.cu).
#include <algorithm>
#include <cstdint>
#include <string>
#include <type_traits>

#include "core/error.hpp"
#include "core/profiler.hpp"
#include "kernels/cpu_level.hpp"
#include "kernels/cpu_scratch.hpp"
#include "kernels/gemm/gemm.hpp"
#include "kernels/widened_bfloat16.hpp"

namespace kiln::kernels {
namespace {

// C [M, N] (bfloat16) = alpha op(A) op(B) + beta C through the float GEMM: A, B and, when beta reads it, C
// widened to dense float copies (scratch from the caching allocator: a training step asks for the same
// sizes every time), the float GEMM (which sums in float), C rounded to bfloat16 once. beta == 0 never
// reads C (it may hold NaN), and the float GEMM then never reads its copy either.
void gemm_through_float(Device device, const GemmGeometry& g, float alpha, const bfloat16* a,
                        const bfloat16* b, float beta, bfloat16* c) {
  if (g.m == 0 || g.n == 0) return;
  const std::int64_t a_rows = g.trans_a ? g.k : g.m, a_cols = g.trans_a ? g.m : g.k;  // A as stored
  const std::int64_t b_rows = g.trans_b ? g.n : g.k, b_cols = g.trans_b ? g.k : g.n;  // B as stored
  const CpuScratch a_float = widened(a, a_rows, a_cols, g.lda);
  const CpuScratch b_float = widened(b, b_rows, b_cols, g.ldb);
  const CpuScratch c_float = beta == 0.0f ? cpu_scratch(g.m * g.n) : widened(c, g.m, g.n, g.ldc);
  GemmGeometry dense = g;
  dense.lda = std::max<std::int64_t>(a_cols, 1);
  dense.ldb = std::max<std::int64_t>(b_cols, 1);
  dense.ldc = g.n;
  gemm<float>(device, dense, alpha, a_float.get(), b_float.get(), beta, c_float.get());
  round_into(c_float.get(), g.m, g.n, c, g.ldc);
}

}  // namespace

template <typename T>
void gemm(Device device, const GemmGeometry& g, opmath_t<T> alpha, const T* a, const T* b, opmath_t<T> beta,
          T* c) {
  profiler::Scope profile("gemm", device, dtype_of_v<T>);
  if (profile.measuring()) {  // "64x10x128 nt": M x N x K, and which operands are transposed
    profile.set_detail(std::to_string(g.m) + "x" + std::to_string(g.n) + "x" + std::to_string(g.k) + " " +
                       (g.trans_a ? "t" : "n") + (g.trans_b ? "t" : "n"));
    profile.set_flops(2 * g.m * g.n * g.k);
  }
  if (g.blocked_columns() || g.blocked_depth()) {
    KILN_CHECK(device.is_cpu(),
               "gemm: images in blocks (GemmGeometry::column_block, depth_block) run on the CPU only");
    KILN_CHECK(!(g.blocked_columns() && g.blocked_depth()),
               "gemm: columns and depth cannot both be in blocks");
    KILN_CHECK(!g.blocked_columns() || !g.trans_b, "gemm: columns in blocks need trans_b false");
  }
#ifdef KILN_WITH_CUDA
  if (device.is_cuda()) return cuda::gemm(g, alpha, a, b, beta, c);
#endif
  require_cpu(device, "gemm");
  if constexpr (std::is_same_v<T, float>) {
    switch (cpu_level()) {
      case CpuLevel::Avx512:
        return avx512::gemm(g, alpha, a, b, beta, c);
      case CpuLevel::Avx2:
        return avx2::gemm(g, alpha, a, b, beta, c);
      case CpuLevel::Reference:
        break;
    }
  }
  if constexpr (std::is_same_v<T, bfloat16>) {
    // The Reference level runs the oracle itself (float's reference, then a second rounding, would not be).
    if (cpu_level() != CpuLevel::Reference && !g.blocked_columns() && !g.blocked_depth()) {
      if (avx512_bf16_usable()) return avx512_bf16::gemm(g, alpha, a, b, beta, c);
      return gemm_through_float(device, g, alpha, a, b, beta, c);
    }
  }
  reference::gemm(g, alpha, a, b, beta, c);
}

template void gemm<float>(Device, const GemmGeometry&, float, const float*, const float*, float, float*);
template void gemm<double>(Device, const GemmGeometry&, double, const double*, const double*, double,
                           double*);
template void gemm<bfloat16>(Device, const GemmGeometry&, float, const bfloat16*, const bfloat16*, float,
                             bfloat16*);

}  // namespace kiln::kernels
