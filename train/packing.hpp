// Tensors packed one after another into one page-locked buffer, each starting on its own 64-byte boundary:
// the staging buffer that carries a batch to the device (device_batches.cpp) and the landing buffer that
// brings tensors back from it (tensor_readback.cpp).
#pragma once

#include <cstddef>

namespace kiln::train {

inline constexpr std::size_t kPackAlignment = 64;

// The room a block of `bytes` takes in a pack: where the next block starts after it.
constexpr std::size_t packed_size(std::size_t bytes) {
  return (bytes + kPackAlignment - 1) / kPackAlignment * kPackAlignment;
}

}  // namespace kiln::train
