// Items 0 .. count-1 handed out to threads in contiguous shares, with the leftovers stolen from the back.
//
// Thread t owns the share [count * t / shares, count * (t + 1) / shares) and takes it front to back; a thread
// whose share is done takes the last item of another's, so a thread that loses its core for a while (other
// processes share this machine's cores) holds nobody up: the others finish its share from the far end.
//
// Why not OpenMP's own schedules. schedule(static) gives the same contiguous shares but no stealing: every
// thread waits at the end for the slowest. schedule(dynamic) balances, but hands out items in the order
// threads come free, so thread 0 runs images 0, 2, 5, ... and thread 1 images 1, 3, 4, ...: each thread's
// images are scattered through the batch instead of one run of it, and that alone made the batched GEMM
// convolutions slower. Measured, 2 threads, batch 128, MobileNet's 32 -> 64 pointwise layer at 32x32
// (a 64 x 1024 x 32 GEMM per image, each image's GEMM on one thread): forward 4.4 ms with dynamic, 2.4 ms
// with contiguous halves; the same GEMMs, images handed out alternately to fixed threads: 4.3 ms; in runs of
// 2 / 4 / 8 / 16 images: 3.4 / 3.0 / 2.5 / 2.3 ms. Two processes, each running such GEMMs over a batch of
// its own on one core, did not slow each other down at all, so the cost is in what the two cores share of
// one tensor when their work interleaves through it, not in the memory bandwidth.
//
// Which thread runs an item decides no result in this repository's kernels (each output is computed by one
// item's code in a fixed order), so the stealing changes timings only.
//
// Thread-safe: next() may be called from every thread of a parallel region at once. A team with fewer
// threads than shares is fine: the unowned shares are stolen like any other.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

namespace kiln::kernels {

class ContiguousShares {
 public:
  // `count` items (at most 2^31 - 1) in `shares` shares (at least 1).
  ContiguousShares(std::int64_t count, int shares);

  // The next item for thread `thread` (0 <= thread < shares, else it only steals): the front of its own share
  // while it lasts, then the back of the next share round from it that has any left; -1 when no item is left.
  std::int64_t next(int thread);

 private:
  // A share's remaining items [front, back), both in one word so that the owner's take from the front and a
  // thief's from the back cannot both get the last item. One cache line each: the owners update their own
  // shares item after item, and neighbouring shares in one line would bounce it between the cores.
  struct alignas(64) Share {
    std::atomic<std::uint64_t> bounds;
  };
  static std::uint64_t pack(std::uint64_t front, std::uint64_t back) { return front << 32 | back; }

  std::int64_t take_front(Share& share);
  std::int64_t take_back(Share& share);

  int shares_;
  std::unique_ptr<Share[]> share_;
};

}  // namespace kiln::kernels
