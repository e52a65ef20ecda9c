// The kernel ladders' very CUDA files run on the CPU (tests/emulation/cuda_emulator.cpp), in every CI,
// against the reference: the same cases and bounds as the GPU tests (tests/support/gemm_ladder_cases.hpp,
// conv2d_ladder_cases.hpp), with runners that hand the steps host memory. What the emulator validates:
// indexing, edges, tiling, barriers, the deferred landing of cp.async copies, the mma / ldmatrix fragment
// mapping against the layouts written in kernels/ladder/mma.cuh, the wgmma steps' swizzled tiles,
// descriptors and ordering against kernels/ladder/wgmma.cuh (whose own probes are in wgmma_emulation_test.cpp),
// and the tensor copies and mbarriers of the warp-specialized step against tma.cuh and mbarrier.cuh (probes
// in tma_emulation_test.cpp).
// What it cannot: speed, bank conflicts, the memory model beyond barriers, and whether those layouts are the
// hardware's (they were checked against the PTX ISA by hand; a GPU run of tests/cuda/*_ladder_test.cpp
// settles it).
//
// The operands live in guarded buffers: each ends flush against a page with no access (and starts one page
// after another), the inputs are read-only, so a read or write past either end, or a write to an input,
// faults at once instead of reading garbage quietly; the few bytes that 16-byte alignment leaves between
// the data and the guard are checked for stray writes after the launch.
//
// The last cases test the emulator itself: a tile read before its cp.async wait is stale, shuffles take the
// right lane, an mma on matrices built through the documented layouts gives their product, ldmatrix hands out
// the documented fragments, and a barrier that some threads skip is reported as a deadlock.

#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <bit>
#include <cmath>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "core/bfloat16.hpp"
#include "core/error.hpp"
#include "kernels/conv2d/ladder/ladder.hpp"
#include "kernels/gemm/ladder/ladder.hpp"
#include "kernels/ladder/cp_async.cuh"
#include "kernels/ladder/launch.cuh"
#include "kernels/ladder/mma.cuh"
#include "tests/emulation/cuda_emulator.hpp"
#include "tests/emulation/guarded_buffer.hpp"
#include "tests/support/conv2d_ladder_cases.hpp"
#include "tests/support/gemm_ladder_cases.hpp"

