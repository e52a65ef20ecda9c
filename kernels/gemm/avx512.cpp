// AVX-512 float GEMM: the five-loop driver (gemm_driver.hpp) with an 8 x 32 micro-kernel on zmm
// registers (micro_kernel.hpp; sizes and reasons in blocking.hpp). Compiled with -mavx512f/bw/vl/dq
// -mfma; dispatch.cpp calls it only when cpu_level() is Avx512.

#include "kernels/gemm/blocking.hpp"
#include "kernels/gemm/gemm.hpp"
#include "kernels/gemm/gemm_driver.hpp"

namespace kiln::kernels::avx512 {
namespace {

// 16 floats per zmm register; partial vectors use a lane mask (the first `lanes` bits set), which also
// keeps masked-off lanes of C from being read, so the NaN-filled C of beta == 0 stays harmless.
struct Zmm {
  using Reg = __m512;
  static constexpr int width = 16;
  static Reg zero() { return _mm512_setzero_ps(); }
  static Reg load(const float* p) { return _mm512_loadu_ps(p); }
  static Reg broadcast(const float* p) { return _mm512_set1_ps(*p); }
  static Reg fma(Reg a, Reg b, Reg c) { return _mm512_fmadd_ps(a, b, c); }
  static Reg mul(Reg a, Reg b) { return _mm512_mul_ps(a, b); }
  static __mmask16 first(int lanes) { return static_cast<__mmask16>((1u << lanes) - 1u); }
  static Reg load_first(const float* p, int lanes) { return _mm512_maskz_loadu_ps(first(lanes), p); }
  static void store(float* p, Reg x) { _mm512_storeu_ps(p, x); }
  static void store_first(float* p, Reg x, int lanes) { _mm512_mask_storeu_ps(p, first(lanes), x); }
};

}  // namespace

void gemm(const GemmGeometry& g, float alpha, const float* a, const float* b, float beta, float* c) {
  gemm_blocked<gemm_blocking::Avx512, Zmm>(g, alpha, a, b, beta, c);
}

}  // namespace kiln::kernels::avx512
