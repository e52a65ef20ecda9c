// How many copies of a benchmark's operands to rotate through so that each iteration reads from memory,
// not from the caches the last one filled: as in a training step, where a layer's activations were
// written a whole forward pass before its backward reads them. 768 MiB of copies is well past any L3 a
// benchmark here shares (a whole Zen 5 CCD has 32 MiB). batchnorm_bench's and conv2d_bench's cold runs.
#pragma once

#include <cstddef>

namespace kiln::bench {

inline constexpr double kColdBytes = 768.0 * (1 << 20);

// Copies of `bytes_per_copy` bytes that together exceed kColdBytes (at least 2).
inline std::size_t cold_copies(double bytes_per_copy) {
  return static_cast<std::size_t>(kColdBytes / bytes_per_copy) + 1;
}

}  // namespace kiln::bench
