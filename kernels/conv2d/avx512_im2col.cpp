// im2col / col2im_add (im2col_kernel.hpp) at AVX-512 width: 16 floats, the padding as a 16-bit lane mask.
#include <immintrin.h>

#include "kernels/conv2d/im2col.hpp"
#include "kernels/conv2d/im2col_kernel.hpp"

namespace kiln::kernels::avx512 {
namespace {

struct Im2colVector {
  using Vector = __m512;
  using Mask = __mmask16;
  static constexpr int width = 16;

  static Vector zero() { return _mm512_setzero_ps(); }
  // Lanes j with begin <= j < end (any integers; the result is clamped to the 16 lanes).
  static Mask lanes_between(std::int64_t begin, std::int64_t end) {
    const auto below = [](std::int64_t n) {  // lanes j < n
      return n <= 0 ? 0u : n >= width ? 0xFFFFu : (1u << n) - 1u;
    };
    return static_cast<Mask>(below(end) & ~below(begin));
  }
  // Masked-out lanes read as zero and are not touched in memory (they may lie outside the row).
  static Vector load_masked(Mask mask, const float* from) { return _mm512_maskz_loadu_ps(mask, from); }

  static void store_first(float* to, Vector v, int count) {  // count <= width
    if (count == width)
      _mm512_storeu_ps(to, v);
    else
      _mm512_mask_storeu_ps(to, static_cast<Mask>((1u << count) - 1u), v);
  }
  // sum + v in the lanes of `mask`; the other lanes keep sum as it is (a -0.0 stays -0.0).
  static Vector add_masked(Mask mask, Vector sum, Vector v) { return _mm512_mask_add_ps(sum, mask, sum, v); }
  // Lanes 0, 2, ..., 30 of the 32-lane concatenation (low, high).
  static Vector even_lanes(Vector low, Vector high) {
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    return _mm512_permutex2var_ps(low, even, high);
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

}  // namespace kiln::kernels::avx512
