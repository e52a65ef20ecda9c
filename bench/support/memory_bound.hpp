// What the memory-bound kernel benchmarks (batchnorm_bench, elementwise_bench, pool_bench) share: the
// activation shapes they run on, the (shape, threads, level) argument grid, running the kernels
// at the level and thread count the arguments name, and the GB/s counter.
#pragma once

#include <benchmark/benchmark.h>

#include <array>
#include <cstdint>
#include <string>

#include "kernels/cpu_level.hpp"
#include "kernels/parallel.hpp"

namespace kiln::bench {

using ActivationShape = std::array<std::int64_t, 4>;  // [N, C, H, W]

// ResNet-20's three stages at batch 128 (shapes 0 to 2), then two of MobileNet's deep layers (3 and 4),
// whose planes of 16 and 4 values are shorter than one AVX-512 vector.
inline constexpr std::array<ActivationShape, 5> kActivations{
    {{128, 16, 32, 32}, {128, 32, 16, 16}, {128, 64, 8, 8}, {128, 512, 4, 4}, {128, 1024, 2, 2}}};

// Arguments of a memory-bound benchmark: shape index, threads, CPU level (0 reference, 1 avx2, 2 avx512).
inline const ActivationShape& shape_argument(const benchmark::State& state) {
  return kActivations[static_cast<std::size_t>(state.range(0))];
}
inline int threads_argument(const benchmark::State& state) { return static_cast<int>(state.range(1)); }
inline kernels::CpuLevel level_argument(const benchmark::State& state) {
  return static_cast<kernels::CpuLevel>(state.range(2));
}

// Every (shape, threads, level) combination, levels outermost.
inline void shapes_threads_levels(benchmark::internal::Benchmark* bench) {
  bench->ArgNames({"shape", "threads", "level"});
  for (const int level : {0, 1, 2}) {
    for (const int threads : {1, 2}) {
      for (int shape = 0; shape < static_cast<int>(kActivations.size()); ++shape)
        bench->Args({shape, threads, level});
    }
  }
  bench->Unit(benchmark::kMicrosecond);
}

// False, with the benchmark skipped, when this CPU lacks the level the arguments ask for.
inline bool cpu_has_level(benchmark::State& state) {
  if (kernels::detected_cpu_level() >= level_argument(state)) return true;
  state.SkipWithError("this CPU lacks the level");
  return false;
}

// While alive, the kernels run at the arguments' level and thread count; afterwards at the detected level
// on every core again.
class ArgumentKernelSettings {
 public:
  explicit ArgumentKernelSettings(const benchmark::State& state) {
    kernels::set_compute_threads(threads_argument(state));
    kernels::set_cpu_level(level_argument(state));
  }
  ~ArgumentKernelSettings() {
    kernels::set_cpu_level(kernels::detected_cpu_level());
    kernels::set_compute_threads(0);
  }
  ArgumentKernelSettings(const ArgumentKernelSettings&) = delete;
  ArgumentKernelSettings& operator=(const ArgumentKernelSettings&) = delete;
};

// Reports GB/s for `bytes` moved per iteration, and labels the run with its CPU level.
inline void report_bandwidth(benchmark::State& state, double bytes) {
  state.counters["GB"] = benchmark::Counter(bytes * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
  state.SetLabel(std::string(kernels::cpu_level_name(level_argument(state))));
}

}  // namespace kiln::bench
