// The emulator's tensor copies and mbarriers (kernels/ladder/tma.cuh, mbarrier.cuh; tests/emulation/
// cuda_emulator.cpp): a box copied through a tensor map lands in the documented swizzle (128-byte lines, and
// for a rank-4 box with steps 64- and 32-byte lines too; 32 floats a line from a float tensor) with zeros
// outside the tensor, negative coordinates included, only once a thread waits on its barrier; a wgmma reads
// it with no proxy fence; and the uses the
// GPU leaves undefined or hangs on are errors here: a barrier used before its initialization is published,
// expect_tx announcing too few or too many bytes, one arrival too many, a destination off 128 bytes, a copy
// into a tile an unretired wgmma reads, a wgmma on a tile whose copy has not landed, a block that ends with
// copies in flight, a warpgroup that disagrees at setmaxnreg; and a map whose tensor breaks the copy
// engine's rules is refused.
#include <doctest/doctest.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "core/bfloat16.hpp"
#include "core/error.hpp"
#include "kernels/ladder/launch.cuh"
#include "kernels/ladder/mbarrier.cuh"
#include "kernels/ladder/tma.cuh"
#include "kernels/ladder/warpgroup_registers.cuh"
#include "kernels/ladder/wgmma.cuh"
#include "tests/emulation/guarded_buffer.hpp"

