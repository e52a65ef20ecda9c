// The GEMM ladder's table: every step in order, with what the tests and the benchmark need to run it. A new
// step is a new file and a line here.
#include <array>
#include <cstdint>
#include <span>
#include <string>

#include "core/error.hpp"
#include "kernels/gemm/ladder/ladder.hpp"
#include "kernels/ladder/hopper.hpp"
#include "kernels/ladder/operands.hpp"

namespace kiln::kernels::gemm_ladder {
namespace {

#ifdef KILN_WITH_CUDA  // the launchers exist only where the .cu files are built
// A typed launcher behind the table's untyped signature: A and B are `Operand`s (float or bfloat16).
template <typename Operand, void (*typed)(const Problem&, const Operand*, const Operand*, float*)>
constexpr auto untyped = ladder::untyped<Problem, Operand, typed>;
#endif

bool fits_int(std::int64_t rows, std::int64_t columns) { return ladder::indexable_with_int(rows * columns); }

// Why `problem` cannot run with rows aligned to `alignment` elements, or "" when it can.
std::string unsupported_reason(const Problem& problem, int alignment) {
  const Problem& p = problem;
  if (p.m < 1 || p.n < 1 || p.k < 1) return "M, N and K must be at least 1";
  if (!fits_int(p.m, p.k) || !fits_int(p.k, p.n) || !fits_int(p.m, p.n))
    return "every matrix must hold fewer than 2^31 elements (the kernels index with int)";
  if (p.k % alignment != 0 || p.n % alignment != 0)
    return "K and N must be multiples of " + std::to_string(alignment) +
           " (rows of A and B that start on 16 bytes)";
  return "";
}

}  // namespace

std::span<const Step> steps() {
#ifdef KILN_WITH_CUDA
  static constexpr std::array table{
      Step{"01_naive", "one thread per element of C, a dot product over K from global memory",
           Precision::Fp32, 1, untyped<float, launch_01_naive>},
      Step{"02_shared_tiled",
           "32x32 tiles of A and B staged in shared memory: each global value read once per block",
           Precision::Fp32, 1, untyped<float, launch_02_shared_tiled>},
      Step{"03_register_blocked",
           "a tile of C per thread in registers, from outer products of A's and B's slices", Precision::Fp32,
           1, untyped<float, launch_03_register_blocked>},
      Step{"04_vectorized", "128-bit loads and stores, warp-tiled for conflict-free shared reads",
           Precision::Fp32, 4, untyped<float, launch_04_vectorized>},
      Step{"05_mma_tf32", "tensor cores (mma.sync m16n8k8, TF32), tiles double-buffered by cp.async",
           Precision::Tf32, 4, untyped<float, launch_05_mma_tf32>},
      Step{"06_mma_bf16", "bfloat16 tensor cores (m16n8k16) fed by ldmatrix, a three-stage cp.async pipeline",
           Precision::Bf16, 8, untyped<bfloat16, launch_06_mma_bf16>},
      Step{"07_mma_bf16_swizzled",
           "64x64 warp tiles, XOR-swizzled shared memory, a four-stage pipeline, grouped block order",
           Precision::Bf16, 8, untyped<bfloat16, launch_07_mma_bf16_swizzled>},
      Step{"08_wgmma_bf16",
           "Hopper's asynchronous warpgroup multiply (wgmma m64n128k16) reading 128-byte-swizzled tiles, B "
           "MN-major, one group in flight",
           Precision::Bf16, 8, untyped<bfloat16, launch_08_wgmma_bf16>, /*needs_wgmma=*/true},
      Step{"09_tma_wgmma_bf16",
           "warp specialization: one thread drives the tensor memory accelerator, two warpgroups only "
           "multiply, stages handed over by mbarriers",
           Precision::Bf16, 8, untyped<bfloat16, launch_09_tma_wgmma_bf16>, /*needs_wgmma=*/true},
      Step{"10_wgmma_tf32",
           "step 08's wgmma in TF32 (m64n128k8): both operands K-major, so B is transposed to [n][k] in "
           "scratch first",
           Precision::Tf32, 4, untyped<float, launch_10_wgmma_tf32>, /*needs_wgmma=*/true},
      Step{"11_tma_wgmma_tf32",
           "step 09's warp specialization in TF32 with no transpose pass: C^T = B^T A^T, B's tile loaded "
           "into registers as wgmma's A",
           Precision::Tf32, 4, untyped<float, launch_11_tma_wgmma_tf32>, /*needs_wgmma=*/true},
  };
  return table;
#else
  return {};
#endif
}

bool supports(const Step& step, const Problem& problem) {
  return unsupported_reason(problem, step.alignment).empty() &&
         (!step.needs_wgmma || ladder::wgmma_available());
}

void require_supported(std::string_view step_name, const Problem& problem, int alignment) {
  const std::string reason = unsupported_reason(problem, alignment);
  KILN_CHECK(reason.empty(), "gemm ladder ", step_name, ": cannot run M=", problem.m, " N=", problem.n,
             " K=", problem.k, ": ", reason);
}

void require_16_byte_operands(std::string_view step_name, const void* a, const void* b, const float* c) {
  ladder::require_16_byte_operands("gemm ladder", step_name, a, b, c);
}

}  // namespace kiln::kernels::gemm_ladder
