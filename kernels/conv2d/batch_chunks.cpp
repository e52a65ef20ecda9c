#include "kernels/conv2d/batch_chunks.hpp"

namespace kiln::kernels::batch_chunks {

Chunking chunk_batch(std::int64_t batch, std::int64_t columns_per_image, std::int64_t target_columns,
                     std::int64_t floats_per_image, std::int64_t max_chunk_floats) {
  std::int64_t images =
      std::max<std::int64_t>(1, target_columns / std::max<std::int64_t>(1, columns_per_image));
  images = std::min(
      images, std::max<std::int64_t>(1, max_chunk_floats / std::max<std::int64_t>(1, floats_per_image)));
  images = std::min(images, std::max<std::int64_t>(1, batch));
  return {images, (batch + images - 1) / images};
}

Chunking balanced(Chunking chunking, std::int64_t batch, int threads) {
  if (threads <= 1 || batch <= 1) return chunking;
  const std::int64_t per_round = threads * chunking.images_per_chunk;
  const std::int64_t rounds = (batch + per_round - 1) / per_round;
  const std::int64_t images = std::max<std::int64_t>(1, (batch + rounds * threads - 1) / (rounds * threads));
  return {images, (batch + images - 1) / images};
}

void add_chunk_sums(const float* partials, std::int64_t stride, std::int64_t first, std::int64_t end,
                    std::int64_t n, float* __restrict out) {
  for (std::int64_t chunk = first; chunk < end; ++chunk) {
    const float* __restrict part = partials + (chunk - first) * stride;
    if (chunk == 0) {
      std::copy(part, part + n, out);
    } else {
      for (std::int64_t i = 0; i < n; ++i) out[i] += part[i];
    }
  }
}

}  // namespace kiln::kernels::batch_chunks
