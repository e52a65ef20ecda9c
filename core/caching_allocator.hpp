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
#pragma once

#include <cstddef>
#include <map>
#include <mutex>
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
  // Returns every cached block to the backing allocator.
  void release_cached();

  // The size a request of `bytes` is served with (bytes itself below min_cached_bytes).
  std::size_t size_class(std::size_t bytes) const;

 private:
  bool cached(std::size_t bytes) const { return bytes >= min_cached_bytes_; }

  Allocator& backing_;
  const std::size_t cache_limit_;
  const std::size_t min_cached_bytes_;
  mutable std::mutex mutex_;
  std::map<std::size_t, std::vector<void*>> free_blocks_;  // size class -> cached blocks
  Stats stats_;
};

}  // namespace kiln
