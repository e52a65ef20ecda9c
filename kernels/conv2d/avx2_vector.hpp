// The float vector the conv2d kernel templates (depthwise_kernel.hpp, bias_kernel.hpp) are written against,
// at AVX2 width: 8 floats. Include only from avx2*.cpp files (they are compiled with -mavx2 -mfma).
#pragma once

#include <immintrin.h>

namespace kiln::kernels::avx2 {

struct FloatVector {
  using Vector = __m256;
  static constexpr int width = 8;

  static Vector zero() { return _mm256_setzero_ps(); }
  static Vector broadcast(float value) { return _mm256_set1_ps(value); }
  static Vector load(const float* from) { return _mm256_loadu_ps(from); }
  static void store(float* to, Vector v) { _mm256_storeu_ps(to, v); }
  static __m256i first(int count) {  // lanes [0, count) all ones
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(count), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
  }
  // The first `count` lanes (count <= width); the others read as zero and are never touched in memory.
  static Vector load_first(const float* from, int count) {
    return count == width ? load(from) : _mm256_maskload_ps(from, first(count));
  }
  static void store_first(float* to, Vector v, int count) {
    if (count == width)
      store(to, v);
    else
      _mm256_maskstore_ps(to, first(count), v);
  }
  static Vector multiply_add(Vector a, Vector b, Vector c) { return _mm256_fmadd_ps(a, b, c); }  // a*b + c
  static Vector add(Vector a, Vector b) { return _mm256_add_ps(a, b); }
  static float sum(Vector v) {  // a fixed sequence of adds: halves, then pairs
    __m128 quad = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    quad = _mm_add_ps(quad, _mm_movehl_ps(quad, quad));
    quad = _mm_add_ss(quad, _mm_movehdup_ps(quad));
    return _mm_cvtss_f32(quad);
  }
};

}  // namespace kiln::kernels::avx2
