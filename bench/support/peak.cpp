#include "bench/support/peak.hpp"

#include <immintrin.h>
#include <omp.h>

#include <chrono>
#include <map>

#include "kernels/cpu_level.hpp"

namespace kiln::bench {
namespace {

constexpr int kAccumulators = 12;

// Returns FLOP executed. The result is folded into `sink` so the compiler cannot drop the loop.
__attribute__((target("avx512f,fma"))) double fma_loop_avx512(long iterations, float* sink) {
  __m512 acc[kAccumulators];
  for (int i = 0; i < kAccumulators; ++i) acc[i] = _mm512_set1_ps(0.001f * static_cast<float>(i));
  const __m512 a = _mm512_set1_ps(0.999999f), b = _mm512_set1_ps(1e-7f);
  for (long it = 0; it < iterations; ++it) {
    for (int i = 0; i < kAccumulators; ++i) acc[i] = _mm512_fmadd_ps(acc[i], a, b);
  }
  __m512 total = acc[0];
  for (int i = 1; i < kAccumulators; ++i) total = _mm512_add_ps(total, acc[i]);
  *sink = _mm512_reduce_add_ps(total);
  return 2.0 * 16 * kAccumulators * static_cast<double>(iterations);
}

__attribute__((target("avx2,fma"))) double fma_loop_avx2(long iterations, float* sink) {
  __m256 acc[kAccumulators];
  for (int i = 0; i < kAccumulators; ++i) acc[i] = _mm256_set1_ps(0.001f * static_cast<float>(i));
  const __m256 a = _mm256_set1_ps(0.999999f), b = _mm256_set1_ps(1e-7f);
  for (long it = 0; it < iterations; ++it) {
    for (int i = 0; i < kAccumulators; ++i) acc[i] = _mm256_fmadd_ps(acc[i], a, b);
  }
  __m256 total = acc[0];
  for (int i = 1; i < kAccumulators; ++i) total = _mm256_add_ps(total, acc[i]);
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, total);
  *sink = lanes[0] + lanes[7];
  return 2.0 * 8 * kAccumulators * static_cast<double>(iterations);
}

double measure(int threads) {
  const bool avx512 = kernels::detected_cpu_level() == kernels::CpuLevel::Avx512;
  const long iterations = 20'000'000;
  double best = 0.0;
  for (int trial = 0; trial < 3; ++trial) {
    double flop = 0.0;
    float sink = 0.0f;
    const auto start = std::chrono::steady_clock::now();
#pragma omp parallel num_threads(threads) reduction(+ : flop)
    {
      float local = 0.0f;
      flop += avx512 ? fma_loop_avx512(iterations, &local) : fma_loop_avx2(iterations, &local);
#pragma omp critical
      sink += local;
    }
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    if (sink == 12345.0f) flop += 1.0;  // keeps `sink` observable
    best = std::max(best, flop / seconds * 1e-9);
  }
  return best;
}

}  // namespace

double fp32_peak_gflops(int threads) {
  static std::map<int, double> cache;
  auto found = cache.find(threads);
  if (found != cache.end()) return found->second;
  return cache[threads] = measure(threads);
}

}  // namespace kiln::bench
