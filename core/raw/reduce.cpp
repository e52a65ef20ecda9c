// Tensor-level calls of the reduction kernels. The kernel reduces the middle axis of a dense
// [outer, reduced, inner] view; this file brings any set of axes into that form.
#include <algorithm>

#include "core/raw.hpp"

namespace kiln::raw {
namespace {

// Product of shape[begin, end).
std::int64_t extent(const Shape& shape, int begin, int end) {
  std::int64_t product = 1;
  for (int axis = begin; axis < end; ++axis) product *= shape[axis];
  return product;
}

// x as a dense tensor whose reduced axes form one contiguous run, with the geometry of that run.
// When the axes are already adjacent in a dense x, no copy is made; otherwise the reduced axes are
// permuted to the end and the result made dense.
std::pair<Tensor, kernels::ReduceGeometry> as_middle_axis(const Tensor& x, const std::vector<int>& axes) {
  const bool adjacent = axes.empty() || axes.back() - axes.front() + 1 == static_cast<int>(axes.size());
  if (adjacent && x.is_contiguous()) {
    const int first = axes.empty() ? 0 : axes.front();
    const int last = axes.empty() ? 0 : axes.back() + 1;
    return {x, {extent(x.shape(), 0, first), extent(x.shape(), first, last), extent(x.shape(), last, x.dim())}};
  }
  std::vector<int> order;  // kept axes first, then the reduced ones
  std::int64_t kept = 1, reduced = 1;
  for (int axis = 0; axis < x.dim(); ++axis) {
    if (!std::binary_search(axes.begin(), axes.end(), axis)) {
      order.push_back(axis);
      kept *= x.shape()[axis];
    }
  }
  for (int axis : axes) {
    order.push_back(axis);
    reduced *= x.shape()[axis];
  }
  std::vector<std::int64_t> dims;
  Strides strides;
  for (int axis : order) {
    dims.push_back(x.shape()[axis]);
    strides.push_back(x.strides()[static_cast<std::size_t>(axis)]);
  }
  const Tensor permuted = contiguous(make_view(x, Shape(std::move(dims)), std::move(strides), x.offset()));
  return {permuted, {kept, reduced, 1}};
}

}  // namespace

Shape reduced_shape(const Shape& x, const std::vector<int>& axes, bool keepdim, std::string_view op) {
  const std::vector<int> normalized = normalize_axes(axes, x.rank(), op);
  std::vector<std::int64_t> dims;
  for (int axis = 0; axis < x.rank(); ++axis) {
    const bool reduced = std::binary_search(normalized.begin(), normalized.end(), axis);
    if (!reduced) {
      dims.push_back(x[axis]);
    } else if (keepdim) {
      dims.push_back(1);
    }
  }
  return Shape(std::move(dims));
}

Tensor reduce(kernels::ReduceOp op, const Tensor& x, const std::vector<int>& axes, bool keepdim) {
  const char* name = op == kernels::ReduceOp::Sum ? "sum" : op == kernels::ReduceOp::Max ? "max" : "min";
  const std::vector<int> normalized = normalize_axes(axes, x.dim(), name);
  auto [dense, geometry] = as_middle_axis(x, normalized);
  KILN_CHECK(op == kernels::ReduceOp::Sum || geometry.reduced > 0 || geometry.outer * geometry.inner == 0, name,
             ": cannot reduce ", x.describe(), " over an empty axis");
  Tensor output = Tensor::empty(reduced_shape(x.shape(), normalized, keepdim, name), x.dtype(), x.device());
  visit_floating(x.dtype(), name, [&]<typename T>() {
    kernels::reduce<T>(x.device(), op, geometry, dense.template data<T>(), output.data<T>());
  });
  return output;
}

Tensor argmax(const Tensor& x, int axis, bool keepdim) {
  const int normalized = normalize_axis(axis, x.dim(), "argmax");
  auto [dense, geometry] = as_middle_axis(x, {normalized});
  KILN_CHECK(geometry.reduced > 0, "argmax: axis ", axis, " of ", x.describe(), " is empty");
  Tensor output = Tensor::empty(reduced_shape(x.shape(), {normalized}, keepdim, "argmax"), DType::Int64, x.device());
  visit_floating(x.dtype(), "argmax", [&]<typename T>() {
    kernels::argmax<T>(x.device(), geometry, dense.template data<T>(), output.data<std::int64_t>());
  });
  return output;
}

Tensor sum_to(const Tensor& x, const Shape& shape) {
  if (x.shape() == shape) return x;
  const int lead = x.dim() - shape.rank();
  KILN_CHECK(lead >= 0, "sum_to: cannot sum ", x.describe(), " to the larger shape ", shape);
  std::vector<int> axes;
  for (int axis = 0; axis < x.dim(); ++axis) {
    if (axis < lead || (shape[axis - lead] == 1 && x.shape()[axis] != 1)) axes.push_back(axis);
  }
  const Tensor summed = axes.empty() ? contiguous(x) : reduce(kernels::ReduceOp::Sum, x, axes, true);
  KILN_CHECK(summed.numel() == shape.numel(), "sum_to: ", x.describe(), " does not broadcast from ", shape);
  return make_view(summed, shape, contiguous_strides(shape), summed.offset());
}

}  // namespace kiln::raw
