// Pooling speed in GB/s on the ResNet-20 activations at batch 128 ([128,16,32,32], [128,32,16,16],
// [128,64,8,8]) and two of MobileNet's deep layers, for the reference kernels and each vectorized level, at 1
// and 2 threads; float NCHW, and the bfloat16 channels-last tensors a `--precision bf16` step on a CPU with
// AMX pools (the *_bf16_channels_last rows). Compulsory traffic only (each tensor read or written once), in
// bytes an input element for an element size e (4 float, 2 bfloat16):
//   global_avg_forward    x [N,C,H,W] -> y [N,C]                       e (+ y, negligible)
//   global_avg_backward   gy [N,C] -> gx [N,C,H,W]                      e
//   max_2x2_forward       x -> y [N,C,H/2,W/2] and int32 argmax         e + (e + 4) / 4
//   max_2x2_backward      gy and argmax -> gx                           e + (e + 4) / 4
//   max_3x3_s2_forward    x -> y [N,C,H/2,W/2] and argmax, windows 3x3 at stride 2 padded 1 (ResNet-18's stem
//                         pool, overlapping windows)                   e + (e + 4) / 4
//   avg_2x2_forward       x -> y                                        e + e / 4
//   avg_2x2_backward      gy -> gx                                      e + e / 4
//   avg_3x3_s1_forward    x -> y, windows 3x3 at stride 1 padded 1 (overlapping; each input read by 9)  2e
//   avg_3x3_s1_backward   gy -> gx, the same windows                    2e
//
//   build-rest/pool_bench --benchmark_filter=max_2x2
#include <benchmark/benchmark.h>

#include <array>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "bench/support/memory_bound.hpp"
#include "core/bfloat16.hpp"
#include "kernels/pool/pool.hpp"

