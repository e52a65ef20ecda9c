#include "core/caching_allocator.hpp"

#include <algorithm>
#include <bit>

#include "core/error.hpp"

namespace kiln {

CachingAllocator::CachingAllocator(Allocator& backing, std::size_t cache_limit, std::size_t min_cached_bytes)
    : backing_(backing), cache_limit_(cache_limit), min_cached_bytes_(min_cached_bytes) {
  KILN_CHECK(min_cached_bytes >= 1, "CachingAllocator: min_cached_bytes must be at least 1 (got 0)");
}

CachingAllocator::~CachingAllocator() { release_cached(); }

std::size_t CachingAllocator::size_class(std::size_t bytes) const {
  if (!cached(bytes)) return bytes;
  if (bytes < kQuarterPowersFrom) return (bytes + kSmallGranule - 1) / kSmallGranule * kSmallGranule;
  const std::size_t power = std::bit_floor(bytes);  // 2^e <= bytes < 2^(e+1)
  const std::size_t step = power / 4;
  return (bytes + step - 1) / step * step;
}

void* CachingAllocator::allocate(std::size_t bytes) {
  const std::size_t size = size_class(bytes);
  std::unique_lock lock(mutex_);
  if (cached(bytes)) {
    stats_.in_use_bytes += size;
    stats_.peak_in_use_bytes = std::max(stats_.peak_in_use_bytes, stats_.in_use_bytes);
    const auto found = free_blocks_.find(size);
    if (found != free_blocks_.end() && !found->second.empty()) {
      void* block = found->second.back();
      found->second.pop_back();
      stats_.cached_bytes -= size;
      return block;
    }
  }
  ++stats_.backing_allocations;
  lock.unlock();
  try {
    try {
      return backing_.allocate(size);
    } catch (const Error&) {
      // Out of memory while blocks of other sizes sit cached: give those back and try once more.
      release_cached();
      return backing_.allocate(size);
    }
  } catch (...) {
    if (cached(bytes)) {
      std::lock_guard relock(mutex_);
      stats_.in_use_bytes -= size;
    }
    throw;
  }
}

void CachingAllocator::deallocate(void* pointer, std::size_t bytes) {
  const std::size_t size = size_class(bytes);
  {
    std::lock_guard lock(mutex_);
    if (cached(bytes)) {
      stats_.in_use_bytes -= size;
      if (stats_.cached_bytes + size <= cache_limit_) {
        free_blocks_[size].push_back(pointer);
        stats_.cached_bytes += size;
        return;
      }
    }
  }
  backing_.deallocate(pointer, size);
}

CachingAllocator::Stats CachingAllocator::stats() const {
  std::lock_guard lock(mutex_);
  return stats_;
}

void CachingAllocator::reset_peak() {
  std::lock_guard lock(mutex_);
  stats_.peak_in_use_bytes = stats_.in_use_bytes;
}

void CachingAllocator::release_cached() {
  std::map<std::size_t, std::vector<void*>> blocks;
  {
    std::lock_guard lock(mutex_);
    blocks.swap(free_blocks_);
    stats_.cached_bytes = 0;
  }
  for (const auto& [size, list] : blocks) {
    for (void* block : list) backing_.deallocate(block, size);
  }
}

}  // namespace kiln
