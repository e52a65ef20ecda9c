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

void* CachingAllocator::take(FreeBlocks& blocks, std::size_t size) {
  const auto found = blocks.find(size);
  if (found == blocks.end() || found->second.empty()) return nullptr;
  void* block = found->second.back();
  found->second.pop_back();
  stats_.cached_bytes -= size;
  return block;
}

void* CachingAllocator::allocate(std::size_t bytes) {
  const std::size_t size = size_class(bytes);
  std::unique_lock lock(mutex_);
  const PoolId pool = open_pool_;
  // Inside a pool every size is kept (by the pool): one given back to the backing allocator during a CUDA
  // graph's capture would be a cudaFree, which a capture refuses.
  const bool kept = cached(bytes) || pool != 0;
  if (kept) {
    stats_.in_use_bytes += size;
    stats_.peak_in_use_bytes = std::max(stats_.peak_in_use_bytes, stats_.in_use_bytes);
    if (pool != 0) {
      if (void* block = take(pools_.at(pool).free_blocks, size)) return block;
    }
    if (void* block = take(free_blocks_, size)) {
      if (pool != 0) {
        pool_of_.emplace(block, pool);
        ++pools_.at(pool).blocks;
      }
      return block;
    }
  }
  ++stats_.backing_allocations;
  lock.unlock();
  void* block = nullptr;
  try {
    try {
      block = backing_.allocate(size);
    } catch (const Error&) {
      // Out of memory while blocks of other sizes sit cached: give those back and try once more.
      release_cached();
      block = backing_.allocate(size);
    }
  } catch (...) {
    if (kept) {
      std::lock_guard relock(mutex_);
      stats_.in_use_bytes -= size;
    }
    throw;
  }
  if (pool != 0) {
    std::lock_guard relock(mutex_);
    pool_of_.emplace(block, pool);
    ++pools_.at(pool).blocks;
  }
  return block;
}

void CachingAllocator::deallocate(void* pointer, std::size_t bytes) {
  const std::size_t size = size_class(bytes);
  {
    std::lock_guard lock(mutex_);
    if (const auto owner = pool_of_.find(pointer); owner != pool_of_.end()) {
      stats_.in_use_bytes -= size;
      pools_.at(owner->second).free_blocks[size].push_back(pointer);
      stats_.cached_bytes += size;
      return;
    }
    if (cached(bytes)) stats_.in_use_bytes -= size;
    // While a pool is open nothing goes back to the backing allocator (see allocate).
    if ((cached(bytes) && stats_.cached_bytes + size <= cache_limit_) || open_pool_ != 0) {
      free_blocks_[size].push_back(pointer);
      stats_.cached_bytes += size;
      return;
    }
  }
  backing_.deallocate(pointer, size);
}

CachingAllocator::PoolId CachingAllocator::open_pool() {
  std::lock_guard lock(mutex_);
  KILN_CHECK(open_pool_ == 0, "CachingAllocator: pool ", open_pool_, " is still open (one at a time)");
  open_pool_ = ++last_pool_;
  pools_.emplace(open_pool_, Pool{});
  return open_pool_;
}

void CachingAllocator::close_pool() {
  std::lock_guard lock(mutex_);
  open_pool_ = 0;
}

void CachingAllocator::release_pool(PoolId pool) {
  std::lock_guard lock(mutex_);
  const auto found = pools_.find(pool);
  if (found == pools_.end()) return;
  for (auto& [size, blocks] : found->second.free_blocks) {
    std::vector<void*>& shared = free_blocks_[size];
    shared.insert(shared.end(), blocks.begin(), blocks.end());
  }
  std::erase_if(pool_of_, [pool](const auto& entry) { return entry.second == pool; });
  pools_.erase(found);
  if (open_pool_ == pool) open_pool_ = 0;
}

std::size_t CachingAllocator::pool_blocks(PoolId pool) const {
  std::lock_guard lock(mutex_);
  const auto found = pools_.find(pool);
  return found == pools_.end() ? 0 : found->second.blocks;
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
  FreeBlocks blocks;
  {
    std::lock_guard lock(mutex_);
    blocks.swap(free_blocks_);
    for (const auto& [size, list] : blocks) stats_.cached_bytes -= size * list.size();  // pools keep theirs
  }
  for (const auto& [size, list] : blocks) {
    for (void* block : list) backing_.deallocate(block, size);
  }
}

}  // namespace kiln
