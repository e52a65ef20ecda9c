// The weight gradients' sum over chunks of the batch (kernels/conv2d/batch_chunks.hpp's sum_over_chunks):
// every element adds its chunk sums in chunk order, ((g0 + g1) + g2) + ..., whatever the thread count, the
// combining pass's blocks and the rounds a large gradient's partial sums go in. The chunk sums here are
// chosen so that any other order of the adds gives other bits.
#include <doctest/doctest.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "kernels/conv2d/batch_chunks.hpp"
#include "kernels/parallel.hpp"

namespace kernels_conv2d_batch_chunks_test {

using namespace kiln;
using kernels::batch_chunks::sum_over_chunks;

namespace {

// Chunk c's sum for element i: a large first chunk (1e8 and up, floats 8 apart there) and small later ones,
// each under half of that spacing: added in chunk order every small one rounds away, (1e8 + 1) = 1e8, while
// any order that adds small ones together first reaches the spacing and changes the result.
float chunk_value(std::int64_t chunk, std::int64_t i) {
  if (chunk == 0) return 1e8f + 8.0f * static_cast<float>(i % 16);
  return (chunk % 2 ? 1.0f : 0.75f) + 0.125f * static_cast<float>(i % 4);
}

std::vector<float> in_chunk_order(std::int64_t chunks, std::int64_t size) {
  std::vector<float> expected(static_cast<std::size_t>(size));
  for (std::int64_t i = 0; i < size; ++i) {
    float total = chunk_value(0, i);
    for (std::int64_t chunk = 1; chunk < chunks; ++chunk) total = total + chunk_value(chunk, i);
    expected[static_cast<std::size_t>(i)] = total;
  }
  return expected;
}

std::vector<float> summed(std::int64_t chunks, std::int64_t size) {
  std::vector<float> gradient(static_cast<std::size_t>(size), -7.0f);  // overwritten, never added to
  sum_over_chunks(chunks, size, 16, gradient.data(), [&](std::int64_t chunk, float* scratch, float* out) {
    scratch[0] = 0.0f;  // the chunk's own scratch is writable
    for (std::int64_t i = 0; i < size; ++i) out[i] = chunk_value(chunk, i);
  });
  return gradient;
}

bool same_bits(const std::vector<float>& a, const std::vector<float>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

}  // namespace

TEST_CASE("conv2d batch chunks: chunk sums are added in chunk order, the same bits on 1 and 2 threads") {
  const int threads_before = kernels::compute_threads();
  // One chunk (written straight into the gradient); blocks of the combining pass, the last one short; a
  // gradient too large for every chunk's partial sums at once, combined in rounds of two chunks.
  const std::int64_t in_rounds = kernels::batch_chunks::kMaxPartialFloats / 3 + 1;
  const std::int64_t cases[][2] = {
      {1, 100}, {2, 5}, {7, 2 * kernels::batch_chunks::kCombineBlockFloats + 37}, {5, in_rounds}};
  for (const auto& [chunks, size] : cases) {
    const std::vector<float> expected = in_chunk_order(chunks, size);
    for (const int threads : {1, 2}) {
      kernels::set_compute_threads(threads);
      CHECK_MESSAGE(same_bits(summed(chunks, size), expected), chunks, " chunks of ", size, " floats on ",
                    threads, " threads");
    }
  }
  kernels::set_compute_threads(threads_before);
}

}  // namespace kernels_conv2d_batch_chunks_test
