// Prints this machine's measured FP32 peak (see bench/support/peak.hpp) for 1..all threads, as the
// denominator of every "% of peak" the other benchmarks report.
#include <benchmark/benchmark.h>
#include <omp.h>

#include "bench/support/peak.hpp"

static void fp32_peak(benchmark::State& state) {
  const int threads = static_cast<int>(state.range(0));
  double gflops = 0.0;
  for (auto _ : state) gflops = kiln::bench::fp32_peak_gflops(threads);
  state.counters["GFLOP/s"] = gflops;
  state.counters["per_core"] = gflops / threads;
}
BENCHMARK(fp32_peak)->DenseRange(1, omp_get_num_procs())->Iterations(1)->Unit(benchmark::kMillisecond);

BENCHMARK_MAIN();
