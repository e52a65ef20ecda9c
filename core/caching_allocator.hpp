// CachingAllocator: keeps freed blocks and hands them out again instead of returning them to the system.
//
// A training step allocates and frees the same tensor sizes every iteration. Given back to the system
// (glibc unmaps or trims large blocks), each one returns as fresh pages that the OS zeroes on first touch:
// in a ResNet-20 step on the CPU, page faults and clear_page took 7% of the time. Cached, a block is
// reused as it is. (The CUDA backend needs the same thing even more: cudaMalloc synchronizes the device.)
//
// Blocks of at least `min_cached_bytes` are cached. Each is rounded up to a size class: from 64 KiB a quarter
// power of two (2^e, 1.25 * 2^e, 1.5 * 2^e, 1.75 * 2^e: at most 25% slack), below it a multiple of 512
// bytes. A freed block goes on its class's free list; allocate takes from that list before asking the
// backing allocator. Smaller blocks pass straight through. Where caching starts is the backing allocator's
// matter (core/storage.cpp): on the CPU at 64 KiB, since malloc keeps small blocks itself, cheaply; on a
// CUDA device at one byte, since cudaFree synchronizes the whole device whatever the size: a ResNet-20 step
// freeing its biases, batch-norm statistics and labels through it stalled the GPU about 270 times. The
// free lists hold at most `cache_limit` bytes; a block freed beyond that goes back to the backing
// allocator. One mutex guards everything: data-loader threads allocate tensors too.
//
// Private pools serve CUDA graphs (core/cuda_graph.hpp). A graph replays its kernels on the addresses they
// were captured with, so every block the captured work was handed must stay the graph's while the graph
// lives: a block freed during the capture and handed to a tensor outside it would be overwritten by the next
// replay. While a pool is open, every allocation (of any size) belongs to it: taken from its own free blocks,
// else from the shared lists or the backing allocator. A block that belongs to a pool goes back to that pool
// when freed, whenever that is, and only allocations inside the pool take it again. Releasing the pool (when
// the graph is destroyed) gives its free blocks to the shared lists, and its blocks still in use go there
// when they are freed.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "core/storage.hpp"

namespace kiln {

class CachingAllocator final : public Allocator {
 public:
  static constexpr std::size_t kQuarterPowersFrom = std::size_t{64} << 10;
  static constexpr std::size_t kSmallGranule = 512;  // cached blocks below kQuarterPowersFrom round up to it

  struct Stats {
    std::size_t in_use_bytes = 0;         // handed out and not yet freed (size classes, for cached sizes)
    std::size_t peak_in_use_bytes = 0;    // the most in_use_bytes has been
    std::size_t cached_bytes = 0;         // on the free lists
    std::size_t backing_allocations = 0;  // calls that reached the backing allocator
  };

  // `backing` must outlive this allocator; min_cached_bytes is at least 1 (empty blocks pass through).
  CachingAllocator(Allocator& backing, std::size_t cache_limit, std::size_t min_cached_bytes);
  ~CachingAllocator() override;
  CachingAllocator(const CachingAllocator&) = delete;
  CachingAllocator& operator=(const CachingAllocator&) = delete;

  void* allocate(std::size_t bytes) override;
  void deallocate(void* pointer, std::size_t bytes) override;

  Stats stats() const;
  // Starts the peak over from the bytes in use now (as torch.cuda.reset_peak_memory_stats does), so one
  // process can measure the peaks of workloads run one after another.
  void reset_peak();
  // Returns every block on the shared lists to the backing allocator (a pool keeps its own).
  void release_cached();

  // The size a request of `bytes` is served with (bytes itself below min_cached_bytes).
  std::size_t size_class(std::size_t bytes) const;

  // Private pools (see the top of the file). One is open at a time.
  using PoolId = std::uint64_t;
  PoolId open_pool();
  void close_pool();  // allocations come from the shared lists again; the pool keeps its blocks
  void release_pool(PoolId pool);
  // Blocks that belong to `pool`: in use and free.
  std::size_t pool_blocks(PoolId pool) const;

 private:
  using FreeBlocks = std::map<std::size_t, std::vector<void*>>;  // size class -> cached blocks
  struct Pool {
    FreeBlocks free_blocks;
    std::size_t blocks = 0;
  };

  bool cached(std::size_t bytes) const { return bytes >= min_cached_bytes_; }
  // A free block of `size` from `blocks`, or null. Under mutex_.
  void* take(FreeBlocks& blocks, std::size_t size);

  Allocator& backing_;
  const std::size_t cache_limit_;
  const std::size_t min_cached_bytes_;
  mutable std::mutex mutex_;
  FreeBlocks free_blocks_;  // the shared lists
  Stats stats_;
  std::map<PoolId, Pool> pools_;
  std::unordered_map<void*, PoolId> pool_of_;  // every block that belongs to a pool
  PoolId open_pool_ = 0;                       // 0: none
  PoolId last_pool_ = 0;
};

}  // namespace kiln
