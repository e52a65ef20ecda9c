// Batched matrix multiply on top of the GEMM kernel.
//
// Each operand's last two dims are handed to GEMM as they are stored when they form a row-major matrix
// (inner stride 1) or a transposed one (row stride 1): the transposes that matmul's backward takes are
// free. Anything else is made dense first. Batch dims broadcast with stride 0, so a [K, N] weight shared
// by every batch entry is never copied.
#include "core/raw.hpp"
#include "kernels/gemm/gemm.hpp"

namespace kiln::raw {
namespace {

// A matrix operand as GEMM sees it: a tensor whose last two dims are [rows, cols] with one of the
// two layouts GEMM reads, its leading dimension, and whether it is stored transposed.
struct MatrixOperand {
  Tensor tensor;
  bool transposed = false;
  std::int64_t leading = 1;
};

MatrixOperand as_gemm_operand(const Tensor& x) {
  const int rank = x.dim();
  const std::int64_t rows = x.shape()[rank - 2], cols = x.shape()[rank - 1];
  const std::int64_t row_stride = x.strides()[static_cast<std::size_t>(rank - 2)];
  const std::int64_t col_stride = x.strides()[static_cast<std::size_t>(rank - 1)];
  if ((col_stride == 1 || cols == 1) && row_stride >= std::max<std::int64_t>(cols, 1)) {
    return {x, false, row_stride};
  }
  if ((row_stride == 1 || rows == 1) && col_stride >= std::max<std::int64_t>(rows, 1)) {
    return {x, true, col_stride};
  }
  const Tensor dense = contiguous(x);
  return {dense, false, std::max<std::int64_t>(cols, 1)};
}

// Element offset of batch entry `index` (row-major over batch_shape) in x, whose batch dims broadcast
// to batch_shape.
std::int64_t batch_offset(const Tensor& x, const Shape& batch_shape, std::int64_t index) {
  const int x_batch_rank = x.dim() - 2;
  const int lead = batch_shape.rank() - x_batch_rank;
  std::int64_t offset = 0;
  for (int axis = batch_shape.rank() - 1; axis >= 0; --axis) {
    const std::int64_t coordinate = index % batch_shape[axis];
    index /= batch_shape[axis];
    const int x_axis = axis - lead;
    if (x_axis >= 0 && x.shape()[x_axis] != 1) offset += coordinate * x.strides()[static_cast<std::size_t>(x_axis)];
  }
  return offset;
}

Shape batch_dims(const Shape& shape) {
  return Shape(std::vector<std::int64_t>(shape.begin(), shape.end() - 2));
}

}  // namespace

Tensor matmul(const Tensor& a_in, const Tensor& b_in) {
  check_same_dtype_and_device("matmul", a_in, {&b_in});
  KILN_CHECK(a_in.dim() >= 1 && b_in.dim() >= 1, "matmul: operands ", a_in.describe(), " and ", b_in.describe(),
             " must have at least one dimension");
  // NumPy's rule for vectors: a [K] is a row [1, K], b [K] a column [K, 1]; the added dim is dropped after.
  const Tensor a = a_in.dim() == 1 ? make_view(a_in, {1, a_in.size(0)}, {0, a_in.strides()[0]}, a_in.offset()) : a_in;
  const Tensor b = b_in.dim() == 1 ? make_view(b_in, {b_in.size(0), 1}, {b_in.strides()[0], 0}, b_in.offset()) : b_in;
  const std::int64_t m = a.size(-2), k = a.size(-1), n = b.size(-1);
  KILN_CHECK(b.size(-2) == k, "matmul: inner dimensions differ, ", a_in.describe(), " @ ", b_in.describe());
  const Shape batch = broadcast_shapes(batch_dims(a.shape()), batch_dims(b.shape()), "matmul");

  std::vector<std::int64_t> out_dims(batch.begin(), batch.end());
  out_dims.push_back(m);
  out_dims.push_back(n);
  Tensor output = Tensor::empty(Shape(out_dims), a.dtype(), a.device());

  const MatrixOperand lhs = as_gemm_operand(a), rhs = as_gemm_operand(b);
  const kernels::GemmGeometry geometry{m, n, k, lhs.transposed, rhs.transposed, lhs.leading, rhs.leading,
                                       std::max<std::int64_t>(n, 1)};
  visit_floating(a.dtype(), "matmul", [&]<typename T>() {
    for (std::int64_t index = 0; index < batch.numel(); ++index) {
      kernels::gemm<T>(a.device(), geometry, opmath_t<T>{1},
                       lhs.tensor.template data<T>() + batch_offset(lhs.tensor, batch, index),
                       rhs.tensor.template data<T>() + batch_offset(rhs.tensor, batch, index), opmath_t<T>{0},
                       output.data<T>() + index * m * n);
    }
  });

  if (a_in.dim() == 1) out_dims.erase(out_dims.end() - 2);
  if (b_in.dim() == 1) out_dims.pop_back();
  return make_view(output, Shape(out_dims), contiguous_strides(Shape(out_dims)), 0);
}

}  // namespace kiln::raw
