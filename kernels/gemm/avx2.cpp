// AVX2 + FMA float GEMM: the five-loop driver (gemm_driver.hpp) with a 6 x 16 micro-kernel on ymm
// registers (micro_kernel.hpp; sizes and reasons in blocking.hpp). Compiled with -mavx2 -mfma;
// dispatch.cpp calls it only when cpu_level() is at least Avx2.

#include "kernels/gemm/blocking.hpp"
#include "kernels/gemm/gemm.hpp"
#include "kernels/gemm/gemm_driver.hpp"

namespace kiln::kernels::avx2 {
namespace {

// 8 floats per ymm register. AVX2 has no mask registers: a partial vector uses vmaskmovps with a lane
// mask whose first `lanes` int32 lanes are all ones (the sign bit selects); masked-off lanes are neither
// read nor written.
struct Ymm {
  using Reg = __m256;
  static constexpr int width = 8;
  static Reg zero() { return _mm256_setzero_ps(); }
  static Reg load(const float* p) { return _mm256_loadu_ps(p); }
  static Reg broadcast(const float* p) { return _mm256_broadcast_ss(p); }
  static Reg fma(Reg a, Reg b, Reg c) { return _mm256_fmadd_ps(a, b, c); }
  static Reg mul(Reg a, Reg b) { return _mm256_mul_ps(a, b); }
  static __m256i first(int lanes) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(lanes), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
  static Reg load_first(const float* p, int lanes) { return _mm256_maskload_ps(p, first(lanes)); }
  static void store(float* p, Reg x) { _mm256_storeu_ps(p, x); }
  static void store_first(float* p, Reg x, int lanes) { _mm256_maskstore_ps(p, first(lanes), x); }
};

}  // namespace

void gemm(const GemmGeometry& g, float alpha, const float* a, const float* b, float beta, float* c) {
  gemm_blocked<gemm_blocking::Avx2, Ymm>(g, alpha, a, b, beta, c);
}

}  // namespace kiln::kernels::avx2
