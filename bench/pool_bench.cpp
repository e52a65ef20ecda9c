// Pooling speed in GB/s on the ResNet-20 activations at batch 128 ([128,16,32,32], [128,32,16,16],
// [128,64,8,8]), for the reference kernels and each vectorized level, at 1 and 2 threads. Compulsory
// traffic only (each tensor read or written once):
//   global_avg_forward    x [N,C,H,W] -> y [N,C]            4 bytes an input element (+ y, negligible)
//   global_avg_backward   gy [N,C] -> gx [N,C,H,W]           4 bytes an input element
//   max_2x2_forward       x -> y [N,C,H/2,W/2] and int64 argmax: 4 + (4 + 8) / 4 = 7 bytes an input element
//   avg_2x2_forward       x -> y: 4 + 4 / 4 = 5 bytes an input element (the reference per plane, threaded)
//
//   build-rest/pool_bench --benchmark_filter=global
#include <benchmark/benchmark.h>

#include <array>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "bench/support/aligned_floats.hpp"
#include "bench/support/memory_bound.hpp"
#include "kernels/pool/pool.hpp"

namespace {

namespace kernels = kiln::kernels;

enum class Op { GlobalAvgForward, GlobalAvgBackward, Max2x2Forward, Avg2x2Forward };

// Arguments: see bench/support/memory_bound.hpp.
void run_pool(benchmark::State& state, Op op) {
  if (!kiln::bench::cpu_has_level(state)) return;
  const auto& s = kiln::bench::shape_argument(state);
  const kernels::Pool2dGeometry g{.batch = s[0],
                                  .channels = s[1],
                                  .in_height = s[2],
                                  .in_width = s[3],
                                  .kernel_h = 2,
                                  .kernel_w = 2,
                                  .stride_h = 2,
                                  .stride_w = 2};
  const std::int64_t n = s[0] * s[1] * s[2] * s[3], planes = s[0] * s[1], plane = s[2] * s[3];
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  kiln::bench::AlignedFloats x(static_cast<std::size_t>(n)), out(x.size()),
      gy(static_cast<std::size_t>(planes));
  std::vector<std::int64_t> argmax(x.size() / 4);
  for (float& v : x) v = uniform(rng);
  for (float& v : gy) v = uniform(rng);

  const kiln::bench::ArgumentKernelSettings settings(state);
  const auto cpu = kiln::Device::cpu();
  for (auto _ : state) {
    switch (op) {
      case Op::GlobalAvgForward:
        kernels::global_avg_pool2d_forward(cpu, planes, plane, x.data(), out.data());
        break;
      case Op::GlobalAvgBackward:
        kernels::global_avg_pool2d_backward(cpu, planes, plane, gy.data(), out.data());
        break;
      case Op::Max2x2Forward:
        kernels::max_pool2d_forward(cpu, g, x.data(), out.data(), argmax.data());
        break;
      case Op::Avg2x2Forward:
        kernels::avg_pool2d_forward(cpu, g, x.data(), out.data());
        break;
    }
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  const double bytes = op == Op::Max2x2Forward ? 7.0 : op == Op::Avg2x2Forward ? 5.0 : 4.0;
  kiln::bench::report_bandwidth(state, bytes * static_cast<double>(n));
}

}  // namespace

BENCHMARK_CAPTURE(run_pool, global_avg_forward, Op::GlobalAvgForward)->Apply(kiln::bench::shapes_threads_levels);
BENCHMARK_CAPTURE(run_pool, global_avg_backward, Op::GlobalAvgBackward)->Apply(kiln::bench::shapes_threads_levels);
BENCHMARK_CAPTURE(run_pool, max_2x2_forward, Op::Max2x2Forward)->Apply(kiln::bench::shapes_threads_levels);
BENCHMARK_CAPTURE(run_pool, avg_2x2_forward, Op::Avg2x2Forward)->Apply(kiln::bench::shapes_threads_levels);

BENCHMARK_MAIN();
