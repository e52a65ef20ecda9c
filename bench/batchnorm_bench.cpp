// Batch-normalization speed in GB/s on the ResNet-20 activations at batch 128 ([128,16,32,32],
// [128,32,16,16], [128,64,8,8]), for the reference kernels and each vectorized level, at 1 and 2 threads.
//
// These kernels are memory-bound, so the figure of merit is bandwidth. GB/s counts the compulsory traffic
// only (each tensor read or written once): forward train and eval read x and write y (8 bytes an element),
// backward train reads x and gy and writes gx (12 bytes). The fast forward train actually reads x twice
// (statistics, then normalize) and the backward reads x and gy twice, so the bytes moved are 1.5x and
// 1.67x the counted ones; compare with elementwise_bench's stream_copy for this machine's bandwidth.
// The *_relu variants run the ReLU fused in (BatchNorm2dGeometry::fused_relu); their backward also reads
// y (16 bytes an element). Compare a fused pass with the plain one plus elementwise_bench's relu.
//
//   build-rest/batchnorm_bench --benchmark_filter=forward_train
#include <benchmark/benchmark.h>

#include <array>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "bench/support/aligned_floats.hpp"
#include "bench/support/memory_bound.hpp"
#include "kernels/batchnorm/batchnorm.hpp"

namespace {

namespace kernels = kiln::kernels;
using kernels::BatchNorm2dGeometry;

enum class Pass { ForwardTrain, ForwardEval, BackwardTrain };

// Arguments: see bench/support/memory_bound.hpp.
void run_batchnorm(benchmark::State& state, Pass pass, bool fused_relu) {
  if (!kiln::bench::cpu_has_level(state)) return;
  const auto& s = kiln::bench::shape_argument(state);
  const BatchNorm2dGeometry g{s[0], s[1], s[2], s[3], fused_relu};
  const std::int64_t n = g.batch * g.channels * g.height * g.width;
  const auto size = static_cast<std::size_t>(n), channels = static_cast<std::size_t>(g.channels);
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  kiln::bench::AlignedFloats x(size), gy(size), out(size);
  for (float& v : x) v = uniform(rng);
  for (float& v : gy) v = uniform(rng);
  std::vector<float> gamma(channels, 1.5f), beta(channels, 0.1f), running_mean(channels, 0.0f),
      running_var(channels, 1.0f), mean(channels), invstd(channels), ggamma(channels), gbeta(channels);
  kernels::reference::batchnorm2d_forward_train(g, x.data(), gamma.data(), beta.data(), 1e-5f, 0.1f,
                                                static_cast<float*>(nullptr), static_cast<float*>(nullptr),
                                                out.data(), mean.data(), invstd.data());

  const kiln::bench::ArgumentKernelSettings settings(state);
  const auto cpu = kiln::Device::cpu();
  for (auto _ : state) {
    switch (pass) {
      case Pass::ForwardTrain:
        kernels::batchnorm2d_forward_train(cpu, g, x.data(), gamma.data(), beta.data(), 1e-5f, 0.1f,
                                           running_mean.data(), running_var.data(), out.data(), mean.data(),
                                           invstd.data());
        break;
      case Pass::ForwardEval:
        kernels::batchnorm2d_forward_eval(cpu, g, x.data(), gamma.data(), beta.data(), running_mean.data(),
                                          running_var.data(), 1e-5f, out.data());
        break;
      case Pass::BackwardTrain:
        // x stands in for the forward's y when the ReLU is fused: its sign, the mask, is about half positive.
        kernels::batchnorm2d_backward_train(cpu, g, x.data(), gy.data(), x.data(), gamma.data(), mean.data(),
                                            invstd.data(), out.data(), ggamma.data(), gbeta.data());
        break;
    }
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  const double bytes_per_element = pass == Pass::BackwardTrain ? (fused_relu ? 16.0 : 12.0) : 8.0;
  kiln::bench::report_bandwidth(state, bytes_per_element * static_cast<double>(n));
}

}  // namespace

BENCHMARK_CAPTURE(run_batchnorm, forward_train, Pass::ForwardTrain, false)->Apply(kiln::bench::shapes_threads_levels);
BENCHMARK_CAPTURE(run_batchnorm, forward_eval, Pass::ForwardEval, false)->Apply(kiln::bench::shapes_threads_levels);
BENCHMARK_CAPTURE(run_batchnorm, backward_train, Pass::BackwardTrain, false)
    ->Apply(kiln::bench::shapes_threads_levels);
BENCHMARK_CAPTURE(run_batchnorm, forward_train_relu, Pass::ForwardTrain, true)
    ->Apply(kiln::bench::shapes_threads_levels);
BENCHMARK_CAPTURE(run_batchnorm, backward_train_relu, Pass::BackwardTrain, true)
    ->Apply(kiln::bench::shapes_threads_levels);

BENCHMARK_MAIN();
