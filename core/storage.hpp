// Storage: a reference-counted, 64-byte-aligned block of bytes on one device.
//
// Tensors are views (shape, strides, offset) over a Storage; several views may share one. 64-byte
// alignment lets AVX-512 kernels use aligned loads on a tensor's first element and keeps rows of
// different threads off each other's cache lines.
//
// Allocation goes through the Allocator of the storage's device: on the CPU a CachingAllocator
// (caching_allocator.hpp) over posix_memalign (huge-page aligned, and advised, from 2 MiB: storage.cpp); on
// a CUDA device the same cache over cudaMalloc.
#pragma once

#include <cstddef>
#include <memory>

#include "core/device.hpp"

namespace kiln {

inline constexpr std::size_t kStorageAlignment = 64;

class Allocator {
 public:
  virtual ~Allocator() = default;
  virtual void* allocate(std::size_t bytes) = 0;
  virtual void deallocate(void* pointer, std::size_t bytes) = 0;
};

// The allocator that serves `device`; throws for a device kiln has no backend for.
Allocator& allocator_for(Device device);

class CachingAllocator;
// The CPU's allocator, with its statistics (bytes in use, peak, cached).
CachingAllocator& cpu_caching_allocator();
// cuda:index's allocator (cudaMalloc behind a cache), with the same statistics: peak_in_use_bytes is the
// device memory a run needed. Throws on first use when the build has no CUDA.
CachingAllocator& cuda_caching_allocator(int index);

class Storage {
 public:
  // Uninitialized bytes; zero bytes is allowed (an empty tensor).
  static std::shared_ptr<Storage> allocate(std::size_t bytes, Device device);

  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;
  ~Storage();

  void* data() const { return data_; }
  std::size_t bytes() const { return bytes_; }
  Device device() const { return device_; }

 private:
  Storage(void* data, std::size_t bytes, Device device) : data_(data), bytes_(bytes), device_(device) {}
  void* data_;
  std::size_t bytes_;
  Device device_;
};

}  // namespace kiln