namespace {

namespace kernels = kiln::kernels;

enum class Op {
  GlobalAvgForward,
  GlobalAvgBackward,
  Max2x2Forward,
  Max2x2Backward,
  Max3x3Stride2Forward,
  Avg2x2Forward,
  Avg2x2Backward,
  Avg3x3Stride1Forward,
  Avg3x3Stride1Backward
};

// Arguments: see bench/support/memory_bound.hpp.
template <typename T>
void run_pool(benchmark::State& state, Op op, bool channels_last) {
  if (!kiln::bench::cpu_has_level(state)) return;
  const auto& s = kiln::bench::shape_argument(state);
  const bool stem = op == Op::Max3x3Stride2Forward;  // 3x3 padded 1 at stride 2
  const bool overlapping = op == Op::Avg3x3Stride1Forward || op == Op::Avg3x3Stride1Backward;  // ... at 1
  const std::int64_t window = stem || overlapping ? 3 : 2, pad = stem || overlapping ? 1 : 0;  // else 2x2
  const kernels::Pool2dGeometry g{.batch = s[0],
                                  .channels = s[1],
                                  .in_height = s[2],
                                  .in_width = s[3],
                                  .kernel_h = window,
                                  .kernel_w = window,
                                  .stride_h = overlapping ? 1 : 2,
                                  .stride_w = overlapping ? 1 : 2,
                                  .pad_h = pad,
                                  .pad_w = pad,
                                  .channels_last = channels_last};
  const kernels::GlobalPool2dGeometry global{
      .batch = s[0], .channels = s[1], .plane_size = s[2] * s[3], .channels_last = channels_last};
  const std::int64_t n = s[0] * s[1] * s[2] * s[3];
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  std::vector<T> x(static_cast<std::size_t>(n)), out(x.size()), pooled(x.size() / (overlapping ? 1 : 4));
  std::vector<std::int32_t> argmax(pooled.size());
  for (T& v : x) v = static_cast<T>(uniform(rng));
  for (T& v : pooled) v = static_cast<T>(uniform(rng));
  kernels::reference::max_pool2d_forward(g, x.data(), out.data(), argmax.data());

  const kiln::bench::ArgumentKernelSettings settings(state);
  const auto cpu = kiln::Device::cpu();
  for (auto _ : state) {
    switch (op) {
      case Op::GlobalAvgForward:
        kernels::global_avg_pool2d_forward(cpu, global, x.data(), out.data());
        break;
      case Op::GlobalAvgBackward:
        kernels::global_avg_pool2d_backward(cpu, global, pooled.data(), out.data());
        break;
      case Op::Max2x2Forward:
      case Op::Max3x3Stride2Forward:
        kernels::max_pool2d_forward(cpu, g, x.data(), out.data(), argmax.data());
        break;
      case Op::Max2x2Backward:
        kernels::max_pool2d_backward(cpu, g, pooled.data(), argmax.data(), out.data());
        break;
      case Op::Avg2x2Forward:
      case Op::Avg3x3Stride1Forward:
        kernels::avg_pool2d_forward(cpu, g, x.data(), out.data());
        break;
      case Op::Avg2x2Backward:
      case Op::Avg3x3Stride1Backward:
        kernels::avg_pool2d_backward(cpu, g, pooled.data(), out.data());
        break;
    }
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  const double e = sizeof(T);
  const bool max = op == Op::Max2x2Forward || op == Op::Max2x2Backward || op == Op::Max3x3Stride2Forward;
  const bool avg_2x2 = op == Op::Avg2x2Forward || op == Op::Avg2x2Backward;
  const double bytes = max ? e + (e + 4.0) / 4.0 : avg_2x2 ? e + e / 4.0 : overlapping ? 2.0 * e : e;
  kiln::bench::report_bandwidth(state, bytes * static_cast<double>(n));
}

void run_float(benchmark::State& state, Op op) { run_pool<float>(state, op, false); }
void run_bf16_channels_last(benchmark::State& state, Op op) { run_pool<kiln::bfloat16>(state, op, true); }

}  // namespace

BENCHMARK_CAPTURE(run_float, global_avg_forward, Op::GlobalAvgForward)
    ->Apply(kiln::bench::shapes_threads_levels);
BENCHMARK_CAPTURE(run_float, global_avg_backward, Op::GlobalAvgBackward)
    ->Apply(kiln::bench::shapes_threads_levels);
BENCHMARK_CAPTURE(run_float, max_2x2_forward, Op::Max2x2Forward)->Apply(kiln::bench::shapes_threads_levels);
BENCHMARK_CAPTURE(run_float, max_2x2_backward, Op::Max2x2Backward)->Apply(kiln::bench::shapes_threads_levels);
BENCHMARK_CAPTURE(run_float, max_3x3_s2_forward, Op::Max3x3Stride2Forward)
    ->Apply(kiln::bench::shapes_threads_levels);
BENCHMARK_CAPTURE(run_float, avg_2x2_forward, Op::Avg2x2Forward)->Apply(kiln::bench::shapes_threads_levels);
BENCHMARK_CAPTURE(run_float, avg_2x2_backward, Op::Avg2x2Backward)->Apply(kiln::bench::shapes_threads_levels);
BENCHMARK_CAPTURE(run_float, avg_3x3_s1_forward, Op::Avg3x3Stride1Forward)
    ->Apply(kiln::bench::shapes_threads_levels);
BENCHMARK_CAPTURE(run_float, avg_3x3_s1_backward, Op::Avg3x3Stride1Backward)
    ->Apply(kiln::bench::shapes_threads_levels);
BENCHMARK_CAPTURE(run_bf16_channels_last, global_avg_forward_bf16_channels_last, Op::GlobalAvgForward)
    ->Apply(kiln::bench::shapes_threads_levels);
BENCHMARK_CAPTURE(run_bf16_channels_last, max_2x2_forward_bf16_channels_last, Op::Max2x2Forward)
    ->Apply(kiln::bench::shapes_threads_levels);
BENCHMARK_CAPTURE(run_bf16_channels_last, max_2x2_backward_bf16_channels_last, Op::Max2x2Backward)
    ->Apply(kiln::bench::shapes_threads_levels);
BENCHMARK_CAPTURE(run_bf16_channels_last, avg_2x2_forward_bf16_channels_last, Op::Avg2x2Forward)
    ->Apply(kiln::bench::shapes_threads_levels);
BENCHMARK_CAPTURE(run_bf16_channels_last, avg_2x2_backward_bf16_channels_last, Op::Avg2x2Backward)
    ->Apply(kiln::bench::shapes_threads_levels);

BENCHMARK_MAIN();
