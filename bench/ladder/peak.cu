// The measured peaks of peak.hpp: three kernels that do nothing but one arithmetic instruction, from
// registers, with enough independent chains to keep every issue slot busy, on every multiprocessor.
//
//   ffma_kernel      256 threads x 8 blocks per multiprocessor (2048 threads, the most an SM holds), each
//                    thread 8 independent FFMA chains: 64 warps x 8 chains far exceed the 4 sub-partitions x
//                    ~4 cycles of latency that must be covered.
//   mma_*_kernel     256 threads x 4 blocks per multiprocessor (8 warps per sub-partition), each warp 8
//                    independent accumulator tiles (32 float registers) fed the same A and B fragments: the
//                    tensor cores' pipeline stays full without any load.
//   wgmma_bf16_kernel  128 threads (one warpgroup) x 2 blocks per multiprocessor, each wgmma.m64n128k16 from
//                    two tiles in shared memory into two alternating accumulators (64 floats each), 8 per
//                    committed group, with the previous group still in flight at each wait.
//
// Each result feeds a never-true store (`if (total == -1) *sink = total`) so the compiler keeps the work;
// the operands are small positive numbers, so nothing overflows and no denormal slows anything.
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "bench/ladder/harness.hpp"
#include "bench/ladder/peak.hpp"
#include "kernels/ladder/hopper.hpp"
#include "kernels/ladder/launch.cuh"
#include "kernels/ladder/mma.cuh"
#include "kernels/ladder/wgmma.cuh"

