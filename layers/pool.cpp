#include "layers/pool.hpp"

#include <sstream>

namespace kiln::layers {
namespace {

// The stride {0, 0} stands for "equal to the kernel"; resolve it so a description shows real numbers.
Pool2dOptions with_resolved_stride(Pool2dOptions options, const char* layer) {
  KILN_CHECK(options.kernel[0] > 0 && options.kernel[1] > 0, layer, ": kernel ", options.kernel[0], "x",
             options.kernel[1], " must be positive");
  if (options.stride[0] == 0 && options.stride[1] == 0) options.stride = options.kernel;
  KILN_CHECK(options.stride[0] > 0 && options.stride[1] > 0, layer, ": stride ", options.stride[0], "x",
             options.stride[1], " must be positive (or 0x0 for the kernel size)");
  KILN_CHECK(options.padding[0] >= 0 && options.padding[1] >= 0, layer, ": padding ", options.padding[0], "x",
             options.padding[1], " must be non-negative");
  return options;
}

// "kernel=2x2, stride=2x2, padding=0x0", plus the flags that differ from their defaults.
std::string describe_pool(const char* layer, const Pool2dOptions& options, bool is_average) {
  std::ostringstream out;
  out << layer << "(kernel=" << options.kernel[0] << "x" << options.kernel[1]
      << ", stride=" << options.stride[0] << "x" << options.stride[1] << ", padding=" << options.padding[0]
      << "x" << options.padding[1];
  if (options.ceil_mode) out << ", ceil_mode=true";
  if (is_average && !options.count_include_pad) out << ", count_include_pad=false";
  out << ")";
  return out.str();
}

}  // namespace

MaxPool2d::MaxPool2d(Pool2dOptions options) : options_(with_resolved_stride(options, "MaxPool2d")) {}

Tensor MaxPool2d::forward(const Tensor& input) { return max_pool2d(input, options_); }

std::string MaxPool2d::describe() const { return describe_pool("MaxPool2d", options_, false); }

AvgPool2d::AvgPool2d(Pool2dOptions options) : options_(with_resolved_stride(options, "AvgPool2d")) {}

Tensor AvgPool2d::forward(const Tensor& input) { return avg_pool2d(input, options_); }

std::string AvgPool2d::describe() const { return describe_pool("AvgPool2d", options_, true); }

Tensor GlobalAvgPool2d::forward(const Tensor& input) { return global_avg_pool2d(input); }

}  // namespace kiln::layers
