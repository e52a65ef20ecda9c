// Benchmark buffers aligned as kiln's tensors are (core/storage.hpp: kStorageAlignment, 64 bytes, a cache
// line), so a kernel timed here meets the alignment it meets in training.
//
// std::vector<float> gets malloc's 16 bytes, and a large one sits 16 bytes past a page boundary: there every
// 64-byte load and store of the AVX-512 kernels straddles two cache lines, where half of AVX2's 32-byte ones
// do. That made batch norm look slower at AVX-512 than at AVX2 on Zen 5 (batchnorm_bench, [128, 16, 32, 32],
// 1 thread, forward train 432 vs 376 us, backward 796 vs 679), a cost training never pays.
#pragma once

#include <cstddef>
#include <new>
#include <vector>

#include "core/storage.hpp"

namespace kiln::bench {

template <typename T>
struct StorageAlignedAllocator {
  using value_type = T;
  StorageAlignedAllocator() = default;
  template <typename U>
  StorageAlignedAllocator(const StorageAlignedAllocator<U>&) {}

  T* allocate(std::size_t count) {
    return static_cast<T*>(::operator new (count * sizeof(T), std::align_val_t{kStorageAlignment}));
  }
  void deallocate(T* pointer, std::size_t) {
    ::operator delete (pointer, std::align_val_t{kStorageAlignment});
  }

  template <typename U>
  bool operator==(const StorageAlignedAllocator<U>&) const {
    return true;
  }
};

using AlignedFloats = std::vector<float, StorageAlignedAllocator<float>>;

}  // namespace kiln::bench
