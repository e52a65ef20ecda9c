// kernels/contiguous_shares.hpp: every item handed out exactly once, each thread's own share front to back
// and what it steals from the back of another's, with any team size, and under contention from real threads.
#include "kernels/contiguous_shares.hpp"

#include <doctest/doctest.h>
#include <omp.h>

#include <cstdint>
#include <vector>

namespace kernels_contiguous_shares_test {

using kiln::kernels::ContiguousShares;

TEST_CASE(
    "contiguous shares: the owner takes its share front to back, then steals from the next share's back") {
  ContiguousShares shares(10, 2);  // thread 0 owns [0, 5), thread 1 [5, 10)
  for (std::int64_t item = 0; item < 5; ++item) CHECK(shares.next(0) == item);
  CHECK(shares.next(1) == 5);
  // Thread 0's share is done: it takes thread 1's last items, from the back.
  CHECK(shares.next(0) == 9);
  CHECK(shares.next(0) == 8);
  CHECK(shares.next(1) == 6);
  CHECK(shares.next(1) == 7);
  CHECK(shares.next(0) == -1);
  CHECK(shares.next(1) == -1);
}

TEST_CASE("contiguous shares: uneven counts, empty shares and threads beyond the shares") {
  SUBCASE("fewer items than shares: some shares are empty, their owners steal at once") {
    ContiguousShares shares(2, 4);  // shares [0, 0), [0, 1), [1, 1), [1, 2)
    CHECK(shares.next(0) == 0);     // its own is empty: share 1's back
    CHECK(shares.next(2) == 1);     // its own is empty: share 3's back
    CHECK(shares.next(1) == -1);
    CHECK(shares.next(3) == -1);
  }
  SUBCASE("a thread with no share of its own only steals") {
    ContiguousShares shares(4, 2);
    CHECK(shares.next(7) == 1);  // share 0's back
    CHECK(shares.next(0) == 0);
    CHECK(shares.next(7) == 3);  // share 0 is done: share 1's back
  }
  SUBCASE("no items") {
    ContiguousShares shares(0, 3);
    for (int thread = 0; thread < 3; ++thread) CHECK(shares.next(thread) == -1);
  }
}

TEST_CASE("contiguous shares: bad counts are refused") {
  CHECK_THROWS(ContiguousShares(-1, 2));
  CHECK_THROWS(ContiguousShares(std::int64_t{1} << 31, 2));
  CHECK_THROWS(ContiguousShares(4, 0));
}

TEST_CASE("contiguous shares: threads racing for the items each get a different one, and all are taken") {
  // More threads than the machine's cores, so the owners and the thieves interleave.
  constexpr int kThreads = 6;
  constexpr std::int64_t kItems = 20000;
  for (int team : {kThreads, 3}) {  // a team smaller than the shares: the unowned shares are stolen
    CAPTURE(team);
    ContiguousShares shares(kItems, kThreads);
    std::vector<int> taken_by(kItems, -1);
    std::vector<std::vector<std::int64_t>> order(kThreads);
#pragma omp parallel num_threads(team)
    {
      const int thread = omp_get_thread_num();
      for (std::int64_t item; (item = shares.next(thread)) >= 0;) {
        taken_by[static_cast<std::size_t>(item)] = thread;  // each item once: no two threads write one slot
        order[static_cast<std::size_t>(thread)].push_back(item);
      }
    }
    std::int64_t untaken = 0;
    for (const int thread : taken_by) untaken += thread < 0;
    CHECK(untaken == 0);
    std::int64_t total = 0;
    for (const std::vector<std::int64_t>& items : order) total += static_cast<std::int64_t>(items.size());
    CHECK(total == kItems);  // no item twice
    // What a thread took of its own share is a run from the share's front, in order, before anything it
    // stole (a late thread may find its share stolen: then it took none of it).
    for (int thread = 0; thread < team; ++thread) {
      CAPTURE(thread);
      const std::int64_t front = kItems * thread / kThreads, back = kItems * (thread + 1) / kThreads;
      const std::vector<std::int64_t>& items = order[static_cast<std::size_t>(thread)];
      std::size_t own = 0;
      while (own < items.size() && items[own] >= front && items[own] < back) ++own;
      std::int64_t out_of_order = 0, own_after_stealing = 0;
      for (std::size_t i = 0; i < own; ++i) out_of_order += items[i] != front + static_cast<std::int64_t>(i);
      for (std::size_t i = own; i < items.size(); ++i)
        own_after_stealing += items[i] >= front && items[i] < back;
      CHECK(out_of_order == 0);
      CHECK(own_after_stealing == 0);
    }
  }
}

}  // namespace kernels_contiguous_shares_test
