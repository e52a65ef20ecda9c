// The emulator's wgmma (kernels/ladder/wgmma.cuh, tests/emulation/cuda_emulator.cpp): a warpgroup that stores
// two tiles in the documented 128-byte swizzle and multiplies them slice by slice through descriptors gets
// their product in the documented accumulator layout, with B K-major and with B MN-major, and so does one
// that hands A over in registers through the documented fragment layout (TF32); and the ordering
// rules the GPU leaves undefined are errors, or visibly wrong, here: a wgmma without wgmma_fence, one that
// reads copies not fenced to the async proxy, a copy into a tile that a wgmma in flight reads, accumulators
// read before the wait, a kernel that returns with wgmma in flight.
#include <doctest/doctest.h>

#include <bit>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "core/bfloat16.hpp"
#include "core/error.hpp"
#include "kernels/ladder/cp_async.cuh"
#include "kernels/ladder/launch.cuh"
#include "kernels/ladder/wgmma.cuh"
#include "tests/emulation/guarded_buffer.hpp"

namespace emulation_wgmma_emulation_test {

namespace {

using namespace kiln;
namespace ladder = kernels::ladder;

constexpr int kRows = 64, kCols = 16, kDepth = 64;  // D[64, 16] = A[64, 64] B[16, 64]^T
constexpr int kTileBytes = kRows * 128;             // A: 64 rows of 128 bytes; B's 16 rows follow it
constexpr int kSharedBytes = kTileBytes + kCols * 128 + ladder::kSwizzleAtomBytes;
constexpr float kStale = 1000.0f;  // the accumulators' value before the wgmma

enum class Probe { Product, NoFence, UnfencedCopies, CopyIntoInFlightTile, NoWait };

float a_value(int m, int k) { return static_cast<float>((m * 7 + k * 3) % 9 - 4); }
float b_value(int n, int k) { return static_cast<float>((n * 5 + k) % 7 - 3); }
// D(m, n): small integers, exact in bfloat16 and in every float sum.
float product(int m, int n) {
  float sum = 0.0f;
  for (int k = 0; k < kDepth; ++k) sum += a_value(m, k) * b_value(n, k);
  return sum;
}
// A [64][64] as both probes hand it over, row-major.
std::vector<bfloat16> a_operand() {
  std::vector<bfloat16> a;
  for (int m = 0; m < kRows; ++m)
    for (int k = 0; k < kDepth; ++k) a.emplace_back(a_value(m, k));
  return a;
}

// Thread t of the warpgroup copies chunk t % 8 of A's rows t / 8, t / 8 + 16, ... into the K-major tile.
__device__ void copy_a_tile(unsigned char* a_tile, const bfloat16* a, int t) {
  for (int row = t / 8; row < kRows; row += 16)
    ladder::cp_async_16(a_tile + ladder::swizzled_128b(row, t % 8), a + row * kDepth + 8 * (t % 8), true);
}

// Where thread t's accumulator d[i] lands in a row-major [64][columns] D: wgmma.cuh's layout.
__device__ int accumulator_offset(int t, int i, int columns) {
  const int warp = t / 32, group = t % 32 / 4, quad = t % 4;
  return (16 * warp + group + 8 * (i / 2 % 2)) * columns + 8 * (i / 4) + 2 * quad + i % 2;
}

// 128 threads. a [64][64] and b [16][64] bfloat16 in global memory; out [64][16] the product, early [64][16]
// the accumulators as read before the wait.
__global__ void wgmma_probe_kernel(Probe probe, const bfloat16* a, const bfloat16* b, float* out,
                                   float* early) {
  KILN_DYNAMIC_SHARED_MEMORY(shared);
  unsigned char* const tiles = ladder::first_swizzle_atom(shared);
  unsigned char* const a_tile = tiles;
  unsigned char* const b_tile = tiles + kTileBytes;
  const int t = static_cast<int>(threadIdx.x);
  copy_a_tile(a_tile, a, t);
  // And chunk t % 8 of B's row t / 8.
  ladder::cp_async_16(b_tile + ladder::swizzled_128b(t / 8, t % 8), b + t / 8 * kDepth + 8 * (t % 8), true);
  ladder::cp_async_commit();
  ladder::cp_async_wait<0>();
  if (probe != Probe::UnfencedCopies) ladder::fence_proxy_async_shared();
  __syncthreads();

  float acc[kCols / 2];
  for (float& value : acc) value = kStale;
  if (probe != Probe::NoFence) ladder::wgmma_fence(acc);
  for (int k16 = 0; k16 < kDepth / 16; ++k16)  // the first slice ignores the stale accumulators
    ladder::wgmma_bf16<kCols>(acc, ladder::k_major_128b_descriptor(a_tile + 32 * k16),
                              ladder::k_major_128b_descriptor(b_tile + 32 * k16), k16 > 0);
  ladder::wgmma_commit_group();
  if (probe == Probe::CopyIntoInFlightTile) {  // the next tile into A's buffer, before the wait
    ladder::cp_async_16(a_tile + 16 * t, a, true);
    ladder::cp_async_commit();
  }
  for (int i = 0; i < kCols / 2; ++i) early[accumulator_offset(t, i, kCols)] = acc[i];
  if (probe == Probe::NoWait) return;
  ladder::wgmma_wait<0>(acc);
  ladder::cp_async_wait<0>();
  for (int i = 0; i < kCols / 2; ++i) out[accumulator_offset(t, i, kCols)] = acc[i];
}

// B MN-major, as a row-major GEMM stores it: b [64 k][128 n] bfloat16, out [64][128] = A B. In shared memory
// B is two 64-wide columns of n, each a stack of 8 atoms along k (1024 bytes apart), the second column
// kColumnStride bytes after the first.
constexpr int kWideCols = 128;
constexpr int kColumnStride = kDepth / 8 * ladder::kSwizzleAtomBytes;  // 8192
constexpr int kWideSharedBytes = kTileBytes + kWideCols / 64 * kColumnStride + ladder::kSwizzleAtomBytes;

__global__ void wgmma_mn_major_probe_kernel(const bfloat16* a, const bfloat16* b, float* out) {
  KILN_DYNAMIC_SHARED_MEMORY(shared);
  unsigned char* const tiles = ladder::first_swizzle_atom(shared);
  unsigned char* const a_tile = tiles;
  unsigned char* const b_tile = tiles + kTileBytes;
  const int t = static_cast<int>(threadIdx.x);
  copy_a_tile(a_tile, a, t);
  // B's line k of column c: 64 n from 64 c, chunk t % 8 of it; thread t takes k = t / 8 + 16 i, both columns.
  for (int k = t / 8; k < kDepth; k += 16)
    for (int column = 0; column < kWideCols / 64; ++column)
      ladder::cp_async_16(b_tile + column * kColumnStride + ladder::swizzled_128b(k, t % 8),
                          b + k * kWideCols + 64 * column + 8 * (t % 8), true);
  ladder::cp_async_commit();
  ladder::cp_async_wait<0>();
  ladder::fence_proxy_async_shared();
  __syncthreads();

  float acc[kWideCols / 2] = {};
  ladder::wgmma_fence(acc);
  for (int k16 = 0; k16 < kDepth / 16; ++k16)
    ladder::wgmma_bf16<kWideCols, ladder::Major::K, ladder::Major::MN>(
        acc, ladder::k_major_128b_descriptor(a_tile + 32 * k16),
        ladder::mn_major_128b_descriptor(b_tile + 2048 * k16, kColumnStride), true);
  ladder::wgmma_commit_group();
  ladder::wgmma_wait<0>(acc);
  for (int i = 0; i < kWideCols / 2; ++i) out[accumulator_offset(t, i, kWideCols)] = acc[i];
}

// TF32 with A from registers: D[64, 128] = A[64, 32] B[128, 32]^T, B K-major in shared memory (128 lines of
// 32 floats), A never in shared memory: each thread fills its four registers per k8 slice from global memory
// through wgmma.cuh's fragment layout, a[i] = A(16 warp + group + 8 (i % 2), 8 j + quad + 4 (i / 2)). With
// `refill`, slice 0's registers are overwritten with zeros after its wgmma is issued and before the wait.
constexpr int kTf32Depth = 32, kTf32Slices = kTf32Depth / 8;
constexpr int kTf32SharedBytes = kWideCols * 128 + ladder::kSwizzleAtomBytes;

__global__ void wgmma_register_a_probe_kernel(bool refill, const float* a, const float* b, float* out) {
  KILN_DYNAMIC_SHARED_MEMORY(shared);
  unsigned char* const b_tile = ladder::first_swizzle_atom(shared);
  const int t = static_cast<int>(threadIdx.x);
  for (int n = t / 8; n < kWideCols; n += 16)
    ladder::cp_async_16(b_tile + ladder::swizzled_128b(n, t % 8), b + n * kTf32Depth + 4 * (t % 8), true);
  ladder::cp_async_commit();
  ladder::cp_async_wait<0>();
  ladder::fence_proxy_async_shared();
  __syncthreads();

  const int warp = t / 32, group = t % 32 / 4, quad = t % 4;
  float acc[kWideCols / 2] = {};
  std::uint32_t registers[kTf32Slices][4];
  for (int j = 0; j < kTf32Slices; ++j) {
    for (int i = 0; i < 4; ++i) {
      const int row = 16 * warp + group + 8 * (i % 2), k = 8 * j + quad + 4 * (i / 2);
      registers[j][i] = std::bit_cast<std::uint32_t>(a[row * kTf32Depth + k]);
    }
    ladder::wgmma_fence(acc);
    ladder::wgmma_tf32_register_a<kWideCols>(acc, registers[j],
                                             ladder::k_major_128b_descriptor(b_tile + 32 * j), true);
    ladder::wgmma_commit_group();
  }
  if (refill)
    for (std::uint32_t& value : registers[0]) value = 0;
  ladder::wgmma_wait<0>(acc);
  for (int i = 0; i < kWideCols / 2; ++i) out[accumulator_offset(t, i, kWideCols)] = acc[i];
}

struct ProbeResult {
  std::vector<float> out, early;
  std::string error;  // the emulator's error, or ""
};

ProbeResult run_probe(Probe probe) {
  std::vector<bfloat16> b;  // [16 n][64 k]: K-major
  for (int n = 0; n < kCols; ++n)
    for (int k = 0; k < kDepth; ++k) b.emplace_back(b_value(n, k));
  const testing::GuardedBuffer<bfloat16> a_buffer(a_operand(), true), b_buffer(b, true);
  ProbeResult result{std::vector<float>(kRows * kCols, -1.0f), std::vector<float>(kRows * kCols, -1.0f), ""};
  try {
    ladder::launch("wgmma probe", wgmma_probe_kernel, dim3(1), dim3(128), kSharedBytes, probe,
                   a_buffer.data(), b_buffer.data(), result.out.data(), result.early.data());
  } catch (const Error& error) {
    result.error = error.what();
  }
  return result;
}

TEST_CASE(
    "emulator: a wgmma on tiles in the documented 128-byte swizzle gives their product, in the documented "
    "accumulator layout, once waited for") {
  const ProbeResult result = run_probe(Probe::Product);
  REQUIRE(result.error == "");
  for (int m = 0; m < kRows; ++m) {
    for (int n = 0; n < kCols; ++n) {
      INFO("D(", m, ", ", n, ")");
      CHECK(result.out[static_cast<std::size_t>(m * kCols + n)] == product(m, n));
      // Read before the wait, the accumulators had not changed: the emulator computes at the wait.
      CHECK(result.early[static_cast<std::size_t>(m * kCols + n)] == kStale);
    }
  }
}

TEST_CASE("emulator: a wgmma with B MN-major (transposed) over two 64-wide columns gives the product") {
  std::vector<bfloat16> b;  // [64 k][128 n]: MN-major
  for (int k = 0; k < kDepth; ++k)
    for (int n = 0; n < kWideCols; ++n) b.emplace_back(b_value(n, k));
  const testing::GuardedBuffer<bfloat16> a_buffer(a_operand(), true), b_buffer(b, true);
  std::vector<float> out(kRows * kWideCols, -1.0f);
  REQUIRE_NOTHROW(ladder::launch("wgmma MN-major probe", wgmma_mn_major_probe_kernel, dim3(1), dim3(128),
                                 kWideSharedBytes, a_buffer.data(), b_buffer.data(), out.data()));
  for (int m = 0; m < kRows; ++m) {
    for (int n = 0; n < kWideCols; ++n) {
      INFO("D(", m, ", ", n, ")");
      CHECK(out[static_cast<std::size_t>(m * kWideCols + n)] == product(m, n));
    }
  }
}

TEST_CASE(
    "emulator: a TF32 wgmma with A in registers, filled through the documented fragment layout, gives the "
    "product; registers refilled before the wait change it") {
  std::vector<float> a, b;  // A [64 m][32 k], B [128 n][32 k]: small integers, exact in TF32 and in the sums
  for (int m = 0; m < kRows; ++m)
    for (int k = 0; k < kTf32Depth; ++k) a.push_back(a_value(m, k));
  for (int n = 0; n < kWideCols; ++n)
    for (int k = 0; k < kTf32Depth; ++k) b.push_back(b_value(n, k));
  const testing::GuardedBuffer<float> a_buffer(a, true), b_buffer(b, true);
  for (const bool refill : {false, true}) {
    std::vector<float> out(kRows * kWideCols, -1.0f);
    REQUIRE_NOTHROW(ladder::launch("wgmma register-A probe", wgmma_register_a_probe_kernel, dim3(1),
                                   dim3(128), kTf32SharedBytes, refill, a_buffer.data(), b_buffer.data(),
                                   out.data()));
    for (int m = 0; m < kRows; ++m) {
      for (int n = 0; n < kWideCols; ++n) {
        INFO("refill ", refill, ", D(", m, ", ", n, ")");
        float expected =
            0.0f;  // with the refill, slice 0 multiplied the zeros the registers held at the wait
        for (int k = refill ? 8 : 0; k < kTf32Depth; ++k) expected += a_value(m, k) * b_value(n, k);
        CHECK(out[static_cast<std::size_t>(m * kWideCols + n)] == expected);
      }
    }
  }
}

TEST_CASE(
    "emulator: a wgmma without wgmma_fence, or reading copies not fenced to the async proxy, is an error") {
  const ProbeResult no_fence = run_probe(Probe::NoFence);
  CHECK(no_fence.error.find("without a wgmma_fence") != std::string::npos);
  const ProbeResult unfenced = run_probe(Probe::UnfencedCopies);
  CHECK(unfenced.error.find("await fence_proxy_async_shared") != std::string::npos);
}

TEST_CASE("emulator: a cp.async into a tile an unretired wgmma reads is an error") {
  const ProbeResult result = run_probe(Probe::CopyIntoInFlightTile);
  CHECK(result.error.find("cp.async into shared memory that an issued wgmma reads") != std::string::npos);
}

TEST_CASE("emulator: a kernel that returns with wgmma in flight is an error") {
  const ProbeResult result = run_probe(Probe::NoWait);
  CHECK(result.error.find("wgmma still in flight") != std::string::npos);
}

}  // namespace

}  // namespace emulation_wgmma_emulation_test
