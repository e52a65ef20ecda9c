#include "layers/init.hpp"

#include <cmath>

#include "core/error.hpp"

namespace kiln::layers {

Tensor kaiming_normal(const Shape& shape, std::int64_t fan_in, Generator& generator) {
  KILN_CHECK(fan_in > 0, "kaiming_normal: fan_in ", fan_in, " for shape ", shape, " must be positive");
  const double std = std::sqrt(2.0 / static_cast<double>(fan_in));
  return Tensor::randn(shape, DType::Float32, &generator, 0.0, std);
}

Tensor kaiming_uniform(const Shape& shape, std::int64_t fan_in, Generator& generator) {
  KILN_CHECK(fan_in > 0, "kaiming_uniform: fan_in ", fan_in, " for shape ", shape, " must be positive");
  return uniform(shape, std::sqrt(6.0 / static_cast<double>(fan_in)), generator);
}

Tensor xavier_uniform(const Shape& shape, std::int64_t fan_in, std::int64_t fan_out, Generator& generator) {
  KILN_CHECK(fan_in > 0 && fan_out > 0, "xavier_uniform: fan_in ", fan_in, " and fan_out ", fan_out,
             " for shape ", shape, " must be positive");
  return uniform(shape, std::sqrt(6.0 / static_cast<double>(fan_in + fan_out)), generator);
}

Tensor uniform(const Shape& shape, double bound, Generator& generator) {
  KILN_CHECK(std::isfinite(bound) && bound >= 0.0, "uniform: bound ", bound, " for shape ", shape,
             " must be finite and non-negative");
  return Tensor::rand(shape, DType::Float32, &generator, -bound, bound);
}

}  // namespace kiln::layers