namespace emulation_ladder_emulation_test {

namespace {

using namespace kiln;
namespace ladder = kernels::ladder;
using testing::GuardedBuffer;

// An input as the step reads it: float, or bfloat16 for a bf16 step (exact: the values are bfloat16 already).
struct Operand {
  Operand(const std::vector<float>& values, bool bf16) {
    if (bf16) {
      narrow.emplace(testing::to_bfloat16(values), /*read_only=*/true);
    } else {
      wide.emplace(values, /*read_only=*/true);
    }
  }
  const void* data() const {
    return narrow ? static_cast<const void*>(narrow->data()) : static_cast<const void*>(wide->data());
  }
  bool margins_intact() const { return narrow ? narrow->margins_intact() : wide->margins_intact(); }
  std::optional<GuardedBuffer<float>> wide;
  std::optional<GuardedBuffer<bfloat16>> narrow;
};

// Runs a launch; a kiln::Error from it (a step not emulated, a deadlock, a cp.async outside the operands...)
// is a failure of the case, reported with its message.
template <typename Launch>
bool launched(const Launch& launch) {
  try {
    launch();
    return true;
  } catch (const Error& error) {
    FAIL_CHECK(std::string(error.what()));
    return false;
  }
}

std::vector<float> run_gemm_emulated(const kernels::gemm_ladder::Step& step,
                                     const kernels::gemm_ladder::Problem& problem,
                                     const std::vector<float>& a, const std::vector<float>& b,
                                     const std::vector<float>& c) {
  const bool bf16 = step.precision == ladder::Precision::Bf16;
  const Operand a_buffer(a, bf16), b_buffer(b, bf16);
  GuardedBuffer<float> c_buffer(c, /*read_only=*/false);
  if (!launched([&] { step.launch(problem, a_buffer.data(), b_buffer.data(), c_buffer.data()); }))
    return std::vector<float>(c.size(), std::numeric_limits<float>::quiet_NaN());
  CHECK_MESSAGE(c_buffer.margins_intact(), step.name, " wrote outside C");
  return c_buffer.values();
}

std::vector<float> run_conv2d_emulated(const kernels::conv2d_ladder::Step& step,
                                       const testing::Conv2dGeometry& g, const std::vector<float>& first,
                                       const std::vector<float>& second, std::int64_t output_count) {
  const bool bf16 = step.precision == ladder::Precision::Bf16;
  const Operand first_buffer(first, bf16), second_buffer(second, bf16);
  GuardedBuffer<float> output(
      std::vector<float>(static_cast<std::size_t>(output_count), std::numeric_limits<float>::quiet_NaN()),
      /*read_only=*/false);
  if (!launched([&] { step.launch(g, first_buffer.data(), second_buffer.data(), output.data()); }))
    return std::vector<float>(static_cast<std::size_t>(output_count),
                              std::numeric_limits<float>::quiet_NaN());
  CHECK_MESSAGE(output.margins_intact(), step.name, " wrote outside its output");
  return output.values();
}

TEST_CASE("emulated: gemm ladder: every step matches the reference over odd and aligned shapes") {
  REQUIRE(!kernels::gemm_ladder::steps().empty());
  testing::check_every_gemm_ladder_step(testing::gemm_ladder_problems(), /*seed=*/1000, /*minimum_cases=*/8,
                                        run_gemm_emulated);
}

TEST_CASE("emulated: conv2d ladder: every step of every pass matches the reference") {
  REQUIRE(!kernels::conv2d_ladder::steps().empty());
  testing::check_every_conv2d_ladder_step(/*seed=*/2000, /*minimum_cases=*/6, run_conv2d_emulated);
}

// ---- The emulator itself ---------------------------------------------------------------------------------

constexpr int kCopyFloats = 32 * 4;  // one warp, one 16-byte copy per lane

// Each lane copies 4 floats with cp.async into dynamic shared memory, then reads them back before waiting
// (stale: the poison), after waiting for all but the newest group, and after waiting for everything. The
// second copy (group 2) is zero-fill: in_bounds false.
__global__ void cp_async_probe_kernel(const float* source, float* before, float* between, float* after) {
  KILN_DYNAMIC_SHARED_MEMORY(shared);
  float* tile = reinterpret_cast<float*>(shared);  // [2][kCopyFloats]
  const int lane = static_cast<int>(threadIdx.x);
  ladder::cp_async_16(tile + 4 * lane, source + 4 * lane, true);
  ladder::cp_async_commit();
  ladder::cp_async_16(tile + kCopyFloats + 4 * lane, source, false);
  ladder::cp_async_commit();
  before[lane] = tile[4 * lane];
  ladder::cp_async_wait<1>();
  between[lane] = tile[4 * lane + 1];
  between[32 + lane] = tile[kCopyFloats + 4 * lane];  // still the poison: group 2 is in flight
  ladder::cp_async_wait<0>();
  after[lane] = tile[kCopyFloats + 4 * lane + 2];
}

TEST_CASE("emulator: a cp.async tile read before its wait is stale, and zero-fill copies write zeros") {
  std::vector<float> values(kCopyFloats);
  for (int i = 0; i < kCopyFloats; ++i) values[static_cast<std::size_t>(i)] = static_cast<float>(i + 1);
  const GuardedBuffer<float> source(values, /*read_only=*/true);  // device memory, as cp.async requires
  std::vector<float> before(32), between(64), after(32);
  ladder::launch("cp.async probe", cp_async_probe_kernel, dim3(1), dim3(32), 2 * kCopyFloats * sizeof(float),
                 source.data(), before.data(), between.data(), after.data());
  for (int lane = 0; lane < 32; ++lane) {
    INFO("lane ", lane);
    CHECK(std::isnan(before[static_cast<std::size_t>(lane)]));
    CHECK(between[static_cast<std::size_t>(lane)] == values[static_cast<std::size_t>(4 * lane + 1)]);
    CHECK(std::isnan(between[static_cast<std::size_t>(32 + lane)]));
    CHECK(after[static_cast<std::size_t>(lane)] == 0.0f);
  }
}

__global__ void cp_async_outside_kernel(const float* source) {
  KILN_DYNAMIC_SHARED_MEMORY(shared);
  ladder::cp_async_16(shared, source + 4, true);  // past the registered 4 floats
  ladder::cp_async_commit();
  ladder::cp_async_wait<0>();
}

TEST_CASE("emulator: a cp.async that reads outside the registered operands is an error") {
  const GuardedBuffer<float> source(std::vector<float>(8, 1.0f), true);  // registered as [0, 8)...
  emulation::unregister_device_buffer(source.data());
  emulation::register_device_buffer(source.data(), 4 * sizeof(float));  // ...then as [0, 4) only
  try {
    ladder::launch("cp.async outside", cp_async_outside_kernel, dim3(1), dim3(1), 16, source.data());
    FAIL("no error");
  } catch (const Error& error) {
    CHECK(std::string(error.what()).find("outside every operand") != std::string::npos);
  }
}

__global__ void shuffle_kernel(int* out) {
  const int lane = static_cast<int>(threadIdx.x);
  const int value = 100 + lane;
  out[lane] = __shfl_sync(0xffffffffu, value, (lane + 3) % 32);
  out[32 + lane] = __shfl_xor_sync(0xffffffffu, value, 5);
  out[64 + lane] = __shfl_down_sync(0xffffffffu, value, 4);
  out[96 + lane] = __shfl_up_sync(0xffffffffu, value, 2, 8);  // segments of 8 lanes
  out[128 + lane] = static_cast<int>(__shfl_sync(0xffffffffu, static_cast<float>(value), 0));
}

TEST_CASE("emulator: warp shuffles take the right lane's value") {
  std::vector<int> out(160);
  ladder::launch("shuffle", shuffle_kernel, dim3(1), dim3(32), 0, out.data());
  for (int lane = 0; lane < 32; ++lane) {
    INFO("lane ", lane);
    const auto at = [&](int i) { return out[static_cast<std::size_t>(i)]; };
    CHECK(at(lane) == 100 + (lane + 3) % 32);
    CHECK(at(32 + lane) == 100 + (lane ^ 5));
    CHECK(at(64 + lane) == 100 + (lane + 4 < 32 ? lane + 4 : lane));
    CHECK(at(96 + lane) == 100 + (lane % 8 >= 2 ? lane - 2 : lane));
    CHECK(at(128 + lane) == 100);
  }
}

// One mma on whole matrices handed in through the layouts of mma.cuh: lane l = 4 group + thread.
__global__ void mma_tf32_kernel(const float* a, const float* b, float* d) {  // a [16, 8], b [8, 8], d [16, 8]
  const int lane = static_cast<int>(threadIdx.x), group = lane / 4, thread = lane % 4;
  const std::uint32_t a_frag[4] = {
      ladder::to_tf32(a[group * 8 + thread]), ladder::to_tf32(a[(group + 8) * 8 + thread]),
      ladder::to_tf32(a[group * 8 + thread + 4]), ladder::to_tf32(a[(group + 8) * 8 + thread + 4])};
  const std::uint32_t b_frag[2] = {ladder::to_tf32(b[thread * 8 + group]),
                                   ladder::to_tf32(b[(thread + 4) * 8 + group])};
  float c[4] = {1.0f, 1.0f, 1.0f, 1.0f};
  ladder::mma_m16n8k8_tf32(c, a_frag, b_frag);
  d[group * 8 + 2 * thread] = c[0];
  d[group * 8 + 2 * thread + 1] = c[1];
  d[(group + 8) * 8 + 2 * thread] = c[2];
  d[(group + 8) * 8 + 2 * thread + 1] = c[3];
}

std::uint32_t bf16_pair(const std::vector<float>& m, int first, int second) {
  return static_cast<std::uint32_t>(bfloat16(m[static_cast<std::size_t>(first)]).bits) |
         static_cast<std::uint32_t>(bfloat16(m[static_cast<std::size_t>(second)]).bits) << 16;
}

__global__ void mma_bf16_kernel(const float* a_values, const float* b_values,
                                float* d) {  // a [16, 16], b [16, 8]
  const std::vector<float> a(a_values, a_values + 256), b(b_values, b_values + 128);
  const int lane = static_cast<int>(threadIdx.x), group = lane / 4, thread = lane % 4;
  const auto at_a = [](int row, int col) { return row * 16 + col; };
  const auto at_b = [](int row, int col) { return row * 8 + col; };
  const std::uint32_t a_frag[4] = {
      bf16_pair(a, at_a(group, 2 * thread), at_a(group, 2 * thread + 1)),
      bf16_pair(a, at_a(group + 8, 2 * thread), at_a(group + 8, 2 * thread + 1)),
      bf16_pair(a, at_a(group, 2 * thread + 8), at_a(group, 2 * thread + 9)),
      bf16_pair(a, at_a(group + 8, 2 * thread + 8), at_a(group + 8, 2 * thread + 9))};
  const std::uint32_t b_frag[2] = {bf16_pair(b, at_b(2 * thread, group), at_b(2 * thread + 1, group)),
                                   bf16_pair(b, at_b(2 * thread + 8, group), at_b(2 * thread + 9, group))};
  float c[4] = {};
  ladder::mma_m16n8k16_bf16(c, a_frag, b_frag);
  d[group * 8 + 2 * thread] = c[0];
  d[group * 8 + 2 * thread + 1] = c[1];
  d[(group + 8) * 8 + 2 * thread] = c[2];
  d[(group + 8) * 8 + 2 * thread + 1] = c[3];
}

// Small integers: exact in TF32 and bfloat16, so the product is exact.
std::vector<float> small_integers(int count, int seed) {
  std::vector<float> values(static_cast<std::size_t>(count));
  for (int i = 0; i < count; ++i)
    values[static_cast<std::size_t>(i)] = static_cast<float>((i * 7 + seed) % 9 - 4);
  return values;
}

TEST_CASE("emulator: an mma on matrices built through the documented layouts gives their product") {
  SUBCASE("tf32 m16n8k8: identity rows times B, and a general product, plus C = 1") {
    std::vector<float> a(16 * 8, 0.0f), b = small_integers(64, 3), d(16 * 8);
    for (int i = 0; i < 16; ++i) a[static_cast<std::size_t>(i * 8 + i % 8)] = 1.0f;  // A = [I; I]
    ladder::launch("mma tf32 probe", mma_tf32_kernel, dim3(1), dim3(32), 0, a.data(), b.data(), d.data());
    for (int i = 0; i < 16; ++i)
      for (int j = 0; j < 8; ++j)
        CHECK(d[static_cast<std::size_t>(i * 8 + j)] == b[static_cast<std::size_t>(i % 8 * 8 + j)] + 1.0f);
    a = small_integers(128, 5);
    ladder::launch("mma tf32 probe", mma_tf32_kernel, dim3(1), dim3(32), 0, a.data(), b.data(), d.data());
    for (int i = 0; i < 16; ++i)
      for (int j = 0; j < 8; ++j) {
        float expected = 1.0f;
        for (int k = 0; k < 8; ++k)
          expected += a[static_cast<std::size_t>(i * 8 + k)] * b[static_cast<std::size_t>(k * 8 + j)];
        CHECK(d[static_cast<std::size_t>(i * 8 + j)] == expected);
      }
  }
  SUBCASE("bf16 m16n8k16: a general product") {
    const std::vector<float> a = small_integers(256, 1), b = small_integers(128, 2);
    std::vector<float> d(16 * 8);
    ladder::launch("mma bf16 probe", mma_bf16_kernel, dim3(1), dim3(32), 0, a.data(), b.data(), d.data());
    for (int i = 0; i < 16; ++i)
      for (int j = 0; j < 8; ++j) {
        float expected = 0.0f;
        for (int k = 0; k < 16; ++k)
          expected += a[static_cast<std::size_t>(i * 16 + k)] * b[static_cast<std::size_t>(k * 8 + j)];
        CHECK(d[static_cast<std::size_t>(i * 8 + j)] == expected);
      }
  }
}

TEST_CASE("emulator: to_tf32 rounds to nearest, ties away from zero, to 10 mantissa bits") {
  const auto tf32 = [](std::uint32_t bits) { return ladder::to_tf32(std::bit_cast<float>(bits)); };
  CHECK(tf32(0x3f800fffu) == 0x3f800000u);  // below half a unit: down
  CHECK(tf32(0x3f801000u) == 0x3f802000u);  // a tie: away from zero
  CHECK(tf32(0xbf801000u) == 0xbf802000u);  // negative tie: away from zero
  CHECK(tf32(0x3f803000u) == 0x3f804000u);  // a tie with an odd kept bit: up as well (not to even)
  CHECK(tf32(0x3fffffffu) == 0x40000000u);  // carries into the exponent
  CHECK(tf32(0x7f800000u) == 0x7f800000u);  // infinity stays
}

// ldmatrix from a 16 x 16 bfloat16 tile whose element (r, c) holds r * 16 + c: lane l names row l % 16 at
// column 8 (l / 16), as mma.cuh describes for an A tile.
__global__ void ldmatrix_kernel(std::uint32_t* out) {
  __shared__ __align__(16) std::uint16_t tile[16][16];
  const int lane = static_cast<int>(threadIdx.x);
  for (int c = 0; c < 16; ++c) tile[lane % 16][c] = static_cast<std::uint16_t>(lane % 16 * 16 + c);
  __syncthreads();
  std::uint32_t r[4];
  ladder::ldmatrix_x4(r, &tile[lane % 16][8 * (lane / 16)]);
  for (int i = 0; i < 4; ++i) out[lane * 8 + i] = r[i];
  ladder::ldmatrix_x4_trans(r, &tile[lane % 16][8 * (lane / 16)]);
  for (int i = 0; i < 4; ++i) out[lane * 8 + 4 + i] = r[i];
}

TEST_CASE("emulator: ldmatrix hands each lane its documented fragment") {
  std::vector<std::uint32_t> out(32 * 8);
  ladder::launch("ldmatrix probe", ldmatrix_kernel, dim3(1), dim3(32), 0, out.data());
  const auto pair = [](int row0, int col0, int row1, int col1) {
    return static_cast<std::uint32_t>(row0 * 16 + col0) | static_cast<std::uint32_t>(row1 * 16 + col1) << 16;
  };
  for (int lane = 0; lane < 32; ++lane) {
    INFO("lane ", lane);
    const int group = lane / 4, thread = lane % 4;
    const auto at = [&](int i) { return out[static_cast<std::size_t>(lane * 8 + i)]; };
    // Not transposed: r[0..3] = a[0..3] of m16n8k16 (mma.cuh).
    CHECK(at(0) == pair(group, 2 * thread, group, 2 * thread + 1));
    CHECK(at(1) == pair(group + 8, 2 * thread, group + 8, 2 * thread + 1));
    CHECK(at(2) == pair(group, 2 * thread + 8, group, 2 * thread + 9));
    CHECK(at(3) == pair(group + 8, 2 * thread + 8, group + 8, 2 * thread + 9));
    // Transposed, matrix i at rows 8 (i % 2), cols 8 (i / 2): (rows 2 thread + {0, 1}, col group).
    for (int i = 0; i < 4; ++i) {
      const int row = 8 * (i % 2) + 2 * thread, col = 8 * (i / 2) + group;
      CHECK(at(4 + i) == pair(row, col, row + 1, col));
    }
  }
}

__global__ void early_return_kernel() {
  if (threadIdx.x == 5) return;
  __syncthreads();
}

__global__ void divergent_warp_kernel(int* out) {
  if (threadIdx.x % 2 == 0) {
    out[threadIdx.x] = __shfl_sync(0xffffffffu, 1, 0);
  } else {
    __syncwarp();
  }
}

TEST_CASE("emulator: a barrier some threads never reach, and a warp whose lanes diverge, are errors") {
  try {
    ladder::launch("early return", early_return_kernel, dim3(2), dim3(64), 0);
    FAIL("no error");
  } catch (const Error& error) {
    const std::string message = error.what();
    CHECK(message.find("deadlock in early return") != std::string::npos);
    CHECK(message.find("63 of 64 threads stuck at __syncthreads") != std::string::npos);
  }
  std::vector<int> out(32);
  try {
    ladder::launch("divergent warp", divergent_warp_kernel, dim3(1), dim3(32), 0, out.data());
    FAIL("no error");
  } catch (const Error& error) {
    CHECK(std::string(error.what()).find("diverged") != std::string::npos);
  }
}

__global__ void read_past_end_kernel(const float* data, int count, float* out) { out[0] = data[count]; }

TEST_CASE("emulator: a read one element past a guarded buffer faults") {
  const GuardedBuffer<float> data(std::vector<float>(12, 1.0f), true);  // 48 bytes: flush against the guard
  std::vector<float> out(1);
  std::fflush(nullptr);
  const pid_t child = fork();
  REQUIRE(child >= 0);
  if (child == 0) {
    signal(SIGSEGV, SIG_DFL);
    const int null_fd = open("/dev/null", O_WRONLY);
    dup2(null_fd, STDERR_FILENO);
    ladder::launch("read past end", read_past_end_kernel, dim3(1), dim3(1), 0, data.data(), 12, out.data());
    _exit(0);  // not reached: the read faults
  }
  int status = 0;
  REQUIRE(waitpid(child, &status, 0) == child);
  CHECK(WIFSIGNALED(status));
  CHECK(WTERMSIG(status) == SIGSEGV);
}

}  // namespace

}  // namespace emulation_ladder_emulation_test
