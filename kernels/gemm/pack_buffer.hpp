// PackBuffer: where a CPU GEMM packs its A block and B panel (gemm_driver.hpp's float kernels, as floats;
// avx512_bf16.cpp's, as 32-bit bfloat16 pairs).
#pragma once

#include <cstddef>
#include <cstdint>
#include <new>

namespace kiln::kernels {

// A growable, 64-byte aligned buffer of T, one per calling thread and kept between calls (thread_local at
// the caller), so a model's thousands of GEMMs do not page-fault a fresh panel each time. A GEMM called
// inside another kernel's parallel region runs serially on that thread's own buffers.
template <typename T>
class PackBuffer {
 public:
  PackBuffer() = default;
  PackBuffer(const PackBuffer&) = delete;
  PackBuffer& operator=(const PackBuffer&) = delete;
  ~PackBuffer() { ::operator delete (data_, std::align_val_t{64}); }

  // Room for `count` elements; what the buffer held is not kept.
  T* reserve(std::int64_t count) {
    if (count > capacity_) {
      ::operator delete (data_, std::align_val_t{64});
      data_ =
          static_cast<T*>(::operator new (static_cast<std::size_t>(count) * sizeof(T), std::align_val_t{64}));
      capacity_ = count;
    }
    return data_;
  }

 private:
  T* data_ = nullptr;
  std::int64_t capacity_ = 0;
};

}  // namespace kiln::kernels
