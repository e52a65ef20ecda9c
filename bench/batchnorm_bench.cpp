// Batch-normalization speed in GB/s on the ResNet-20 activations at batch 128 ([128,16,32,32],
// [128,32,16,16], [128,64,8,8]), for the reference kernels and each vectorized level, at 1 and 2 threads.
//
// These kernels are memory-bound, so the figure of merit is bandwidth. GB/s counts the compulsory traffic
// only (each tensor read or written once): forward train and eval read x and write y (8 bytes an element),
// backward train reads x and gy and writes gx (12 bytes). The fast forward train actually reads x twice
// (statistics, then normalize) and the backward reads x and gy twice, so the bytes moved are 1.5x and
// 1.67x the counted ones; compare with elementwise_bench's stream_copy for this machine's bandwidth.
// The *_relu variants run the ReLU fused in (BatchNorm2dGeometry::fused_relu). Their backward's mask comes
// from x, as the forward made y (batchnorm.hpp; only the reference reads y), so it moves the plain one's
// bytes: compare it with backward_train, and a fused pass with the plain one plus elementwise_bench's relu.
// The *_relu6 variants cap it at 6 (relu_upper, MobileNetV2's ReLU6): one more comparison a value, the same
// bytes, and the same speed as *_relu (two Zen 5 cores, from memory, [128, 16, 32, 32] backward: float 603
// us with the ReLU, 596 with ReLU6; bf16 channels-last 420 and 435).
// The *_hardswish variants fuse MobileNetV3's hard swish (fused_hardswish): the plain passes' bytes, its
// slope recomputed from x in the backward, where the separate op added a pass over memory each way (float,
// two Zen 5 cores, warm, batch norm then the elementwise op against the fused one: [128, 96, 16, 16] forward
// 0.87 -> 0.45 ms, backward 1.55 -> 0.77; [128, 576, 4, 4] 0.59 -> 0.46 and 0.69 -> 0.48).
// The *_bf16_channels_last variants are what a `--precision bf16` step on a CPU with AMX runs: bfloat16
// activations (half the bytes: GB/s counts 2 an element) stored [N, H, W, C]; *_relu_channels_last_cold
// the float ones of `--memory-format channels-last`, beside the NCHW *_relu_cold.
// The *_cold variants take each iteration's tensors from the next of enough copies to fill 768 MiB, so they
// come from memory, not from the caches the last iteration filled: as in a training step, where a layer's
// activations were written a whole forward pass before its backward reads them. Compare them with the
// warm runs and with `kiln train --profile`.
//
//   build-rest/batchnorm_bench --benchmark_filter=forward_train
#include <benchmark/benchmark.h>

#include <array>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "bench/support/aligned_floats.hpp"
#include "bench/support/cold_copies.hpp"
#include "bench/support/memory_bound.hpp"
#include "core/bfloat16.hpp"
#include "kernels/batchnorm/batchnorm.hpp"

namespace {

namespace kernels = kiln::kernels;
using kernels::BatchNorm2dGeometry;

enum class Pass { ForwardTrain, ForwardEval, BackwardTrain };
enum class Activation { None, Relu, Relu6, Hardswish };  // fused into the batch norm

// One iteration's activations.
template <typename T>
struct Activations {
  std::vector<T, kiln::bench::StorageAlignedAllocator<T>> x, gy, y, out;
};

// Arguments: see bench/support/memory_bound.hpp. T is float or bfloat16, the activations' type; `cold`
// rotates through copies of the activations (the top of the file).
template <typename T>
void run_batchnorm(benchmark::State& state, Pass pass, Activation activation, bool channels_last, bool cold) {
  if (!kiln::bench::cpu_has_level(state)) return;
  const auto& s = kiln::bench::shape_argument(state);
  const BatchNorm2dGeometry g{
      .batch = s[0],
      .channels = s[1],
      .height = s[2],
      .width = s[3],
      .fused_relu = activation == Activation::Relu || activation == Activation::Relu6,
      .relu_upper = activation == Activation::Relu6 ? 6.0f : std::numeric_limits<float>::infinity(),
      .fused_hardswish = activation == Activation::Hardswish,
      .channels_last = channels_last};
  const std::int64_t n = g.batch * g.channels * g.height * g.width;
  const auto size = static_cast<std::size_t>(n), channels = static_cast<std::size_t>(g.channels);
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  Activations<T> first;
  for (auto* tensor : {&first.x, &first.gy, &first.y, &first.out}) tensor->resize(size);
  for (T& v : first.x) v = T(uniform(rng));
  for (T& v : first.gy) v = T(uniform(rng));
  std::vector<float> gamma(channels, 1.5f), beta(channels, 0.1f), running_mean(channels, 0.0f),
      running_var(channels, 1.0f), mean(channels), invstd(channels), ggamma(channels), gbeta(channels);
  kernels::reference::batchnorm2d_forward_train<T>(g, first.x.data(), gamma.data(), beta.data(), 1e-5f, 0.1f,
                                                   nullptr, nullptr, first.y.data(), mean.data(),
                                                   invstd.data());
  const std::size_t copies = cold ? kiln::bench::cold_copies(4.0 * sizeof(T) * static_cast<double>(n)) : 1;
  std::vector<Activations<T>> sets(copies, first);

  const kiln::bench::ArgumentKernelSettings settings(state);
  const auto cpu = kiln::Device::cpu();
  std::size_t next = 0;
  for (auto _ : state) {
    Activations<T>& set = sets[next++ % copies];
    const T* x = set.x.data();
    const T* gy = set.gy.data();
    T* out = set.out.data();
    switch (pass) {
      case Pass::ForwardTrain:
        kernels::batchnorm2d_forward_train<T>(cpu, g, x, gamma.data(), beta.data(), 1e-5f, 0.1f,
                                              running_mean.data(), running_var.data(), out, mean.data(),
                                              invstd.data());
        break;
      case Pass::ForwardEval:
        kernels::batchnorm2d_forward_eval<T>(cpu, g, x, gamma.data(), beta.data(), running_mean.data(),
                                             running_var.data(), 1e-5f, out);
        break;
      case Pass::BackwardTrain:
        kernels::batchnorm2d_backward_train<T>(cpu, g, x, gy, set.y.data(), gamma.data(), beta.data(),
                                               mean.data(), invstd.data(), out, ggamma.data(), gbeta.data());
        break;
    }
    benchmark::DoNotOptimize(out);
    benchmark::ClobberMemory();
  }
  const double tensors = pass == Pass::BackwardTrain ? 3.0 : 2.0;
  kiln::bench::report_bandwidth(state, tensors * sizeof(T) * static_cast<double>(n));
}

void run_float(benchmark::State& state, Pass pass, Activation activation, bool cold = false) {
  run_batchnorm<float>(state, pass, activation, false, cold);
}
void run_float_channels_last(benchmark::State& state, Pass pass, Activation activation, bool cold = false) {
  run_batchnorm<float>(state, pass, activation, true, cold);
}
void run_bf16_channels_last(benchmark::State& state, Pass pass, Activation activation, bool cold = false) {
  run_batchnorm<kiln::bfloat16>(state, pass, activation, true, cold);
}

}  // namespace

