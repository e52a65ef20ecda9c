// im2col / col2im_add (im2col_kernel.hpp) at AVX2 width: 8 floats, the padding as a lane mask held in a
// vector (all ones in the lanes that are read or written).
#include <immintrin.h>

#include "kernels/conv2d/im2col.hpp"
#include "kernels/conv2d/im2col_kernel.hpp"

namespace kiln::kernels::avx2 {
namespace {

struct Im2colVector {
  using Vector = __m256;
  using Mask = __m256i;
  static constexpr int width = 8;

  static Vector zero() { return _mm256_setzero_ps(); }
  // Lanes j with begin <= j < end (any integers; clamped to [-1, 8] so they fit the 32-bit compare).
  static Mask lanes_between(std::int64_t begin, std::int64_t end) {
    const auto clamp = [](std::int64_t n) {
      return static_cast<int>(std::clamp<std::int64_t>(n, -1, width));
    };
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    const __m256i at_least_begin = _mm256_cmpgt_epi32(lane, _mm256_set1_epi32(clamp(begin) - 1));
    const __m256i below_end = _mm256_cmpgt_epi32(_mm256_set1_epi32(clamp(end)), lane);
    return _mm256_and_si256(at_least_begin, below_end);
  }
  // Masked-out lanes read as zero and are not touched in memory (they may lie outside the row).
  static Vector load_masked(Mask mask, const float* from) { return _mm256_maskload_ps(from, mask); }
  static void store_first(float* to, Vector v, int count) {  // count <= width
    if (count == width)
      _mm256_storeu_ps(to, v);
    else
      _mm256_maskstore_ps(to, lanes_between(0, count), v);
  }
  // sum + v in the lanes of `mask`; the other lanes keep sum as it is (a -0.0 stays -0.0).
  static Vector add_masked(Mask mask, Vector sum, Vector v) {
    return _mm256_blendv_ps(sum, _mm256_add_ps(sum, v), _mm256_castsi256_ps(mask));
  }
  // Lanes 0, 2, ..., 14 of the 16-lane concatenation (low, high).
  static Vector even_lanes(Vector low, Vector high) {
    // shuffle_ps works within 128-bit halves: [l0 l2 h0 h2 | l4 l6 h4 h6]; then order the 64-bit pairs.
    const __m256 pairs = _mm256_shuffle_ps(low, high, _MM_SHUFFLE(2, 0, 2, 0));
    return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(pairs), _MM_SHUFFLE(3, 1, 2, 0)));
  }
};

}  // namespace

void im2col(const Conv2dGeometry& g, const float* x_channels, std::int64_t channels, float* col,
            std::int64_t col_stride) {
  im2col_kernel::im2col<Im2colVector>(g, x_channels, channels, col, col_stride);
}
void col2im_add(const Conv2dGeometry& g, const float* col, std::int64_t channels, std::int64_t col_stride,
                float* gx_channels) {
  im2col_kernel::col2im_add<Im2colVector>(g, col, channels, col_stride, gx_channels);
}

}  // namespace kiln::kernels::avx2
