// AddressRanges: disjoint ranges of memory, [begin, begin + bytes), kept by their first byte: whether one of
// them holds a given range, and whether any touches it. The emulator's register of device buffers
// (cuda_emulator.cpp) and the emulated runtime's page-locked allocations (emulated_runtime.cpp). Not
// synchronized: each owner locks its own.
#pragma once

#include <algorithm>
#include <cstddef>
#include <iterator>
#include <map>

namespace kiln::emulation {

class AddressRanges {
 public:
  void insert(const void* begin, std::size_t bytes) { by_begin_[as_bytes(begin)] = bytes; }
  // Whether a range began at `begin` (and is now gone).
  bool erase(const void* begin) { return by_begin_.erase(as_bytes(begin)) > 0; }
  bool empty() const { return by_begin_.empty(); }

  // Whether [pointer, pointer + bytes) lies inside one range.
  bool holds(const void* pointer, std::size_t bytes) const {
    const unsigned char* first = as_bytes(pointer);
    const auto after = by_begin_.upper_bound(first);
    if (after == by_begin_.begin()) return false;
    const auto& [begin, size] = *std::prev(after);
    return first + bytes <= begin + size;
  }
  // Whether [pointer, pointer + bytes) shares a byte with any range (an empty range counts as one byte).
  bool touches(const void* pointer, std::size_t bytes) const {
    const unsigned char* first = as_bytes(pointer);
    const auto after = by_begin_.lower_bound(first + std::max<std::size_t>(bytes, 1));
    if (after == by_begin_.begin()) return false;
    const auto& [begin, size] = *std::prev(after);
    return first < begin + size;
  }

 private:
  static const unsigned char* as_bytes(const void* pointer) {
    return static_cast<const unsigned char*>(pointer);
  }

  std::map<const unsigned char*, std::size_t> by_begin_;
};

}  // namespace kiln::emulation
