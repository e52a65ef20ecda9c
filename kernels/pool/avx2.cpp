// The AVX2 (8 floats a register) pooling kernels: vectorized_pool.hpp instantiated with
// simd::FloatVector256, for float and bfloat16.
#include "kernels/pool/pool.hpp"
#include "kernels/pool/vectorized_pool.hpp"
#include "kernels/simd/float_vector_avx2.hpp"

namespace kiln::kernels::avx2 {

using Vector = simd::FloatVector256;

template <typename T>
void max_pool2d_forward(const Pool2dGeometry& g, const T* x, T* y, std::int32_t* argmax) {
  vectorized::max_pool2d_forward<Vector>(g, x, y, argmax);
}
template <typename T>
void max_pool2d_backward(const Pool2dGeometry& g, const T* gy, const std::int32_t* argmax, T* gx) {
  vectorized::max_pool2d_backward<Vector>(g, gy, argmax, gx);
}
template <typename T>
void avg_pool2d_forward(const Pool2dGeometry& g, const T* x, T* y) {
  vectorized::avg_pool2d_forward<Vector>(g, x, y);
}
template <typename T>
void avg_pool2d_backward(const Pool2dGeometry& g, const T* gy, T* gx) {
  vectorized::avg_pool2d_backward<Vector>(g, gy, gx);
}
template <typename T>
void global_avg_pool2d_forward(const GlobalPool2dGeometry& g, const T* x, T* y) {
  vectorized::global_avg_pool2d_forward<Vector>(g, x, y);
}
template <typename T>
void global_avg_pool2d_backward(const GlobalPool2dGeometry& g, const T* gy, T* gx, bool accumulate) {
  vectorized::global_avg_pool2d_backward<Vector>(g, gy, gx, accumulate);
}

#define KILN_INSTANTIATE(T)                                                                       \
  template void max_pool2d_forward<T>(const Pool2dGeometry&, const T*, T*, std::int32_t*);        \
  template void max_pool2d_backward<T>(const Pool2dGeometry&, const T*, const std::int32_t*, T*); \
  template void avg_pool2d_forward<T>(const Pool2dGeometry&, const T*, T*);                       \
  template void avg_pool2d_backward<T>(const Pool2dGeometry&, const T*, T*);                      \
  template void global_avg_pool2d_forward<T>(const GlobalPool2dGeometry&, const T*, T*);          \
  template void global_avg_pool2d_backward<T>(const GlobalPool2dGeometry&, const T*, T*, bool);
KILN_INSTANTIATE(float)
KILN_INSTANTIATE(bfloat16)
#undef KILN_INSTANTIATE

}  // namespace kiln::kernels::avx2
