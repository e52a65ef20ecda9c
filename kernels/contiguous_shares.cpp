#include "kernels/contiguous_shares.hpp"

#include "core/error.hpp"

namespace kiln::kernels {

namespace {
constexpr std::uint64_t kLow32 = 0xffff'ffffu;
}  // namespace

ContiguousShares::ContiguousShares(std::int64_t count, int shares)
    : shares_(shares), share_(std::make_unique<Share[]>(static_cast<std::size_t>(shares))) {
  KILN_CHECK(count >= 0 && count <= std::int64_t{0x7fff'ffff}, "ContiguousShares: ", count,
             " items, not 0 to 2^31 - 1");
  KILN_CHECK(shares >= 1, "ContiguousShares: ", shares, " shares, not at least 1");
  for (int t = 0; t < shares; ++t) {
    const std::uint64_t front = static_cast<std::uint64_t>(count * t / shares);
    const std::uint64_t back = static_cast<std::uint64_t>(count * (t + 1) / shares);
    share_[static_cast<std::size_t>(t)].bounds.store(pack(front, back), std::memory_order_relaxed);
  }
}

std::int64_t ContiguousShares::take_front(Share& share) {
  std::uint64_t bounds = share.bounds.load(std::memory_order_relaxed);
  for (;;) {
    const std::uint64_t front = bounds >> 32, back = bounds & kLow32;
    if (front >= back) return -1;
    if (share.bounds.compare_exchange_weak(bounds, pack(front + 1, back), std::memory_order_relaxed))
      return static_cast<std::int64_t>(front);
  }
}

std::int64_t ContiguousShares::take_back(Share& share) {
  std::uint64_t bounds = share.bounds.load(std::memory_order_relaxed);
  for (;;) {
    const std::uint64_t front = bounds >> 32, back = bounds & kLow32;
    if (front >= back) return -1;
    if (share.bounds.compare_exchange_weak(bounds, pack(front, back - 1), std::memory_order_relaxed))
      return static_cast<std::int64_t>(back - 1);
  }
}

std::int64_t ContiguousShares::next(int thread) {
  if (thread >= 0 && thread < shares_) {
    const std::int64_t own = take_front(share_[static_cast<std::size_t>(thread)]);
    if (own >= 0) return own;
  }
  const int start = thread >= 0 && thread < shares_ ? thread + 1 : 0;
  for (int i = 0; i < shares_; ++i) {
    const std::int64_t stolen = take_back(share_[static_cast<std::size_t>((start + i) % shares_)]);
    if (stolen >= 0) return stolen;
  }
  return -1;
}

}  // namespace kiln::kernels
