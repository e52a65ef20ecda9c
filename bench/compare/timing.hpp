// How the CPU comparison times one case: warm up, then repeat and take the median, within a time budget
// so that a slow kernel (kiln's reference loops take seconds per call) does not stretch the run to hours.
#pragma once

#include <algorithm>
#include <chrono>
#include <vector>

namespace kiln::bench::compare {

struct TimingOptions {
  int warmup = 1;         // untimed runs first (caches, page faults, lazily built kernels)
  int max_reps = 10;      // timed runs at most
  double budget_s = 2.0;  // stop repeating once the timed runs have taken this long (at least one runs)
};

struct Timing {
  double median_ms = 0.0;
  double min_ms = 0.0;  // reported too: on a busy machine the fastest run is the least disturbed one
  int reps = 0;
};

// Runs `work` as the options say and returns the median of the timed runs. A case whose warm-up run
// alone exceeds the budget is not run again: that run is the one sample (at seconds per call, the first
// run's cold caches are noise).
template <typename Work>
Timing time_median(const TimingOptions& options, Work&& work) {
  using Clock = std::chrono::steady_clock;
  const auto milliseconds_since = [](Clock::time_point start) {
    return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
  };
  std::vector<double> samples;
  for (int i = 0; i < options.warmup; ++i) {
    const auto start = Clock::now();
    work();
    const double ms = milliseconds_since(start);
    if (ms >= options.budget_s * 1000.0) return {ms, ms, 1};
  }
  double spent_ms = 0.0;
  while (samples.empty() ||
         (static_cast<int>(samples.size()) < options.max_reps && spent_ms < options.budget_s * 1000.0)) {
    const auto start = Clock::now();
    work();
    samples.push_back(milliseconds_since(start));
    spent_ms += samples.back();
  }
  std::sort(samples.begin(), samples.end());
  const std::size_t n = samples.size();
  const double median = n % 2 ? samples[n / 2] : 0.5 * (samples[n / 2 - 1] + samples[n / 2]);
  return {median, samples.front(), static_cast<int>(n)};
}

}  // namespace kiln::bench::compare
