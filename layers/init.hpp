// Weight initialization: float32 tensors drawn from a seeded Generator, so the same seed builds the same
// network. `fan_in` counts the inputs of one output unit (in_features for a linear layer,
// in_channels / groups * KH * KW for a convolution); `fan_out` counts the outputs one input feeds.
#pragma once

#include <cstdint>

#include "core/generator.hpp"
#include "core/tensor.hpp"

namespace kiln::layers {

// Normal(0, std) with std = sqrt(2 / fan_in): He et al. (2015), "Delving Deep into Rectifiers". A layer
// followed by ReLU then keeps the variance of its activations from layer to layer.
Tensor kaiming_normal(const Shape& shape, std::int64_t fan_in, Generator& generator);

// Uniform(-bound, bound) with bound = sqrt(6 / fan_in): the same variance, 2 / fan_in, as kaiming_normal.
Tensor kaiming_uniform(const Shape& shape, std::int64_t fan_in, Generator& generator);

// Uniform(-bound, bound) with bound = sqrt(6 / (fan_in + fan_out)): Glorot and Bengio (2010), which
// balances the variance of the forward activations and of the backward gradients.
Tensor xavier_uniform(const Shape& shape, std::int64_t fan_in, std::int64_t fan_out, Generator& generator);

// Uniform(-bound, bound); bound >= 0.
Tensor uniform(const Shape& shape, double bound, Generator& generator);

}  // namespace kiln::layers
