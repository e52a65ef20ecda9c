// Buffers for the emulated kernels' operands that make a stray access loud: each ends flush against a page
// with no access (and starts one page after another), inputs are read-only, so a read or write past either
// end, or a write to an input, faults at once instead of reading garbage quietly; the few bytes that 16-byte
// alignment leaves between the data and the guard are checked for stray writes after the launch.
#pragma once

#include <doctest/doctest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstring>
#include <vector>

#include "tests/emulation/cuda_emulator.hpp"

namespace kiln::testing {

// `count` elements of T that end flush against a page with no access, start on 16 bytes (as cudaMalloc's
// do), and have a page with no access before the page they start in. Registered with the emulator as device
// memory while it lives.
template <typename T>
class GuardedBuffer {
 public:
  GuardedBuffer(const std::vector<T>& values, bool read_only) : count_(values.size()) {
    const std::size_t page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
    const std::size_t bytes = count_ * sizeof(T), padded = (bytes + 15) / 16 * 16;
    data_pages_ = (padded + page - 1) / page * page;
    mapping_bytes_ = data_pages_ + 2 * page;
    void* p = mmap(nullptr, mapping_bytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    REQUIRE(p != MAP_FAILED);
    base_ = static_cast<unsigned char*>(p);
    page_ = page;
    std::memset(base_ + page, kCanary, data_pages_);
    data_ = reinterpret_cast<T*>(base_ + page + data_pages_ - padded);
    if (count_ > 0) std::memcpy(static_cast<void*>(data_), values.data(), bytes);
    REQUIRE(mprotect(base_, page, PROT_NONE) == 0);
    REQUIRE(mprotect(base_ + page + data_pages_, page, PROT_NONE) == 0);
    if (read_only) REQUIRE(mprotect(base_ + page, data_pages_, PROT_READ) == 0);
    emulation::register_device_buffer(data_, bytes);
  }
  ~GuardedBuffer() {
    emulation::unregister_device_buffer(data_);
    munmap(base_, mapping_bytes_);
  }
  GuardedBuffer(const GuardedBuffer&) = delete;
  GuardedBuffer& operator=(const GuardedBuffer&) = delete;

  T* data() const { return data_; }
  std::vector<T> values() const { return std::vector<T>(data_, data_ + count_); }
  // Whether the bytes of the data pages outside the data still hold the canary: nothing wrote there.
  bool margins_intact() const {
    const unsigned char* first = base_ + page_;
    const auto* begin = reinterpret_cast<const unsigned char*>(data_);
    const unsigned char* end = begin + count_ * sizeof(T);
    for (const unsigned char* p = first; p < begin; ++p)
      if (*p != kCanary) return false;
    for (const unsigned char* p = end; p < first + data_pages_; ++p)
      if (*p != kCanary) return false;
    return true;
  }

 private:
  static constexpr unsigned char kCanary = 0xc5;
  std::size_t count_, data_pages_ = 0, mapping_bytes_ = 0, page_ = 0;
  unsigned char* base_ = nullptr;
  T* data_ = nullptr;
};

}  // namespace kiln::testing
