#include "core/shape.hpp"

#include <algorithm>
#include <sstream>

#include "core/error.hpp"

namespace kiln {

std::int64_t Shape::numel() const {
  std::int64_t count = 1;
  for (std::int64_t size : dims_) count *= size;
  return count;
}

std::string Shape::str() const {
  std::ostringstream out;
  out << '[';
  for (std::size_t i = 0; i < dims_.size(); ++i) out << (i ? ", " : "") << dims_[i];
  out << ']';
  return out.str();
}

std::ostream& operator<<(std::ostream& out, const Shape& shape) { return out << shape.str(); }

Strides contiguous_strides(const Shape& shape) {
  Strides strides(static_cast<std::size_t>(shape.rank()));
  std::int64_t stride = 1;
  for (int axis = shape.rank() - 1; axis >= 0; --axis) {
    strides[static_cast<std::size_t>(axis)] = stride;
    stride *= shape[axis];
  }
  return strides;
}

Shape broadcast_shapes(const Shape& a, const Shape& b, std::string_view op) {
  const int rank = std::max(a.rank(), b.rank());
  std::vector<std::int64_t> dims(static_cast<std::size_t>(rank));
  for (int i = 0; i < rank; ++i) {
    const int axis_a = a.rank() - rank + i, axis_b = b.rank() - rank + i;
    const std::int64_t size_a = axis_a >= 0 ? a[axis_a] : 1;
    const std::int64_t size_b = axis_b >= 0 ? b[axis_b] : 1;
    KILN_CHECK(size_a == size_b || size_a == 1 || size_b == 1, op, ": shapes ", a, " and ", b,
               " do not broadcast (dimension ", i, " is ", size_a, " vs ", size_b, ")");
    dims[static_cast<std::size_t>(i)] = size_a == 1 ? size_b : size_a;
  }
  return Shape(std::move(dims));
}

int normalize_axis(int axis, int rank, std::string_view op) {
  KILN_CHECK(axis >= -rank && axis < rank, op, ": axis ", axis, " is out of range for a tensor of rank ", rank);
  return axis < 0 ? axis + rank : axis;
}

std::vector<int> normalize_axes(const std::vector<int>& axes, int rank, std::string_view op) {
  std::vector<int> result;
  if (axes.empty()) {
    for (int axis = 0; axis < rank; ++axis) result.push_back(axis);
    return result;
  }
  for (int axis : axes) result.push_back(normalize_axis(axis, rank, op));
  std::sort(result.begin(), result.end());
  KILN_CHECK(std::adjacent_find(result.begin(), result.end()) == result.end(), op,
             ": an axis is named twice");
  return result;
}

}  // namespace kiln