namespace emulation_tma_emulation_test {

namespace {

using namespace kiln;
namespace ladder = kernels::ladder;

// The matrix: 70 rows of 72 columns (rows 144 bytes apart: a multiple of 16, not of 128). The box: 64 lines
// of 64 columns, 8 KiB, then the barrier word.
constexpr int kMatrixRows = 70, kMatrixColumns = 72;
constexpr int kBoxRows = 64, kBoxColumns = ladder::kTmaBoxColumns;
constexpr int kBoxBytes = kBoxRows * ladder::kTmaLineBytes;
constexpr int kSharedBytes = kBoxBytes + 8 + ladder::kSwizzleAtomBytes;
constexpr std::uint16_t kPoisonBits = 0xffff;  // the emulator's shared-memory poison, as a bfloat16

enum class Probe {
  Copy,                 // copy the box, wait, read it back
  UnpublishedBarrier,   // no fence_mbarrier_init
  NoBarrierSync,        // no __syncthreads after the fence
  TooFewBytes,          // expect_tx 128 bytes short
  TooManyBytes,         // expect_tx 128 bytes over: the phase never completes
  ExtraArrival,         // a second arrival on a barrier of one
  MisalignedBox,        // destination 16 bytes past an atom
  NoWait,               // return with the copy in flight
  WgmmaOnBox,           // a wgmma on the landed box, with no proxy fence
  CopyIntoReadTile,     // as WgmmaOnBox, and a copy into the box before the wgmma's wait
  WgmmaBeforeWait,      // a wgmma on the box before anyone waits for its copy
  DisagreeingRegisters  // half the warpgroup releases registers, half claims them
};

float matrix_value(int row, int column) { return static_cast<float>((row * 5 + column * 3) % 13 - 6); }

std::vector<bfloat16> matrix() {
  std::vector<bfloat16> values;
  for (int r = 0; r < kMatrixRows; ++r)
    for (int c = 0; c < kMatrixColumns; ++c) values.emplace_back(matrix_value(r, c));
  return values;
}

// 128 threads. Copies the box at (row, column) of `map`; `early` gets the box's lines as read before the
// wait, `out` as read after, both unswizzled by wgmma.cuh's swizzled_128b ([64][64] bfloat16 bits each).
// For WgmmaOnBox, product [64][16] gets D = box[0:64, :] box[0:16, :]^T.
__global__ void tma_probe_kernel(Probe probe, const __grid_constant__ ladder::TensorMap map, int row,
                                 int column, std::uint16_t* early, std::uint16_t* out, float* product) {
  KILN_DYNAMIC_SHARED_MEMORY(shared);
  unsigned char* const box = ladder::first_swizzle_atom(shared);
  auto* const barrier = reinterpret_cast<std::uint64_t*>(box + kBoxBytes);
  const int t = static_cast<int>(threadIdx.x);
  if (probe == Probe::DisagreeingRegisters) {
    if (t % 2 == 0) {
      ladder::warpgroup_release_registers<40>();
    } else {
      ladder::warpgroup_claim_registers<232>();
    }
    return;
  }
  if (t == 0) {
    ladder::mbarrier_init(barrier, 1);
    if (probe != Probe::UnpublishedBarrier) ladder::fence_mbarrier_init();
  }
  if (probe != Probe::NoBarrierSync) __syncthreads();
  if (t == 0) {
    int bytes = kBoxBytes;
    if (probe == Probe::TooFewBytes) bytes -= 128;
    if (probe == Probe::TooManyBytes) bytes += 128;
    ladder::mbarrier_arrive_expect_tx(barrier, bytes);
    if (probe == Probe::ExtraArrival) ladder::mbarrier_arrive(barrier);
    ladder::tma_load(probe == Probe::MisalignedBox ? box + 16 : box, map, {column, row}, barrier);
  }
  if (probe == Probe::WgmmaBeforeWait) {
    float acc[8] = {};
    ladder::wgmma_fence(acc);
    ladder::wgmma_bf16<16>(acc, ladder::k_major_128b_descriptor(box), ladder::k_major_128b_descriptor(box),
                           true);
    ladder::wgmma_commit_group();
    ladder::mbarrier_wait(barrier, 0);  // lands the copy under the wgmma
    ladder::wgmma_wait<0>(acc);
    return;
  }
  // Thread t reads chunk t % 8 of lines t / 8, t / 8 + 16, ...
  const auto read_box = [&](std::uint16_t* into) {
    for (int line = t / 8; line < kBoxRows; line += 16)
      std::memcpy(into + line * kBoxColumns + 8 * (t % 8), box + ladder::swizzled_128b(line, t % 8), 16);
  };
  read_box(early);
  if (probe == Probe::NoWait) return;
  __syncthreads();  // every early read before anyone waits: the emulator lands the copy at the first wait
  ladder::mbarrier_wait(barrier, 0);
  read_box(out);
  if (probe != Probe::WgmmaOnBox && probe != Probe::CopyIntoReadTile) return;

  // The box as A (64 rows, K-major) and its first 16 lines as B (K-major): D = A B^T, k < 64.
  float acc[8] = {};
  ladder::wgmma_fence(acc);
  for (int k16 = 0; k16 < 4; ++k16)
    ladder::wgmma_bf16<16>(acc, ladder::k_major_128b_descriptor(box + 32 * k16),
                           ladder::k_major_128b_descriptor(box + 32 * k16), true);
  ladder::wgmma_commit_group();
  if (probe == Probe::CopyIntoReadTile && t == 0) {  // the next box into the tile it reads, before the wait
    ladder::mbarrier_arrive_expect_tx(barrier, kBoxBytes);
    ladder::tma_load(box, map, {column, row}, barrier);
  }
  ladder::wgmma_wait<0>(acc);
  const int warp = t / 32, group = t % 32 / 4, quad = t % 4;
  for (int i = 0; i < 8; ++i)
    product[(16 * warp + group + 8 * (i / 2 % 2)) * 16 + 8 * (i / 4) + 2 * quad + i % 2] = acc[i];
}

struct ProbeResult {
  std::vector<std::uint16_t> early, out;
  std::vector<float> product;
  std::string error;  // the emulator's error, or ""
};

ProbeResult run_probe(Probe probe, int row, int column) {
  const testing::GuardedBuffer<bfloat16> source(matrix(), true);
  ProbeResult result{std::vector<std::uint16_t>(kBoxRows * kBoxColumns, 1),
                     std::vector<std::uint16_t>(kBoxRows * kBoxColumns, 1),
                     std::vector<float>(64 * 16, -1.0f), ""};
  try {
    const ladder::TensorMap map = ladder::bf16_tensor_map_128b(
        source.data(), ladder::matrix_shape(kMatrixRows, kMatrixColumns, kBoxRows));
    ladder::launch("tma probe", tma_probe_kernel, dim3(1), dim3(128), kSharedBytes, probe, map, row, column,
                   result.early.data(), result.out.data(), result.product.data());
  } catch (const Error& error) {
    result.error = error.what();
  }
  return result;
}

std::uint16_t bits_of(float value) {
  const bfloat16 narrow(value);
  return narrow.bits;
}

// The box at (row, column) as the copy engine delivers it: the matrix where it exists, zeros elsewhere.
std::uint16_t expected_bits(int row, int column, int line, int element) {
  const int r = row + line, c = column + element;
  const bool inside = r >= 0 && r < kMatrixRows && c >= 0 && c < kMatrixColumns;
  return inside ? bits_of(matrix_value(r, c)) : std::uint16_t{0};
}

TEST_CASE(
    "emulator: a tensor copy lands in the documented 128-byte swizzle, zeros outside the matrix, once a "
    "thread "
    "waits on its barrier") {
  // Corners: inside; hanging over the last rows and columns; starting at negative coordinates.
  const int corners[][2] = {{0, 0}, {3, 8}, {20, 40}, {-5, -16}, {-60, 60}};
  for (const auto& corner : corners) {
    const int row = corner[0], column = corner[1];
    INFO("box at (", row, ", ", column, ")");
    const ProbeResult result = run_probe(Probe::Copy, row, column);
    REQUIRE(result.error == "");
    int mismatches = 0, not_poison = 0;
    for (int line = 0; line < kBoxRows; ++line) {
      for (int element = 0; element < kBoxColumns; ++element) {
        const auto i = static_cast<std::size_t>(line * kBoxColumns + element);
        if (result.out[i] != expected_bits(row, column, line, element)) ++mismatches;
        if (result.early[i] != kPoisonBits) ++not_poison;  // read before the wait: nothing had landed
      }
    }
    CHECK(mismatches == 0);
    CHECK(not_poison == 0);
  }
}

TEST_CASE(
    "emulator: a wgmma reads a landed box with no proxy fence; a copy into the box while it reads, or a "
    "wgmma "
    "on it before its copy was waited for, is an error") {
  const int row = 2, column = 8;
  const ProbeResult result = run_probe(Probe::WgmmaOnBox, row, column);
  REQUIRE(result.error == "");
  const auto value = [&](int line, int element) {
    return static_cast<float>(bfloat16::from_bits(expected_bits(row, column, line, element)));
  };
  for (int m = 0; m < 64; ++m) {
    for (int n = 0; n < 16; ++n) {
      float sum = 0.0f;  // small integers: exact in any order
      for (int k = 0; k < kBoxColumns; ++k) sum += value(m, k) * value(n, k);
      INFO("D(", m, ", ", n, ")");
      CHECK(result.product[static_cast<std::size_t>(m * 16 + n)] == sum);
    }
  }
  CHECK(run_probe(Probe::CopyIntoReadTile, row, column)
            .error.find("tma_load into shared memory that an issued wgmma reads") != std::string::npos);
  CHECK(run_probe(Probe::WgmmaBeforeWait, row, column).error.find("whose tensor copy had not landed") !=
        std::string::npos);
}

TEST_CASE("emulator: barriers used before they are published, or with the wrong counts, are errors") {
  CHECK(run_probe(Probe::UnpublishedBarrier, 0, 0).error.find("before its initialization was published") !=
        std::string::npos);
  CHECK(run_probe(Probe::NoBarrierSync, 0, 0).error.find("before its initialization was published") !=
        std::string::npos);
  CHECK(run_probe(Probe::TooFewBytes, 0, 0).error.find("128 bytes more than mbarrier_arrive_expect_tx") !=
        std::string::npos);
  const std::string hang = run_probe(Probe::TooManyBytes, 0, 0).error;
  CHECK(hang.find("deadlock") != std::string::npos);
  CHECK(hang.find("still waits for 0 arrivals and 128 transaction bytes") != std::string::npos);
  CHECK(run_probe(Probe::ExtraArrival, 0, 0).error.find("one arrival more than the 1") != std::string::npos);
}

TEST_CASE(
    "emulator: a box off 128 bytes, a block ending with copies in flight, and setmaxnreg disagreement are "
    "errors") {
  CHECK(run_probe(Probe::MisalignedBox, 0, 0).error.find("does not start on 128 bytes") != std::string::npos);
  CHECK(run_probe(Probe::NoWait, 0, 0).error.find("tensor copies in flight") != std::string::npos);
  CHECK(run_probe(Probe::DisagreeingRegisters, 0, 0).error.find("setmaxnreg") != std::string::npos);
}

// An NHWC activation x [3][9][10][72] read as a strided convolution's tile: a box of 64 channels from c0,
// 4 columns every 2nd from w0, 4 rows every 3rd from h0, 2 images from n0 (32 lines): x's rank-4 map.
constexpr int kImages = 3, kHeight = 9, kWidth = 10, kChannels = 72;
constexpr int kBoxW = 4, kStepW = 2, kBoxH = 4, kStepH = 3, kBoxN = 2;
constexpr int kStridedLines = kBoxW * kBoxH * kBoxN;

float activation(int n, int h, int w, int c) {
  return static_cast<float>((n * 7 + h * 5 + w * 3 + c) % 11 - 5);
}

// Lines of `line_elements` channels: 64 (128 bytes), or 32 and 16 in the 64- and 32-byte swizzles.
ladder::TensorMapShape activation_shape(int line_elements = ladder::kTmaBoxColumns) {
  ladder::TensorMapShape shape;
  shape.rank = 4;
  const std::int64_t sizes[] = {kChannels, kWidth, kHeight, kImages};
  const std::int64_t strides[] = {1, kChannels, std::int64_t{kWidth} * kChannels,
                                  std::int64_t{kHeight} * kWidth * kChannels};
  const int box[] = {line_elements, kBoxW, kBoxH, kBoxN}, steps[] = {1, kStepW, kStepH, 1};
  for (int i = 0; i < 4; ++i) {
    shape.sizes[i] = sizes[i];
    shape.strides[i] = strides[i];
    shape.box[i] = box[i];
    shape.steps[i] = steps[i];
  }
  return shape;
}

// Every thread: the box of `map` at `coordinates` into `box` (`bytes` of it), the barrier in the 8 bytes
// after it, returning once it has landed.
template <int Rank>
__device__ void copy_box(unsigned char* box, int bytes, const ladder::TensorMap& map,
                         const int (&coordinates)[Rank]) {
  auto* const barrier = reinterpret_cast<std::uint64_t*>(box + bytes);
  const bool first = threadIdx.x == 0;
  if (first) {
    ladder::mbarrier_init(barrier, 1);
    ladder::fence_mbarrier_init();
  }
  __syncthreads();
  if (first) {
    ladder::mbarrier_arrive_expect_tx(barrier, bytes);
    ladder::tma_load(box, map, coordinates, barrier);
  }
  ladder::mbarrier_wait(barrier, 0);
}

// 128 threads; out [32 lines][64] gets the box's lines of line_bytes as landed, unswizzled by wgmma.cuh's
// swizzled(line, chunk, line_bytes).
__global__ void strided_box_kernel(const __grid_constant__ ladder::TensorMap map, int line_bytes, int c0,
                                   int w0, int h0, int n0, std::uint16_t* out) {
  KILN_DYNAMIC_SHARED_MEMORY(shared);
  unsigned char* const box = ladder::first_swizzle_atom(shared);
  const int t = static_cast<int>(threadIdx.x);
  copy_box(box, kStridedLines * line_bytes, map, {c0, w0, h0, n0});
  const int chunks = line_bytes / 16;
  for (int i = t; i < kStridedLines * chunks; i += 128) {
    const int line = i / chunks, chunk = i % chunks;
    std::memcpy(out + line * kBoxColumns + 8 * chunk, box + ladder::swizzled(line, chunk, line_bytes), 16);
  }
}

TEST_CASE(
    "emulator: a rank-4 tensor copy with steps takes every step-th element along each dimension, lines "
    "ordered dimension 1 fastest, zeros outside, in 128-, 64- and 32-byte lines") {
  std::vector<bfloat16> x;
  for (int n = 0; n < kImages; ++n)
    for (int h = 0; h < kHeight; ++h)
      for (int w = 0; w < kWidth; ++w)
        for (int c = 0; c < kChannels; ++c) x.emplace_back(activation(n, h, w, c));
  const testing::GuardedBuffer<bfloat16> source(x, true);
  // Corners: inside; hanging over every edge, from negative coordinates (a padded convolution's first tile).
  const int corners[][4] = {{0, 0, 0, 0}, {8, 3, 1, 1}, {40, -3, -4, 2}, {-16, 7, 5, -1}};
  for (const int line_elements : {64, 32, 16})
    for (const auto& corner : corners) {
      INFO(line_elements, " elements a line, box at (", corner[0], ", ", corner[1], ", ", corner[2], ", ",
           corner[3], ")");
      const ladder::TensorMap map =
          ladder::bf16_tensor_map_128b(source.data(), activation_shape(line_elements));
      const int line_bytes = 2 * line_elements;
      std::vector<std::uint16_t> out(kStridedLines * kBoxColumns, 0);
      REQUIRE_NOTHROW(ladder::launch("strided box", strided_box_kernel, dim3(1), dim3(128),
                                     kStridedLines * line_bytes + 8 + ladder::kSwizzleAtomBytes, map,
                                     line_bytes, corner[0], corner[1], corner[2], corner[3], out.data()));
      int mismatches = 0;
      for (int line = 0; line < kStridedLines; ++line) {
        const int w = corner[1] + line % kBoxW * kStepW, h = corner[2] + line / kBoxW % kBoxH * kStepH,
                  n = corner[3] + line / (kBoxW * kBoxH);
        for (int e = 0; e < line_elements; ++e) {
          const int c = corner[0] + e;
          const bool inside = n >= 0 && n < kImages && h >= 0 && h < kHeight && w >= 0 && w < kWidth &&
                              c >= 0 && c < kChannels;
          const std::uint16_t expected = inside ? bits_of(activation(n, h, w, c)) : std::uint16_t{0};
          if (out[static_cast<std::size_t>(line * kBoxColumns + e)] != expected) ++mismatches;
        }
      }
      CHECK(mismatches == 0);
    }
}

// A float tensor: 32 lines of 32 floats (128 bytes), 4 KiB, from the matrix as floats; out [32][32] gets the
// box unswizzled by swizzled_128b.
constexpr int kFloatBoxLines = 32, kFloatLine = ladder::kTmaLineBytes / 4;
constexpr int kFloatBoxBytes = kFloatBoxLines * ladder::kTmaLineBytes;

__global__ void float_box_kernel(const __grid_constant__ ladder::TensorMap map, int row, int column,
                                 float* out) {
  KILN_DYNAMIC_SHARED_MEMORY(shared);
  unsigned char* const box = ladder::first_swizzle_atom(shared);
  const int t = static_cast<int>(threadIdx.x);
  copy_box(box, kFloatBoxBytes, map, {column, row});
  for (int i = t; i < kFloatBoxLines * 8; i += 128)
    std::memcpy(out + i / 8 * kFloatLine + 4 * (i % 8), box + ladder::swizzled_128b(i / 8, i % 8), 16);
}

TEST_CASE("emulator: a float tensor copy lands 32 floats a line in the 128-byte swizzle, zeros outside") {
  std::vector<float> values;
  for (int r = 0; r < kMatrixRows; ++r)
    for (int c = 0; c < kMatrixColumns; ++c) values.push_back(matrix_value(r, c));
  const testing::GuardedBuffer<float> source(values, true);
  const ladder::TensorMap map = ladder::float_tensor_map_128b(
      source.data(),
      ladder::matrix_shape(kMatrixRows, kMatrixColumns, kFloatBoxLines, ladder::TmaElement::Float));
  const int corners[][2] = {{0, 0}, {50, 50}, {-5, -8}};
  for (const auto& corner : corners) {
    const int row = corner[0], column = corner[1];
    INFO("box at (", row, ", ", column, ")");
    std::vector<float> out(kFloatBoxLines * kFloatLine, -1.0f);
    REQUIRE_NOTHROW(ladder::launch("float box", float_box_kernel, dim3(1), dim3(128),
                                   kFloatBoxBytes + 8 + ladder::kSwizzleAtomBytes, map, row, column,
                                   out.data()));
    int mismatches = 0;
    for (int line = 0; line < kFloatBoxLines; ++line) {
      for (int e = 0; e < kFloatLine; ++e) {
        const int r = row + line, c = column + e;
        const bool inside = r >= 0 && r < kMatrixRows && c >= 0 && c < kMatrixColumns;
        if (out[static_cast<std::size_t>(line * kFloatLine + e)] != (inside ? matrix_value(r, c) : 0.0f))
          ++mismatches;
      }
    }
    CHECK(mismatches == 0);
  }
}

TEST_CASE("tensor map: a tensor the copy engine cannot address is refused, naming the rule") {
  {
    const std::vector<float> values(kMatrixRows * kMatrixColumns, 1.0f);
    const testing::GuardedBuffer<float> floats(values, true);
    CHECK_THROWS_WITH_AS(
        ladder::float_tensor_map_128b(floats.data(),
                                      ladder::matrix_shape(kMatrixRows, 70, 32, ladder::TmaElement::Float)),
        doctest::Contains("multiple of 4"), Error);
    CHECK_THROWS_WITH_AS(
        ladder::float_tensor_map_128b(floats.data(), ladder::matrix_shape(kMatrixRows, kMatrixColumns, 32)),
        doctest::Contains("a float tensor described as bfloat16"), Error);
  }
  const testing::GuardedBuffer<bfloat16> source(matrix(), true);
  CHECK_THROWS_WITH_AS(ladder::bf16_tensor_map_128b(source.data(), ladder::matrix_shape(kMatrixRows, 70, 64)),
                       doctest::Contains("multiple of 8"), Error);
  CHECK_THROWS_WITH_AS(
      ladder::bf16_tensor_map_128b(source.data() + 1, ladder::matrix_shape(kMatrixRows, 64, 64)),
      doctest::Contains("16 bytes"), Error);
  CHECK_THROWS_WITH_AS(
      ladder::bf16_tensor_map_128b(source.data(), ladder::matrix_shape(kMatrixRows, 64, 300)),
      doctest::Contains("1 to 256 elements spanned"), Error);
  ladder::TensorMapShape stepped = activation_shape();
  stepped.steps[2] = 9;
  CHECK_THROWS_WITH_AS(ladder::bf16_tensor_map_128b(source.data(), stepped), doctest::Contains("(1 to 8)"),
                       Error);
  stepped.steps[2] = 8;
  stepped.box[2] = 40;  // spans 320 elements
  CHECK_THROWS_WITH_AS(ladder::bf16_tensor_map_128b(source.data(), stepped),
                       doctest::Contains("1 to 256 elements spanned"), Error);
}

}  // namespace

}  // namespace emulation_tma_emulation_test
