// Small helpers shared by the layers/ tests: a tensor's values, a module's tensor names, a sample's
// mean and standard deviation.
#pragma once

#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.hpp"

namespace kiln::layers::testing {

inline std::vector<double> values(const Tensor& tensor) { return tensor.to_vector<double>(); }

inline std::vector<std::string> names(const std::vector<NamedTensor>& tensors) {
  std::vector<std::string> out;
  for (const auto& [name, tensor] : tensors) out.push_back(name);
  return out;
}

struct SampleMoments {
  double mean, std;  // std with the 1/n (population) normalization
};

inline SampleMoments moments(const Tensor& tensor) {
  const std::vector<double> xs = values(tensor);
  double sum = 0.0, sum_of_squares = 0.0;
  for (double x : xs) sum += x;
  const double mean = sum / static_cast<double>(xs.size());
  for (double x : xs) sum_of_squares += (x - mean) * (x - mean);
  return {mean, std::sqrt(sum_of_squares / static_cast<double>(xs.size()))};
}

// The largest |a[i] - b[i]| (infinity when the sizes differ).
inline double max_abs_difference(const Tensor& a, const Tensor& b) {
  const std::vector<double> xs = values(a), ys = values(b);
  if (xs.size() != ys.size()) return INFINITY;
  double largest = 0.0;
  for (std::size_t i = 0; i < xs.size(); ++i) largest = std::max(largest, std::abs(xs[i] - ys[i]));
  return largest;
}

}  // namespace kiln::layers::testing
