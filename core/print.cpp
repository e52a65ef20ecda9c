// Readable printing in PyTorch's manner:
//   tensor([[ 1.0000, -2.5000],
//           [ 0.1250,  4.0000]], shape=[2, 2], dtype=float32)
// Large tensors show their first and last three entries of each dimension around "...".
#include <cmath>
#include <iomanip>
#include <sstream>

#include "core/tensor.hpp"

namespace kiln {
namespace {

constexpr std::int64_t kEdgeItems = 3;
constexpr std::int64_t kSummarizeAbove = 1000;

struct Printer {
  const std::vector<double>& values;
  const Shape& shape;
  bool integral;
  bool summarize;
  int width;

  std::string format(double value) const {
    std::ostringstream out;
    if (integral) {
      out << static_cast<std::int64_t>(value);
    } else if (std::isfinite(value) && (value == 0.0 || (std::fabs(value) >= 1e-4 && std::fabs(value) < 1e8))) {
      out << std::fixed << std::setprecision(4) << value;
    } else {
      out << std::scientific << std::setprecision(4) << value;
    }
    return out.str();
  }

  // Prints the sub-tensor at `axis` whose first element is values[base]; `indent` aligns nested rows.
  void print(std::ostream& out, int axis, std::int64_t base, std::int64_t stride, int indent) const {
    const std::int64_t size = shape[axis];
    const std::int64_t inner = stride / std::max<std::int64_t>(size, 1);
    out << '[';
    for (std::int64_t i = 0; i < size; ++i) {
      if (summarize && size > 2 * kEdgeItems && i == kEdgeItems) {
        out << (axis + 1 == shape.rank() ? "..., " : "...,\n" + std::string(static_cast<std::size_t>(indent + 1), ' '));
        i = size - kEdgeItems;
      }
      if (axis + 1 == shape.rank()) {
        out << std::setw(width) << format(values[static_cast<std::size_t>(base + i)]);
      } else {
        print(out, axis + 1, base + i * inner, inner, indent + 1);
      }
      if (i + 1 < size) {
        out << (axis + 1 == shape.rank() ? ", " : ",\n" + std::string(static_cast<std::size_t>(indent + 1), ' '));
      }
    }
    out << ']';
  }
};

}  // namespace

std::ostream& operator<<(std::ostream& out, const Tensor& tensor) {
  if (!tensor.defined()) return out << "tensor(undefined)";
  const std::vector<double> values = tensor.to_vector<double>();
  Printer printer{values, tensor.shape(), !is_floating(tensor.dtype()), tensor.numel() > kSummarizeAbove, 0};
  for (double value : values) printer.width = std::max(printer.width, static_cast<int>(printer.format(value).size()));
  out << "tensor(";
  if (tensor.dim() == 0) {
    out << printer.format(values[0]);
  } else {
    printer.print(out, 0, 0, tensor.numel(), 7);
  }
  out << ", shape=" << tensor.shape() << ", dtype=" << dtype_name(tensor.dtype());
  if (!tensor.device().is_cpu()) out << ", device=" << tensor.device().str();
  if (tensor.requires_grad()) out << ", requires_grad";
  return out << ')';
}

std::string to_string(const Tensor& tensor) {
  std::ostringstream out;
  out << tensor;
  return out.str();
}

}  // namespace kiln
