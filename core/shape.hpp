// Shape: the sizes of a tensor's dimensions, outermost first. A rank-0 shape is a scalar (one element).
// Strides count elements (not bytes) between neighbours along each dimension.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

namespace kiln {

using Strides = std::vector<std::int64_t>;

class Shape {
 public:
  Shape() = default;
  Shape(std::initializer_list<std::int64_t> dims) : dims_(dims) {}
  explicit Shape(std::vector<std::int64_t> dims) : dims_(std::move(dims)) {}

  int rank() const { return static_cast<int>(dims_.size()); }
  std::int64_t operator[](int axis) const { return dims_[static_cast<std::size_t>(axis)]; }
  std::int64_t& operator[](int axis) { return dims_[static_cast<std::size_t>(axis)]; }
  std::int64_t numel() const;
  const std::vector<std::int64_t>& dims() const { return dims_; }
  auto begin() const { return dims_.begin(); }
  auto end() const { return dims_.end(); }

  std::string str() const;  // "[2, 3, 4]"
  friend bool operator==(const Shape&, const Shape&) = default;

 private:
  std::vector<std::int64_t> dims_;
};

std::ostream& operator<<(std::ostream& out, const Shape& shape);

// Row-major strides of a dense tensor of this shape.
Strides contiguous_strides(const Shape& shape);

// The shape two operands broadcast to (NumPy rules: align from the right; sizes must match or be 1).
// Throws naming `op` and both shapes when they do not broadcast.
Shape broadcast_shapes(const Shape& a, const Shape& b, std::string_view op);

// An axis in [-rank, rank) as an index in [0, rank); throws naming `op` when out of range.
int normalize_axis(int axis, int rank, std::string_view op);

// Every axis when `axes` is empty, else each normalized, sorted and unique.
std::vector<int> normalize_axes(const std::vector<int>& axes, int rank, std::string_view op);

}  // namespace kiln