namespace kiln::bench::ladder {
namespace {

namespace device = kiln::kernels::ladder;

constexpr int kThreadsPerBlock = 256;
constexpr int kFfmaBlocksPerSm = 8;
constexpr int kMmaBlocksPerSm = 4;
constexpr int kFfmaChains = 8;   // independent accumulators per thread
constexpr int kFfmaUnroll = 16;  // FFMAs per chain per loop iteration (amortizes the loop's own instructions)
constexpr int kMmaTiles = 8;     // independent 16x8 accumulator tiles per warp
constexpr int kWgmmaBlocksPerSm = 2;
constexpr int kWgmmaThreads = 128;  // one warpgroup
constexpr int kWgmmaN = 128;
constexpr int kWgmmaPerGroup = 8;
// A 64 x 64 and B 128 x 64 bfloat16, and the slack that aligning the first atom may take.
constexpr int kWgmmaSharedBytes = (64 + kWgmmaN) * 128 + device::kSwizzleAtomBytes;

__global__ void __launch_bounds__(kThreadsPerBlock)
    ffma_kernel(int iterations, float a, float b, float* sink) {
  float acc[kFfmaChains];
#pragma unroll
  for (int c = 0; c < kFfmaChains; ++c) acc[c] = 1e-3f * static_cast<float>(threadIdx.x % 32 + c);
  for (int i = 0; i < iterations; ++i) {
#pragma unroll
    for (int u = 0; u < kFfmaUnroll; ++u) {
#pragma unroll
      for (int c = 0; c < kFfmaChains; ++c) acc[c] = fmaf(acc[c], a, b);
    }
  }
  float total = 0.0f;
#pragma unroll
  for (int c = 0; c < kFfmaChains; ++c) total += acc[c];
  if (total == -1.0f) *sink = total;
}

__global__ void __launch_bounds__(kThreadsPerBlock) mma_tf32_kernel(int iterations, float* sink) {
  const int lane = static_cast<int>(threadIdx.x % 32);
  std::uint32_t a[4], b[2];
#pragma unroll
  for (int r = 0; r < 4; ++r) a[r] = device::to_tf32(1e-3f * static_cast<float>(lane + r + 1));
#pragma unroll
  for (int r = 0; r < 2; ++r) b[r] = device::to_tf32(1e-3f * static_cast<float>(lane + r + 1));
  float c[kMmaTiles][4] = {};
  for (int i = 0; i < iterations; ++i) {
#pragma unroll
    for (int t = 0; t < kMmaTiles; ++t) device::mma_m16n8k8_tf32(c[t], a, b);
  }
  float total = 0.0f;
#pragma unroll
  for (int t = 0; t < kMmaTiles; ++t) total += c[t][0] + c[t][1] + c[t][2] + c[t][3];
  if (total == -1.0f) *sink = total;
}

__global__ void __launch_bounds__(kThreadsPerBlock) mma_bf16_kernel(int iterations, float* sink) {
  const auto lane = static_cast<std::uint32_t>(threadIdx.x % 32);
  // Two bfloat16 per register, about 1e-3 each (0x3a83), the low mantissa bits varied by lane.
  const std::uint32_t pair = 0x3a803a80u | (lane & 7u) | ((lane & 7u) << 16);
  const std::uint32_t a[4] = {pair, pair, pair, pair};
  const std::uint32_t b[2] = {pair, pair};
  float c[kMmaTiles][4] = {};
  for (int i = 0; i < iterations; ++i) {
#pragma unroll
    for (int t = 0; t < kMmaTiles; ++t) device::mma_m16n8k16_bf16(c[t], a, b);
  }
  float total = 0.0f;
#pragma unroll
  for (int t = 0; t < kMmaTiles; ++t) total += c[t][0] + c[t][1] + c[t][2] + c[t][3];
  if (total == -1.0f) *sink = total;
}

__global__ void __launch_bounds__(kWgmmaThreads) wgmma_bf16_kernel(int iterations, float* sink) {
  KILN_DYNAMIC_SHARED_MEMORY(shared);
  unsigned char* const tiles = device::first_swizzle_atom(shared);
  // Bfloat16 about 1e-3 (0x3a80), varied in the low bits: the layout does not matter, only that the
  // operands are real numbers.
  auto* const halves = reinterpret_cast<std::uint16_t*>(tiles);
  for (int i = static_cast<int>(threadIdx.x); i < (64 + kWgmmaN) * 64; i += kWgmmaThreads)
    halves[i] = static_cast<std::uint16_t>(0x3a80 | (i & 7));
  device::fence_proxy_async_shared();
  __syncthreads();
  const std::uint64_t a = device::k_major_128b_descriptor(tiles);
  const std::uint64_t b = device::k_major_128b_descriptor(tiles + 64 * 128);
  float acc[2][kWgmmaN / 2] = {};
  for (int i = 0; i < iterations; ++i) {
    device::wgmma_fence(acc);
#pragma unroll
    for (int u = 0; u < kWgmmaPerGroup; ++u) device::wgmma_bf16<kWgmmaN>(acc[u % 2], a, b, true);
    device::wgmma_commit_group();
    device::wgmma_wait<1>(acc);  // the group before this one is done; this one runs on
  }
  device::wgmma_wait<0>(acc);
  float total = 0.0f;
#pragma unroll
  for (int h = 0; h < 2; ++h) {
#pragma unroll
    for (int i = 0; i < kWgmmaN / 2; ++i) total += acc[h][i];
  }
  if (total == -1.0f) *sink = total;
}

// TFLOP/s of `launch(iterations)`, which does `flop_per_iteration` per loop iteration over the whole grid:
// sized to about `target_ms` per launch, the best of three.
template <typename Launch>
double best_tflops(Launch&& launch, double flop_per_iteration, double target_ms) {
  EventPair events;
  int iterations = 256;
  double ms = 0.0;
  for (int calibration = 0; calibration < 4; ++calibration) {  // the first launch also loads the module
    events.start();
    launch(iterations);
    events.stop();
    ms = events.elapsed_ms();
    if (ms >= 0.25 * target_ms) break;
    iterations *= 8;
  }
  iterations = static_cast<int>(std::clamp(iterations * target_ms / std::max(ms, 1e-3), 1.0, 1e9));
  double best = 0.0;
  for (int trial = 0; trial < 3; ++trial) {
    events.start();
    launch(iterations);
    events.stop();
    ms = events.elapsed_ms();
    best = std::max(best, flop_per_iteration * iterations / (ms * 1e-3) * 1e-12);
  }
  return best;
}

}  // namespace

Peaks measure_peaks(bool quick) {
  int multiprocessors = 0;
  LADDER_CUDA(cudaDeviceGetAttribute(&multiprocessors, cudaDevAttrMultiProcessorCount, 0));
  DeviceBuffer sink(sizeof(float));
  float* sink_pointer = sink.as<float>();
  const double target_ms = quick ? 5.0 : 20.0;
  Peaks peaks;

  const unsigned ffma_blocks = static_cast<unsigned>(multiprocessors * kFfmaBlocksPerSm);
  const double ffma_flop = 2.0 * kFfmaChains * kFfmaUnroll * ffma_blocks * kThreadsPerBlock;
  peaks.fp32_tflops = best_tflops(
      [&](int iterations) {
        ffma_kernel<<<ffma_blocks, kThreadsPerBlock>>>(iterations, 0.999999f, 1e-7f, sink_pointer);
        LADDER_CUDA(cudaGetLastError());
      },
      ffma_flop, target_ms);

  const unsigned mma_blocks = static_cast<unsigned>(multiprocessors * kMmaBlocksPerSm);
  const double warps = static_cast<double>(mma_blocks) * (kThreadsPerBlock / 32);
  peaks.tf32_tflops = best_tflops(
      [&](int iterations) {
        mma_tf32_kernel<<<mma_blocks, kThreadsPerBlock>>>(iterations, sink_pointer);
        LADDER_CUDA(cudaGetLastError());
      },
      warps * kMmaTiles * 2.0 * 16 * 8 * 8, target_ms);  // m16n8k8: 2 x 16 x 8 x 8 FLOP per mma
  peaks.bf16_tflops = best_tflops(
      [&](int iterations) {
        mma_bf16_kernel<<<mma_blocks, kThreadsPerBlock>>>(iterations, sink_pointer);
        LADDER_CUDA(cudaGetLastError());
      },
      warps * kMmaTiles * 2.0 * 16 * 8 * 16, target_ms);  // m16n8k16
  if (kernels::ladder::wgmma_available()) {
    const unsigned wgmma_blocks = static_cast<unsigned>(multiprocessors * kWgmmaBlocksPerSm);
    peaks.bf16_wgmma_tflops = best_tflops(
        [&](int iterations) {
          wgmma_bf16_kernel<<<wgmma_blocks, kWgmmaThreads, kWgmmaSharedBytes>>>(iterations, sink_pointer);
          LADDER_CUDA(cudaGetLastError());
        },
        wgmma_blocks * kWgmmaPerGroup * 2.0 * 64 * kWgmmaN * 16, target_ms);  // m64n128k16
  }
  LADDER_CUDA(cudaDeviceSynchronize());
  return peaks;
}

}  // namespace kiln::bench::ladder
