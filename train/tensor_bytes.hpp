// A dense tensor as a block of bytes, whatever its dtype: for the code that moves tensors between the host
// and a device as raw copies (train/device_batches.cpp, train/tensor_readback.cpp).
#pragma once

#include <cstddef>

#include "core/storage.hpp"
#include "core/tensor.hpp"

namespace kiln::train {

inline std::size_t byte_size(const Tensor& tensor) {
  return static_cast<std::size_t>(tensor.numel()) * dtype_size(tensor.dtype());
}

// The first byte of a dense tensor's elements, in the memory of its device.
inline char* first_byte(const Tensor& dense) {
  return static_cast<char*>(dense.impl().storage->data()) +
         static_cast<std::size_t>(dense.offset()) * dtype_size(dense.dtype());
}

// `bytes` rounded up to a multiple of `alignment`: where the next block starts when blocks are packed.
constexpr std::size_t round_up(std::size_t bytes, std::size_t alignment) {
  return (bytes + alignment - 1) / alignment * alignment;
}

}  // namespace kiln::train
