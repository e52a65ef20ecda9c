// The float vector the conv2d kernel templates (depthwise_kernel.hpp, bias_kernel.hpp) are written against,
// at AVX-512 width: 16 floats. Include only from avx512*.cpp files (they are compiled with -mavx512f...).
#pragma once

#include <immintrin.h>

namespace kiln::kernels::avx512 {

struct FloatVector {
  using Vector = __m512;
  static constexpr int width = 16;

  static Vector zero() { return _mm512_setzero_ps(); }
  static Vector broadcast(float value) { return _mm512_set1_ps(value); }
  static Vector load(const float* from) { return _mm512_loadu_ps(from); }
  static void store(float* to, Vector v) { _mm512_storeu_ps(to, v); }
  static __mmask16 first(int count) { return static_cast<__mmask16>((1u << count) - 1u); }  // count < 16
  // The first `count` lanes (count <= width); the others read as zero and are never touched in memory.
  static Vector load_first(const float* from, int count) {
    return count == width ? load(from) : _mm512_maskz_loadu_ps(first(count), from);
  }
  static void store_first(float* to, Vector v, int count) {
    if (count == width)
      store(to, v);
    else
      _mm512_mask_storeu_ps(to, first(count), v);
  }
  static Vector multiply_add(Vector a, Vector b, Vector c) { return _mm512_fmadd_ps(a, b, c); }  // a*b + c
  static Vector add(Vector a, Vector b) { return _mm512_add_ps(a, b); }
  static float sum(Vector v) {  // lanes added in a fixed tree order: ((0+8) + (4+12)) + ...
    alignas(64) float lanes[width];
    _mm512_store_ps(lanes, v);
    for (int half = width / 2; half > 0; half /= 2) {
      for (int i = 0; i < half; ++i) lanes[i] += lanes[i + half];
    }
    return lanes[0];
  }
};

}  // namespace kiln::kernels::avx512
