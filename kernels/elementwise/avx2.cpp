// The AVX2 (8 floats a register) elementwise kernels: vectorized_elementwise.hpp instantiated with
// simd::FloatVector256.
#include "kernels/elementwise/elementwise.hpp"
#include "kernels/elementwise/vectorized_elementwise.hpp"
#include "kernels/simd/float_vector_avx2.hpp"

namespace kiln::kernels::avx2 {

using Vector = simd::FloatVector256;

void unary_forward(UnaryOp op, const UnaryParams& params, std::int64_t n, const float* x, float* y) {
  vectorized::unary_forward<Vector>(op, params, n, x, y);
}

void unary_backward(UnaryOp op, const UnaryParams& params, std::int64_t n, const float* x, const float* y,
                    const float* gy, float* gx) {
  vectorized::unary_backward<Vector>(op, params, n, x, y, gy, gx);
}

void binary_forward(BinaryOp op, const RowPlan& plan, const std::int64_t* sizes, const float* a,
                    const std::int64_t* a_strides, const float* b, const std::int64_t* b_strides,
                    float* out) {
  vectorized::binary_forward<Vector>(op, plan, sizes, a, a_strides, b, b_strides, out);
}

void copy_rows(const RowPlan& plan, const std::int64_t* sizes, const float* src,
               const std::int64_t* src_strides, float* dst, const std::int64_t* dst_strides) {
  vectorized::copy_rows<Vector>(plan, sizes, src, src_strides, dst, dst_strides);
}

void copy_strided_rows(int rank, const std::int64_t* sizes, const float* src, const std::int64_t* src_strides,
                       float* dst, const std::int64_t* dst_strides) {
  vectorized::copy_strided_rows<Vector>(rank, sizes, src, src_strides, dst, dst_strides);
}

void transpose_matrices(std::int64_t count, std::int64_t rows, std::int64_t columns, const float* src,
                        float* dst) {
  vectorized::transpose_matrices<Vector>(count, rows, columns, src, dst);
}

void fill(std::int64_t n, float value, float* out) { vectorized::fill<Vector>(n, value, out); }

}  // namespace kiln::kernels::avx2
