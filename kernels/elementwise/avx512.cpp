// The AVX-512 (16 floats a register) elementwise kernels: vectorized_elementwise.hpp instantiated with
// simd::FloatVector512, for float and for bfloat16 storage.
#include "kernels/elementwise/elementwise.hpp"
#include "kernels/elementwise/vectorized_elementwise.hpp"
#include "kernels/simd/float_vector_avx512.hpp"

namespace kiln::kernels::avx512 {

using Vector = simd::FloatVector512;

template <typename T>
void unary_forward(UnaryOp op, const UnaryParams& params, std::int64_t n, const T* x, T* y) {
  vectorized::unary_forward<Vector>(op, params, n, x, y);
}

template <typename T>
void unary_backward(UnaryOp op, const UnaryParams& params, std::int64_t n, const T* x, const T* y,
                    const T* gy, T* gx) {
  vectorized::unary_backward<Vector>(op, params, n, x, y, gy, gx);
}

template <typename T>
void binary_forward(BinaryOp op, const RowPlan& plan, const std::int64_t* sizes, const T* a,
                    const std::int64_t* a_strides, const T* b, const std::int64_t* b_strides, T* out) {
  vectorized::binary_forward<Vector>(op, plan, sizes, a, a_strides, b, b_strides, out);
}

template <typename T>
void copy_rows(const RowPlan& plan, const std::int64_t* sizes, const T* src, const std::int64_t* src_strides,
               T* dst, const std::int64_t* dst_strides) {
  vectorized::copy_rows<Vector>(plan, sizes, src, src_strides, dst, dst_strides);
}

template <typename Src, typename Dst>
void convert_rows(const RowPlan& plan, const std::int64_t* sizes, const Src* src,
                  const std::int64_t* src_strides, Dst* dst, const std::int64_t* dst_strides) {
  vectorized::convert_rows<Vector>(plan, sizes, src, src_strides, dst, dst_strides);
}

template <typename T>
void copy_strided_rows(int rank, const std::int64_t* sizes, const T* src, const std::int64_t* src_strides,
                       T* dst, const std::int64_t* dst_strides) {
  vectorized::copy_strided_rows<Vector>(rank, sizes, src, src_strides, dst, dst_strides);
}

void transpose_matrices(std::int64_t count, std::int64_t rows, std::int64_t columns, const float* src,
                        float* dst) {
  vectorized::transpose_matrices<Vector>(count, rows, columns, src, dst);
}
void transpose_matrices(std::int64_t count, std::int64_t rows, std::int64_t columns, const bfloat16* src,
                        bfloat16* dst) {
  vectorized::transpose_matrices<Vector>(count, rows, columns, src, dst);
}

template <typename T>
void fill(std::int64_t n, T value, T* out) {
  vectorized::fill<Vector>(n, value, out);
}

#define KILN_INSTANTIATE(T)                                                                                \
  template void unary_forward<T>(UnaryOp, const UnaryParams&, std::int64_t, const T*, T*);                 \
  template void unary_backward<T>(UnaryOp, const UnaryParams&, std::int64_t, const T*, const T*, const T*, \
                                  T*);                                                                     \
  template void binary_forward<T>(BinaryOp, const RowPlan&, const std::int64_t*, const T*,                 \
                                  const std::int64_t*, const T*, const std::int64_t*, T*);                 \
  template void copy_rows<T>(const RowPlan&, const std::int64_t*, const T*, const std::int64_t*, T*,       \
                             const std::int64_t*);                                                         \
  template void copy_strided_rows<T>(int, const std::int64_t*, const T*, const std::int64_t*, T*,          \
                                     const std::int64_t*);                                                 \
  template void fill<T>(std::int64_t, T, T*);
KILN_INSTANTIATE(float)
KILN_INSTANTIATE(bfloat16)
#undef KILN_INSTANTIATE
template void convert_rows<float, bfloat16>(const RowPlan&, const std::int64_t*, const float*,
                                            const std::int64_t*, bfloat16*, const std::int64_t*);
template void convert_rows<bfloat16, float>(const RowPlan&, const std::int64_t*, const bfloat16*,
                                            const std::int64_t*, float*, const std::int64_t*);

}  // namespace kiln::kernels::avx512