BENCHMARK_CAPTURE(run_float, forward_train, Pass::ForwardTrain, Activation::None)
    ->Apply(kiln::bench::shapes_threads_levels);
BENCHMARK_CAPTURE(run_float, forward_eval, Pass::ForwardEval, Activation::None)
    ->Apply(kiln::bench::shapes_threads_levels);
BENCHMARK_CAPTURE(run_float, backward_train, Pass::BackwardTrain, Activation::None)
    ->Apply(kiln::bench::shapes_threads_levels);
BENCHMARK_CAPTURE(run_float, forward_train_relu, Pass::ForwardTrain, Activation::Relu)
    ->Apply(kiln::bench::shapes_threads_levels);
BENCHMARK_CAPTURE(run_float, backward_train_relu, Pass::BackwardTrain, Activation::Relu)
    ->Apply(kiln::bench::shapes_threads_levels);
BENCHMARK_CAPTURE(run_bf16_channels_last, forward_train_relu_bf16_channels_last, Pass::ForwardTrain,
                  Activation::Relu)
    ->Apply(kiln::bench::shapes_threads_levels);
BENCHMARK_CAPTURE(run_bf16_channels_last, backward_train_relu_bf16_channels_last, Pass::BackwardTrain,
                  Activation::Relu)
    ->Apply(kiln::bench::shapes_threads_levels);
BENCHMARK_CAPTURE(run_float, forward_train_relu_cold, Pass::ForwardTrain, Activation::Relu, true)
    ->Apply(kiln::bench::shapes_threads_levels);
BENCHMARK_CAPTURE(run_float, backward_train_cold, Pass::BackwardTrain, Activation::None, true)
    ->Apply(kiln::bench::shapes_threads_levels);
BENCHMARK_CAPTURE(run_float, backward_train_relu_cold, Pass::BackwardTrain, Activation::Relu, true)
    ->Apply(kiln::bench::shapes_threads_levels);
BENCHMARK_CAPTURE(run_float_channels_last, forward_train_relu_channels_last_cold, Pass::ForwardTrain,
                  Activation::Relu, true)
    ->Apply(kiln::bench::shapes_threads_levels);
BENCHMARK_CAPTURE(run_float_channels_last, backward_train_relu_channels_last_cold, Pass::BackwardTrain,
                  Activation::Relu, true)
    ->Apply(kiln::bench::shapes_threads_levels);
BENCHMARK_CAPTURE(run_bf16_channels_last, forward_train_relu_bf16_channels_last_cold, Pass::ForwardTrain,
                  Activation::Relu, true)
    ->Apply(kiln::bench::shapes_threads_levels);
BENCHMARK_CAPTURE(run_bf16_channels_last, backward_train_relu_bf16_channels_last_cold, Pass::BackwardTrain,
                  Activation::Relu, true)
    ->Apply(kiln::bench::shapes_threads_levels);

BENCHMARK_CAPTURE(run_float, forward_train_relu6_cold, Pass::ForwardTrain, Activation::Relu6, true)
    ->Apply(kiln::bench::shapes_threads_levels);
BENCHMARK_CAPTURE(run_float, backward_train_relu6_cold, Pass::BackwardTrain, Activation::Relu6, true)
    ->Apply(kiln::bench::shapes_threads_levels);
BENCHMARK_CAPTURE(run_bf16_channels_last, forward_train_relu6_bf16_channels_last_cold, Pass::ForwardTrain,
                  Activation::Relu6, true)
    ->Apply(kiln::bench::shapes_threads_levels);
BENCHMARK_CAPTURE(run_bf16_channels_last, backward_train_relu6_bf16_channels_last_cold, Pass::BackwardTrain,
                  Activation::Relu6, true)
    ->Apply(kiln::bench::shapes_threads_levels);

BENCHMARK_CAPTURE(run_float, forward_train_hardswish_cold, Pass::ForwardTrain, Activation::Hardswish, true)
    ->Apply(kiln::bench::shapes_threads_levels);
BENCHMARK_CAPTURE(run_float, backward_train_hardswish_cold, Pass::BackwardTrain, Activation::Hardswish, true)
    ->Apply(kiln::bench::shapes_threads_levels);

BENCHMARK_MAIN();
