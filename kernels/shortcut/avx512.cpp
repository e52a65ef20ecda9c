// The AVX512 (16 floats a register) shortcut kernels: vectorized_subsample_pad.hpp instantiated with
// simd::FloatVector512.
#include "kernels/shortcut/vectorized_subsample_pad.hpp"
#include "kernels/simd/float_vector_avx512.hpp"

namespace kiln::kernels::avx512 {

template <typename T>
void subsample_pad_forward(const SubsamplePadGeometry& g, const T* x, T* y) {
  vectorized::subsample_pad_forward<simd::FloatVector512>(g, x, y);
}
template <typename T>
void subsample_pad_backward(const SubsamplePadGeometry& g, const T* gy, T* gx, bool accumulate) {
  vectorized::subsample_pad_backward<simd::FloatVector512>(g, gy, gx, accumulate);
}

template void subsample_pad_forward<float>(const SubsamplePadGeometry&, const float*, float*);
template void subsample_pad_forward<bfloat16>(const SubsamplePadGeometry&, const bfloat16*, bfloat16*);
template void subsample_pad_backward<float>(const SubsamplePadGeometry&, const float*, float*, bool);
template void subsample_pad_backward<bfloat16>(const SubsamplePadGeometry&, const bfloat16*, bfloat16*, bool);

}  // namespace kiln::kernels::avx512
