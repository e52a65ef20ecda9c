#include "data/synthetic_stripes.hpp"

#include <cmath>
#include <numbers>

namespace kiln::data {

LabeledImages make_stripes(std::int64_t count, std::int64_t channels, std::int64_t size, Generator& generator,
                           double noise) {
  KILN_CHECK(count > 0 && channels > 0 && size > 1,
             "make_stripes: count, channels and size must be positive");
  // Per image: class coin, period in [2, 4), phase in [0, 2 pi), contrast in [0.5, 1.5).
  const std::vector<float> draws = Tensor::rand({count, 4}, DType::Float32, &generator).to_vector<float>();
  Tensor images = Tensor::randn({count, channels, size, size}, DType::Float32, &generator, 0.0, noise);
  Tensor labels = Tensor::empty({count}, DType::Int64);
  float* pixels = images.data<float>();
  std::int64_t* label = labels.data<std::int64_t>();
  for (std::int64_t n = 0; n < count; ++n) {
    const float* d = &draws[static_cast<std::size_t>(n * 4)];
    label[n] = d[0] < 0.5f ? 0 : 1;
    const double period = 2.0 + 2.0 * d[1], phase = 2.0 * std::numbers::pi * d[2], contrast = 0.5 + d[3];
    for (std::int64_t c = 0; c < channels; ++c) {
      for (std::int64_t row = 0; row < size; ++row) {
        for (std::int64_t col = 0; col < size; ++col) {
          const double along = static_cast<double>(label[n] == 0 ? row : col);
          pixels[((n * channels + c) * size + row) * size + col] +=
              static_cast<float>(contrast * std::sin(2.0 * std::numbers::pi * along / period + phase));
        }
      }
    }
  }
  return {images, labels};
}

}  // namespace kiln::data
