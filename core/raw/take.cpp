// Tensor-level call of the take kernel (raw.hpp: indexing).
#include "kernels/take/take.hpp"

#include "core/raw.hpp"

namespace kiln::raw {

Tensor take(const Tensor& table, const Tensor& indices) {
  KILN_CHECK(table.dim() == 1, "take: the table must be 1-d, got ", table.describe());
  KILN_CHECK(indices.dtype() == DType::Int64, "take: indices must be int64, got ", indices.describe());
  KILN_CHECK(indices.device() == table.device(), "take: indices on ", indices.device().str(),
             " but the table on ", table.device().str());
  const std::int64_t size = table.size(0);
  // Indices on the CPU are checked, naming the first bad one; indices on a GPU are not read back (the
  // kernel gives NaN for a bad one), so taking never makes the host wait for the device.
  if (indices.device().is_cpu()) {
    for (const std::int64_t index : indices.to_vector<std::int64_t>())
      KILN_CHECK(index >= 0 && index < size, "take: index ", index, " is outside [0, ", size, ")");
  }
  const Tensor dense_table = contiguous(table), dense_indices = contiguous(indices);
  Tensor taken = Tensor::empty(indices.shape(), table.dtype(), table.device());
  visit_float_or_double(table.dtype(), "take", [&]<typename T>() {
    kernels::take<T>(table.device(), indices.numel(), dense_table.data<T>(), size,
                     dense_indices.data<std::int64_t>(), taken.data<T>());
  });
  return taken;
}

}  // namespace kiln::raw
