#include "kernels/widened_bfloat16.hpp"

#include "core/device.hpp"
#include "kernels/elementwise/elementwise.hpp"

namespace kiln::kernels {
namespace {

template <typename Src, typename Dst>
void convert_matrix(std::int64_t rows, std::int64_t cols, const Src* from, std::int64_t from_ld, Dst* to,
                    std::int64_t to_ld) {
  const std::int64_t sizes[2] = {rows, cols}, from_strides[2] = {from_ld, 1}, to_strides[2] = {to_ld, 1};
  copy_strided<Src, Dst>(Device::cpu(), 2, sizes, from, from_strides, to, to_strides);
}

}  // namespace

CpuScratch widened(const bfloat16* values, std::int64_t rows, std::int64_t cols, std::int64_t ld) {
  CpuScratch dense = cpu_scratch(rows * cols);
  convert_matrix(rows, cols, values, ld, dense.get(), cols);
  return dense;
}

CpuScratch widened(const bfloat16* values, std::int64_t count) { return widened(values, 1, count, count); }

void round_into(const float* wide, std::int64_t rows, std::int64_t cols, bfloat16* out, std::int64_t ld) {
  convert_matrix(rows, cols, wide, cols, out, ld);
}

void round_into(const float* wide, std::int64_t count, bfloat16* out) { round_into(wide, 1, count, out, count); }

}  // namespace kiln::kernels
