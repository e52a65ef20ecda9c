// Elementwise speed in GB/s on the ResNet-20 activations at batch 128 ([128,16,32,32], [128,32,16,16],
// [128,64,8,8]), for the reference kernels and each vectorized level, at 1 and 2 threads:
//   relu_forward     y = max(x, 0)                         reads x, writes y            8 bytes an element
//   relu_backward    gx = gy * (x > 0)                     reads x, gy, writes gx      12 bytes
//   add_dense        out = a + b, same shape               reads a, b, writes out      12 bytes
//   add_channel      out = a + bias[1, C, 1, 1]            reads a, writes out          8 bytes
//   sigmoid_forward, tanh_forward, gelu_forward                reads x, writes y            8 bytes
//   gelu_backward    gx = gy * gelu'(x)                    reads x, gy, writes gx      12 bytes
//                    (simd/transcendentals.hpp's approximations on float. Two Zen 5 threads, [128, 16, 32,
//                    32], warm: relu 96 us, sigmoid 180, tanh 285, gelu 529 and its backward 562, against
//                    19.0, 32.0, 17.7 and 26.6 ms at the reference level, level:0)
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

#include "bench/support/aligned_floats.hpp"
#include "bench/support/memory_bound.hpp"
#include "kernels/elementwise/elementwise.hpp"

namespace {

namespace kernels = kiln::kernels;

enum class Op {
  ReluForward,
  ReluBackward,
  AddDense,
  AddChannel,
  SigmoidForward,
  TanhForward,
  GeluForward,
  GeluBackward
};

// Arguments: see bench/support/memory_bound.hpp.
void run_elementwise(benchmark::State& state, Op op) {
  if (!kiln::bench::cpu_has_level(state)) return;
  const auto& sizes = kiln::bench::shape_argument(state);
  const std::int64_t n = sizes[0] * sizes[1] * sizes[2] * sizes[3];
  const std::int64_t plane = sizes[2] * sizes[3];
  const std::array<std::int64_t, 4> dense{sizes[1] * plane, plane, sizes[3], 1}, channel{0, 1, 0, 0};
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  kiln::bench::AlignedFloats a(static_cast<std::size_t>(n)), b(a.size()), out(a.size()),
      bias(static_cast<std::size_t>(sizes[1]));
  for (float& v : a) v = uniform(rng);
  for (float& v : b) v = uniform(rng);
  for (float& v : bias) v = uniform(rng);

  const kiln::bench::ArgumentKernelSettings settings(state);
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
      case Op::SigmoidForward:
        kernels::unary_forward(cpu, kernels::UnaryOp::Sigmoid, {}, n, a.data(), out.data());
        break;
      case Op::TanhForward:
        kernels::unary_forward(cpu, kernels::UnaryOp::Tanh, {}, n, a.data(), out.data());
        break;
      case Op::GeluForward:
        kernels::unary_forward(cpu, kernels::UnaryOp::Gelu, {}, n, a.data(), out.data());
        break;
      case Op::GeluBackward:  // (the reference reads y too: a stands in, its values unused by GELU's rule)
        kernels::unary_backward(cpu, kernels::UnaryOp::Gelu, {}, n, a.data(), a.data(), b.data(), out.data());
        break;
    }
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  const double bytes = (op == Op::ReluBackward || op == Op::AddDense || op == Op::GeluBackward) ? 12.0 : 8.0;
  kiln::bench::report_bandwidth(state, bytes * static_cast<double>(n));
}

// memcpy of the same tensors, split into one contiguous piece per thread: the bandwidth the kernels
// above can at best reach.
void stream_copy(benchmark::State& state) {
  const auto& sizes = kiln::bench::shape_argument(state);
  const int threads = kiln::bench::threads_argument(state);
  const std::int64_t n = sizes[0] * sizes[1] * sizes[2] * sizes[3];
  kiln::bench::AlignedFloats a(static_cast<std::size_t>(n), 1.0f), out(a.size());
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

void shapes_threads(benchmark::internal::Benchmark* bench) {
  bench->ArgNames({"shape", "threads"});
  for (const int threads : {1, 2}) {
    for (int shape = 0; shape < static_cast<int>(kiln::bench::kActivations.size()); ++shape)
      bench->Args({shape, threads});
  }
  bench->Unit(benchmark::kMicrosecond);
}

}  // namespace

BENCHMARK_CAPTURE(run_elementwise, relu_forward, Op::ReluForward)->Apply(kiln::bench::shapes_threads_levels);
BENCHMARK_CAPTURE(run_elementwise, relu_backward, Op::ReluBackward)->Apply(kiln::bench::shapes_threads_levels);
BENCHMARK_CAPTURE(run_elementwise, add_dense, Op::AddDense)->Apply(kiln::bench::shapes_threads_levels);
BENCHMARK_CAPTURE(run_elementwise, add_channel, Op::AddChannel)->Apply(kiln::bench::shapes_threads_levels);
BENCHMARK_CAPTURE(run_elementwise, sigmoid_forward, Op::SigmoidForward)
    ->Apply(kiln::bench::shapes_threads_levels);
BENCHMARK_CAPTURE(run_elementwise, tanh_forward, Op::TanhForward)->Apply(kiln::bench::shapes_threads_levels);
BENCHMARK_CAPTURE(run_elementwise, gelu_forward, Op::GeluForward)->Apply(kiln::bench::shapes_threads_levels);
BENCHMARK_CAPTURE(run_elementwise, gelu_backward, Op::GeluBackward)
    ->Apply(kiln::bench::shapes_threads_levels);
BENCHMARK(stream_copy)->Apply(shapes_threads);

BENCHMARK_MAIN();
