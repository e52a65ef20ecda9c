// Elementwise speed in GB/s on the ResNet-20 activations at batch 128 ([128,16,32,32], [128,32,16,16],
// [128,64,8,8]), for the reference kernels and each vectorized level, at 1 and 2 threads:
//   relu_forward     y = max(x, 0)                         reads x, writes y            8 bytes an element
//   relu_backward    gx = gy * (x > 0)                     reads x, gy, writes gx      12 bytes
//   add_dense        out = a + b, same shape               reads a, b, writes out      12 bytes
//   add_channel      out = a + bias[1, C, 1, 1]            reads a, writes out          8 bytes
//   stream_copy      memcpy split over the threads: this machine's bandwidth ceiling    8 bytes
//
//   build-rest/elementwise_bench --benchmark_filter=relu
#include <benchmark/benchmark.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "kernels/cpu_level.hpp"
#include "kernels/elementwise/elementwise.hpp"
#include "kernels/parallel.hpp"

namespace {

namespace kernels = kiln::kernels;
using kernels::CpuLevel;

const std::array<std::array<std::int64_t, 4>, 3> kShapes{
    {{128, 16, 32, 32}, {128, 32, 16, 16}, {128, 64, 8, 8}}};

enum class Op { ReluForward, ReluBackward, AddDense, AddChannel };

// Arguments: shape index, threads, level (0 reference, 1 avx2, 2 avx512).
void run_elementwise(benchmark::State& state, Op op) {
  const auto& sizes = kShapes[static_cast<std::size_t>(state.range(0))];
  const int threads = static_cast<int>(state.range(1));
  const auto level = static_cast<CpuLevel>(state.range(2));
  if (kernels::detected_cpu_level() < level) {
    state.SkipWithError("this CPU lacks the level");
    return;
  }
  const std::int64_t n = sizes[0] * sizes[1] * sizes[2] * sizes[3];
  const std::int64_t plane = sizes[2] * sizes[3];
  const std::array<std::int64_t, 4> dense{sizes[1] * plane, plane, sizes[3], 1}, channel{0, 1, 0, 0};
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  std::vector<float> a(static_cast<std::size_t>(n)), b(a.size()), out(a.size()),
      bias(static_cast<std::size_t>(sizes[1]));
  for (float& v : a) v = uniform(rng);
  for (float& v : b) v = uniform(rng);
  for (float& v : bias) v = uniform(rng);

  kernels::set_compute_threads(threads);
  kernels::set_cpu_level(level);
  const auto cpu = kiln::Device::cpu();
  for (auto _ : state) {
    switch (op) {
      case Op::ReluForward:
        kernels::unary_forward(cpu, kernels::UnaryOp::Relu, {}, n, a.data(), out.data());
        break;
      case Op::ReluBackward:
        kernels::unary_backward(cpu, kernels::UnaryOp::Relu, {}, n, a.data(), a.data(), b.data(), out.data());
        break;
      case Op::AddDense:
        kernels::binary_forward(cpu, kernels::BinaryOp::Add, 4, sizes.data(), a.data(), dense.data(),
                                b.data(), dense.data(), out.data());
        break;
      case Op::AddChannel:
        kernels::binary_forward(cpu, kernels::BinaryOp::Add, 4, sizes.data(), a.data(), dense.data(),
                                bias.data(), channel.data(), out.data());
        break;
    }
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  kernels::set_cpu_level(kernels::detected_cpu_level());
  kernels::set_compute_threads(0);
  const double bytes = (op == Op::ReluBackward || op == Op::AddDense) ? 12.0 : 8.0;
  state.counters["GB"] = benchmark::Counter(bytes * static_cast<double>(n) * 1e-9,
                                              benchmark::Counter::kIsIterationInvariantRate);
  state.SetLabel(std::string(kernels::cpu_level_name(level)));
}

// memcpy of the same tensors, split into one contiguous piece per thread: the bandwidth the kernels
// above can at best reach.
void stream_copy(benchmark::State& state) {
  const auto& sizes = kShapes[static_cast<std::size_t>(state.range(0))];
  const int threads = static_cast<int>(state.range(1));
  const std::int64_t n = sizes[0] * sizes[1] * sizes[2] * sizes[3];
  std::vector<float> a(static_cast<std::size_t>(n), 1.0f), out(a.size());
  for (auto _ : state) {
#pragma omp parallel for num_threads(threads)
    for (int t = 0; t < threads; ++t) {
      const std::int64_t begin = n * t / threads, end = n * (t + 1) / threads;
      std::memcpy(out.data() + begin, a.data() + begin,
                  static_cast<std::size_t>(end - begin) * sizeof(float));
    }
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  state.counters["GB"] =
      benchmark::Counter(8.0 * static_cast<double>(n) * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

void shapes_levels_threads(benchmark::internal::Benchmark* bench) {
  bench->ArgNames({"shape", "threads", "level"});
  for (const int level : {0, 1, 2}) {
    for (const int threads : {1, 2}) {
      for (const int shape : {0, 1, 2}) bench->Args({shape, threads, level});
    }
  }
  bench->Unit(benchmark::kMicrosecond);
}

void shapes_threads(benchmark::internal::Benchmark* bench) {
  bench->ArgNames({"shape", "threads"});
  for (const int threads : {1, 2}) {
    for (const int shape : {0, 1, 2}) bench->Args({shape, threads});
  }
  bench->Unit(benchmark::kMicrosecond);
}

}  // namespace

BENCHMARK_CAPTURE(run_elementwise, relu_forward, Op::ReluForward)->Apply(shapes_levels_threads);
BENCHMARK_CAPTURE(run_elementwise, relu_backward, Op::ReluBackward)->Apply(shapes_levels_threads);
BENCHMARK_CAPTURE(run_elementwise, add_dense, Op::AddDense)->Apply(shapes_levels_threads);
BENCHMARK_CAPTURE(run_elementwise, add_channel, Op::AddChannel)->Apply(shapes_levels_threads);
BENCHMARK(stream_copy)->Apply(shapes_threads);

BENCHMARK_MAIN();
