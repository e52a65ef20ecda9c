// StridedWalk: visits every index of an N-d index space in row-major order, keeping one flat element
// offset per operand, so a kernel can read and write strided (and broadcast, stride 0) operands without
// ever computing `index . strides` from scratch.
//
// It is an odometer: the last dimension turns fastest; when a dimension reaches its size it rolls back to
// 0 and carries into the dimension before it. Each operand's offset moves along with the digits, by +stride
// when a digit advances and by -stride * (size - 1) when it rolls back.
//
//   const std::int64_t count = index_space_size(rank, sizes);
//   StridedWalk<2> walk(rank, sizes, {src_strides, dst_strides});
//   for (std::int64_t i = 0; i < count; ++i, walk.advance()) dst[walk.offset(1)] = src[walk.offset(0)];
//
// Rank 0 is a single element (both offsets stay 0); a size of 0 anywhere makes count 0.
#pragma once

#include <array>
#include <cstdint>

#include "kernels/elementwise/elementwise.hpp"

namespace kiln::kernels {

// The number of indices in sizes[rank]: their product (1 for rank 0).
inline std::int64_t index_space_size(int rank, const std::int64_t* sizes) {
  std::int64_t count = 1;
  for (int d = 0; d < rank; ++d) count *= sizes[d];
  return count;
}

template <int Operands>
class StridedWalk {
 public:
  // strides[k] points at operand k's element strides, rank of them. The walk starts at index 0.
  StridedWalk(int rank, const std::int64_t* sizes, const std::array<const std::int64_t*, Operands>& strides)
      : rank_(rank), sizes_(sizes), strides_(strides) {}

  // Operand k's element offset for the current index: index . strides[k].
  std::int64_t offset(int operand) const { return offsets_[operand]; }

  // Steps to the next index in row-major order. After the last index it wraps back to index 0.
  void advance() {
    for (int d = rank_ - 1; d >= 0; --d) {
      ++digits_[d];
      if (digits_[d] < sizes_[d]) {
        for (int k = 0; k < Operands; ++k) offsets_[k] += strides_[k][d];
        return;
      }
      // This digit rolls over: back to 0, and carry into dimension d - 1.
      digits_[d] = 0;
      for (int k = 0; k < Operands; ++k) offsets_[k] -= strides_[k][d] * (sizes_[d] - 1);
    }
  }

 private:
  int rank_;
  const std::int64_t* sizes_;
  std::array<const std::int64_t*, Operands> strides_;
  std::array<std::int64_t, kMaxRank> digits_{};   // the current index, one digit per dimension
  std::array<std::int64_t, Operands> offsets_{};  // digits_ . strides_[k] for each operand k
};

}  // namespace kiln::kernels
