// A synthetic two-class image problem that needs a convolution to solve: class 0 images hold horizontal
// stripes, class 1 images vertical stripes, each with a random period, phase and contrast plus Gaussian
// noise. Every pixel has the same mean in both classes, so no per-pixel or colour statistic separates
// them: only the local orientation does. Used by the toy example and by the test that trains a net
// end to end through the tape.
#pragma once

#include <cstdint>

#include "core/generator.hpp"
#include "core/tensor.hpp"

namespace kiln::data {

struct LabeledImages {
  Tensor images;  // float32 [N, channels, size, size]
  Tensor labels;  // int64 [N], 0 = horizontal stripes, 1 = vertical
};

LabeledImages make_stripes(std::int64_t count, std::int64_t channels, std::int64_t size, Generator& generator,
                           double noise = 0.3);

}  // namespace kiln::data
