// The caching allocator: freed blocks come back for the same size class, blocks below where caching starts
// (the CPU's 64 KiB) and blocks past the cache limit pass through, a device's cache keeps every block,
// statistics count what is in use, and a failed allocation retries once with the cache emptied. Then the CPU
// storage's alignment: 64 bytes, and a huge page's boundary for blocks that can hold huge pages.
#include "core/caching_allocator.hpp"

#include <doctest/doctest.h>

#include <cstdint>
#include <cstdlib>
#include <set>
#include <vector>

#include "core/error.hpp"

namespace core_caching_allocator_test {

using kiln::Allocator;
using kiln::CachingAllocator;

namespace {

// Counts what reaches the system; can be told to fail (as an out-of-memory would) while blocks are live.
class CountingAllocator final : public Allocator {
 public:
  void* allocate(std::size_t bytes) override {
    KILN_CHECK(live.size() < limit_blocks, "out of memory (test)");
    void* block = std::malloc(bytes);
    live.insert(block);
    ++allocations;
    return block;
  }
  void deallocate(void* pointer, std::size_t) override {
    live.erase(pointer);
    std::free(pointer);
    ++deallocations;
  }
  std::set<void*> live;
  std::size_t limit_blocks = 1000;
  int allocations = 0, deallocations = 0;
};

constexpr std::size_t kLimit = std::size_t{1} << 30;
constexpr std::size_t kCpuMinCached = std::size_t{64} << 10;  // as core/storage.cpp's CPU cache
constexpr std::size_t kBig = kCpuMinCached * 3;

// A CPU-style cache over `system`: blocks from 64 KiB.
CachingAllocator cpu_style(Allocator& system, std::size_t limit = kLimit) {
  return CachingAllocator(system, limit, kCpuMinCached);
}

}  // namespace

TEST_CASE("caching allocator: size classes are quarter powers of two from 64 KiB up") {
  CountingAllocator system;
  const CachingAllocator cache = cpu_style(system);
  CHECK(cache.size_class(100) == 100);
  const std::size_t k64 = std::size_t{64} << 10;
  CHECK(cache.size_class(k64) == k64);
  CHECK(cache.size_class(k64 + 1) == k64 + k64 / 4);
  CHECK(cache.size_class(std::size_t{3} << 20) == std::size_t{3} << 20);        // 1.5 * 2 MiB
  CHECK(cache.size_class((std::size_t{3} << 20) + 1) == std::size_t{7} << 19);  // 1.75 * 2 MiB
  for (std::size_t bytes : {k64 + 7, std::size_t{5000000}, std::size_t{123456789}}) {
    const std::size_t size = cache.size_class(bytes);
    CHECK(size >= bytes);
    CHECK(size <= bytes + bytes / 4);
  }
}

TEST_CASE("caching allocator: a device's cache keeps every block, small ones in multiples of 512 bytes") {
  CountingAllocator system;
  CachingAllocator cache(system, kLimit, 1);  // as core/storage.cpp's CUDA caches
  CHECK(cache.size_class(0) == 0);            // an empty block passes through
  CHECK(cache.size_class(1) == 512);
  CHECK(cache.size_class(512) == 512);
  CHECK(cache.size_class(513) == 1024);
  CHECK(cache.size_class((std::size_t{64} << 10) - 1) == std::size_t{64} << 10);
  CHECK(cache.size_class((std::size_t{64} << 10) + 1) == std::size_t{80} << 10);  // quarter powers from there

  // A bias's gradient, freed and asked for again each step: one cudaMalloc, never a cudaFree.
  void* first = cache.allocate(40);
  CHECK(cache.stats().in_use_bytes == 512);
  cache.deallocate(first, 40);
  void* again = cache.allocate(100);  // the same class
  CHECK(again == first);
  cache.deallocate(again, 100);
  CHECK(system.allocations == 1);
  CHECK(system.deallocations == 0);
  CHECK(cache.stats().cached_bytes == 512);
  CHECK(cache.stats().in_use_bytes == 0);
  CHECK_THROWS_AS(CachingAllocator(system, kLimit, 0), kiln::Error);
}

TEST_CASE("caching allocator: a freed block is handed out again for the same size class") {
  CountingAllocator system;
  CachingAllocator cache = cpu_style(system);
  void* first = cache.allocate(kBig);
  cache.deallocate(first, kBig);
  CHECK(cache.stats().cached_bytes == cache.size_class(kBig));
  void* second = cache.allocate(kBig - 100);  // same size class
  CHECK(second == first);
  CHECK(system.allocations == 1);
  void* other = cache.allocate(kBig * 2);  // another class: a new block
  CHECK(other != first);
  CHECK(system.allocations == 2);
  cache.deallocate(second, kBig - 100);
  cache.deallocate(other, kBig * 2);
  CHECK(system.deallocations == 0);
  cache.release_cached();
  CHECK(system.deallocations == 2);
  CHECK(system.live.empty());
}

TEST_CASE("caching allocator: blocks below where caching starts pass straight through") {
  CountingAllocator system;
  CachingAllocator cache = cpu_style(system);
  void* block = cache.allocate(1000);
  cache.deallocate(block, 1000);
  CHECK(system.deallocations == 1);
  CHECK(cache.stats().cached_bytes == 0);
}

TEST_CASE("caching allocator: blocks freed beyond the cache limit go back to the system") {
  CountingAllocator system;
  const std::size_t size = cpu_style(system).size_class(kBig);
  CachingAllocator cache = cpu_style(system, size);  // room for one block
  void* a = cache.allocate(kBig);
  void* b = cache.allocate(kBig);
  cache.deallocate(a, kBig);
  cache.deallocate(b, kBig);
  CHECK(cache.stats().cached_bytes == size);
  CHECK(system.deallocations == 1);
}

TEST_CASE("caching allocator: statistics track bytes in use and the peak") {
  CountingAllocator system;
  CachingAllocator cache = cpu_style(system);
  const std::size_t size = cache.size_class(kBig);
  void* a = cache.allocate(kBig);
  void* b = cache.allocate(kBig);
  CHECK(cache.stats().in_use_bytes == 2 * size);
  cache.deallocate(a, kBig);
  void* c = cache.allocate(kBig);
  const CachingAllocator::Stats stats = cache.stats();
  CHECK(stats.in_use_bytes == 2 * size);
  CHECK(stats.peak_in_use_bytes == 2 * size);
  CHECK(stats.backing_allocations == 2);
  cache.deallocate(b, kBig);
  cache.deallocate(c, kBig);
  CHECK(cache.stats().in_use_bytes == 0);
}

TEST_CASE("caching allocator: reset_peak starts the peak over from what is in use") {
  CountingAllocator system;
  CachingAllocator cache = cpu_style(system);
  const std::size_t size = cache.size_class(kBig);
  void* a = cache.allocate(kBig);
  void* b = cache.allocate(kBig);
  cache.deallocate(b, kBig);
  CHECK(cache.stats().peak_in_use_bytes == 2 * size);
  cache.reset_peak();
  CHECK(cache.stats().peak_in_use_bytes == size);  // a is still in use
  void* c = cache.allocate(kBig);
  CHECK(cache.stats().peak_in_use_bytes == 2 * size);
  cache.deallocate(a, kBig);
  cache.deallocate(c, kBig);
}

TEST_CASE("caching allocator: out of memory with blocks cached empties the cache and retries once") {
  CountingAllocator system;
  CachingAllocator cache = cpu_style(system);
  void* cached = cache.allocate(kBig);
  cache.deallocate(cached, kBig);  // cached, still live in the system
  system.limit_blocks = 1;         // the system now refuses while that block is live
  void* fresh = cache.allocate(kBig * 2);
  CHECK(fresh != nullptr);
  CHECK(cache.stats().cached_bytes == 0);
  system.limit_blocks = 1;  // now full again: a second request fails for real, and is not counted in use
  CHECK_THROWS_AS(cache.allocate(kBig * 4), kiln::Error);
  CHECK(cache.stats().in_use_bytes == cache.size_class(kBig * 2));
  cache.deallocate(fresh, kBig * 2);
}

TEST_CASE("caching allocator: a private pool's blocks go back to it, and to nobody else, until released") {
  CountingAllocator system;
  CachingAllocator cache(system, kLimit, 1);  // a device's: every block cached
  void* shared = cache.allocate(kBig);
  cache.deallocate(shared, kBig);  // on the shared list

  const CachingAllocator::PoolId pool = cache.open_pool();
  void* first = cache.allocate(kBig);  // the shared block, now the pool's
  CHECK(first == shared);
  void* second = cache.allocate(kBig);  // a new one, the pool's from the start
  void* empty = cache.allocate(0);      // even an empty block: nothing goes back to the system in a pool
  cache.deallocate(first, kBig);        // back to the pool
  cache.deallocate(empty, 0);
  CHECK(cache.allocate(kBig) == first);  // the pool reuses its own
  cache.deallocate(first, kBig);
  cache.close_pool();
  CHECK(cache.pool_blocks(pool) == 3);

  void* outside = cache.allocate(kBig);  // not the pool's free block: a new one
  CHECK(outside != first);
  CHECK(outside != second);
  cache.deallocate(second, kBig);  // freed after the pool closed: still the pool's
  void* again = cache.allocate(kBig);
  CHECK(again != first);
  CHECK(again != second);
  CHECK(cache.stats().backing_allocations == 5);  // shared, second, empty, outside, again
  CHECK(system.deallocations == 0);

  cache.release_pool(pool);  // its free blocks join the shared lists
  CHECK(cache.pool_blocks(pool) == 0);
  void* after = cache.allocate(kBig);
  CHECK((after == first || after == second));
  for (void* block : {outside, again, after}) cache.deallocate(block, kBig);
  CHECK(cache.stats().in_use_bytes == 0);
  CHECK(cache.stats().backing_allocations == 5);
}

TEST_CASE("caching allocator: while a pool is open, no block goes back to the system, even past the limit") {
  CountingAllocator system;
  CachingAllocator cache = cpu_style(system, /*limit=*/0);  // nothing is cached normally
  void* before = cache.allocate(kBig);
  void* small = cache.allocate(100);
  const CachingAllocator::PoolId pool = cache.open_pool();
  cache.deallocate(before, kBig);  // a block from before the pool: kept on the shared list
  cache.deallocate(small, 100);    // and one below where caching starts
  CHECK(system.deallocations == 0);
  cache.close_pool();
  cache.release_pool(pool);
  cache.release_cached();
  CHECK(system.deallocations == 2);
  CHECK(system.live.empty());
}

TEST_CASE("cpu storage: 64-byte aligned, and from 2 MiB on a huge page's boundary") {
  constexpr std::size_t kHugePage = std::size_t{2} << 20;
  const auto address = [](const std::shared_ptr<kiln::Storage>& storage) {
    return reinterpret_cast<std::uintptr_t>(storage->data());
  };
  for (const std::size_t bytes : {std::size_t{1}, std::size_t{100}, kCpuMinCached + 1, kHugePage - 64}) {
    const auto storage = kiln::Storage::allocate(bytes, kiln::Device::cpu());
    CHECK(address(storage) % kiln::kStorageAlignment == 0);
  }
  // Sizes on and between the cache's classes, each a block that can hold at least one huge page.
  for (const std::size_t bytes : {kHugePage, kHugePage + 1, 5 * kHugePage / 2 + 4096, 7 * kHugePage}) {
    const auto storage = kiln::Storage::allocate(bytes, kiln::Device::cpu());
    CAPTURE(bytes);
    CHECK(address(storage) % kHugePage == 0);
  }
}

}  // namespace core_caching_allocator_test
