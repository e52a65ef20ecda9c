// GEMM ladder step 11's register operand (kernels/gemm/ladder/register_operand_layout.hpp), checked on the
// CPU against what the step's top comment claims: no emulator can see bank conflicts or sectors, so the
// claims are recomputed here from the places the kernel uses. A bank is a 4-byte word of shared memory modulo
// 32; an 8-byte load is served a half-warp at a time, so a half-warp's 16 lanes must cover 32 distinct banks.
#include <doctest/doctest.h>

#include <set>
#include <utility>

#include "kernels/gemm/ladder/register_operand_layout.hpp"

namespace kernels_gemm_register_operand_layout_test {

namespace {

using namespace kiln::kernels::gemm_ladder::register_operand;

constexpr int kThreads = 128;  // a warpgroup

int quad_of(int thread) { return thread % 4; }

// The (k, n) that byte `offset` of a slab (two boxes of 32 k-lines of 32 floats, 128-byte swizzle) holds.
std::pair<int, int> element_at(int offset) {
  const int box = offset / kBoxBytes, in_box = offset % kBoxBytes;
  const int line = in_box / kLineBytes, slot = in_box % kLineBytes / 16, word = in_box % 16 / 4;
  const int chunk = slot ^ line % 8;  // the swizzle undone
  return {line, box * kBoxColumns + 4 * chunk + word};
}

TEST_CASE("gemm ladder 11: each register row is a different column of the slab") {
  std::set<int> columns;
  for (int thread = 0; thread < kThreads; ++thread) {
    const int n = slab_place(thread).n;
    CHECK(n % 2 == 0);  // n and n + 1: the 8-byte pair
    columns.insert(n);
    columns.insert(n + 1);
  }
  CHECK(columns.size() == static_cast<std::size_t>(kSlabColumns));
  CHECK(*columns.begin() == 0);
  CHECK(*columns.rbegin() == kSlabColumns - 1);
}

TEST_CASE("gemm ladder 11: each 8-byte load reads the two elements its registers need") {
  for (int thread = 0; thread < kThreads; ++thread) {
    const SlabPlace place = slab_place(thread);
    INFO("thread ", thread);
    CHECK(place.low % 8 == 0);
    CHECK(place.high % 8 == 0);
    // a[0], a[1]: rows n, n + 1 at k = quad; a[2], a[3] the same at k = quad + 4.
    CHECK(element_at(place.low) == std::pair{quad_of(thread), place.n});
    CHECK(element_at(place.low + 4) == std::pair{quad_of(thread), place.n + 1});
    CHECK(element_at(place.high) == std::pair{quad_of(thread) + 4, place.n});
    CHECK(element_at(place.high + 4) == std::pair{quad_of(thread) + 4, place.n + 1});
    // Slice j is 8 lines further: the same chunk slots, since (k + 8) % 8 == k % 8.
    CHECK(element_at(place.low + 3 * kSliceBytes) == std::pair{24 + quad_of(thread), place.n});
  }
}

TEST_CASE("gemm ladder 11: a half-warp's 8-byte loads fall on 32 distinct banks") {
  for (int warp = 0; warp < 4; ++warp) {
    for (int half = 0; half < 2; ++half) {
      for (const bool high : {false, true}) {
        std::set<int> banks;
        for (int lane = 16 * half; lane < 16 * half + 16; ++lane) {
          const SlabPlace place = slab_place(32 * warp + lane);
          const int offset = high ? place.high : place.low;
          banks.insert(offset / 4 % 32);
          banks.insert((offset / 4 + 1) % 32);
        }
        INFO("warp ", warp, ", half-warp ", half, high ? ", k + 4" : ", k");
        CHECK(banks.size() == 32);
      }
    }
  }
}

TEST_CASE("gemm ladder 11: a warp's store of one accumulator pair fills whole 32-byte sectors of C") {
  // Lane (group, quad) stores C[m][n], C[m][n + 1] with m = 2 quad (plus what the register adds, the same for
  // every lane): 32 lanes x 8 bytes, in 8 sectors when no sector is shared by fewer than 4 lanes.
  for (int warp = 0; warp < 4; ++warp) {
    std::set<std::pair<int, int>> sectors;  // (row m, 32-byte sector along n)
    for (int lane = 0; lane < 32; ++lane) {
      const int thread = 32 * warp + lane;
      sectors.insert({2 * quad_of(thread), slab_place(thread).n * 4 / 32});
    }
    INFO("warp ", warp);
    CHECK(sectors.size() == 8);
  }
}

}  // namespace

}  // namespace kernels_gemm_register_operand_layout_test
