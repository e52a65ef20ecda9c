// fast_kernel_testing: what a fast-kernel test needs besides matches_reference: a guard restoring the
// dispatch level and thread count, the fast levels this CPU has (a missing one is skipped with a MESSAGE
// naming it, never failed), seeded random inputs, bitwise comparison, and a run on 1 and 2 threads that
// must agree bitwise.
//
//   at_each_fast_level([&] {  // avx512, then avx2, where the CPU has them; restores level and threads
//     const std::vector<float> x = random_floats(n, /*seed=*/1);
//     const std::vector<float> y = one_and_two_threads(x.size(), [&](std::vector<float>& out) {
//       kernels::unary_forward(Device::cpu(), UnaryOp::Relu, {}, n, x.data(), out.data());
//     });
//     CHECK(bitwise_equal(y, expected));
//   });
//
// A test that loops over fast_levels() itself, or sets threads itself, holds a DispatchGuard instead.
#pragma once

#include <doctest/doctest.h>

#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "kernels/cpu_cache.hpp"
#include "kernels/cpu_level.hpp"
#include "kernels/parallel.hpp"

namespace kiln::testing {

// Restores the process-wide CPU level and compute thread count when a test ends, even when it fails.
class DispatchGuard {
 public:
  DispatchGuard() : level_(kernels::cpu_level()), threads_(kernels::compute_threads()) {}
  ~DispatchGuard() {
    kernels::set_cpu_level(level_);
    kernels::set_compute_threads(threads_);
  }
  DispatchGuard(const DispatchGuard&) = delete;
  DispatchGuard& operator=(const DispatchGuard&) = delete;

 private:
  kernels::CpuLevel level_;
  int threads_;
};

// While alive, kernels that size their walks by L2 (kernels/cpu_cache.hpp) plan for `bytes` of it, so a test
// can steer them onto the walk it checks; the detected size comes back afterwards.
class L2SizeGuard {
 public:
  explicit L2SizeGuard(std::int64_t bytes) { kernels::set_per_core_l2_bytes(bytes); }
  ~L2SizeGuard() { kernels::set_per_core_l2_bytes(0); }
  L2SizeGuard(const L2SizeGuard&) = delete;
  L2SizeGuard& operator=(const L2SizeGuard&) = delete;
};

// The fast levels this CPU has, up to the ceiling KILN_CPU_LEVEL sets (kernels::cpu_level_ceiling()), widest
// first; a level it lacks or the ceiling excludes is reported with a MESSAGE naming it, never failed. The
// ceiling is why CTest's runs of the op tests at KILN_CPU_LEVEL=avx2 and reference (CMakeLists.txt) do not
// repeat the fast-kernel comparisons the default run made at every level: at avx2 they run AVX2's alone, at
// reference none, and the op, layer and model tests around them run on that level's kernels as before.
inline std::vector<kernels::CpuLevel> fast_levels() {
  std::vector<kernels::CpuLevel> levels;
  for (const kernels::CpuLevel level : {kernels::CpuLevel::Avx512, kernels::CpuLevel::Avx2}) {
    if (static_cast<int>(kernels::detected_cpu_level()) < static_cast<int>(level)) {
      MESSAGE("skipping ", kernels::cpu_level_name(level), ": this CPU lacks it");
    } else if (static_cast<int>(kernels::cpu_level_ceiling()) < static_cast<int>(level)) {
      MESSAGE("skipping ", kernels::cpu_level_name(level), ": KILN_CPU_LEVEL caps the level below it");
    } else {
      levels.push_back(level);
    }
  }
  return levels;
}

// Calls body() once at each of fast_levels(), with that level set for dispatch and named in any failure;
// the level and thread count in force before are restored afterwards.
template <class Body>
void at_each_fast_level(Body&& body) {
  DispatchGuard guard;
  for (const kernels::CpuLevel level : fast_levels()) {
    kernels::set_cpu_level(level);
    INFO(kernels::cpu_level_name(level));
    body();
  }
}

// count values uniform in [low, high) from Engine seeded with seed. mt19937_64 unless a test asks for
// another engine (the conv2d and im2col tests draw from std::mt19937).
template <class Engine = std::mt19937_64>
std::vector<float> random_floats(std::int64_t count, std::uint64_t seed, float low = -1.0f,
                                 float high = 1.0f) {
  Engine engine(seed);
  std::uniform_real_distribution<float> uniform(low, high);
  std::vector<float> values(static_cast<std::size_t>(count));
  for (float& v : values) v = uniform(engine);
  return values;
}

// count values uniform in [low, high), drawn as float by random_floats and converted to T, so a float and a
// double test see the same numbers.
template <typename T>
std::vector<T> random_values(std::int64_t count, std::uint64_t seed, float low = -1.0f, float high = 1.0f) {
  const std::vector<float> drawn = random_floats(count, seed, low, high);
  return std::vector<T>(drawn.begin(), drawn.end());
}

// True when both hold the same bit patterns (so equal NaNs count as equal, and -0.0 differs from +0.0).
template <typename T>
bool bitwise_equal(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0;
}

// Runs fast(out) into an n-float out with 1 and then 2 threads, checks the two agree bitwise, and returns
// the 1-thread result. The two outputs start with different values, so an element fast leaves unwritten
// shows up as a difference.
template <class Fast>
std::vector<float> one_and_two_threads(std::size_t n, Fast&& fast) {
  std::vector<float> one(n, -7.0f), two(n, -9.0f);
  kernels::set_compute_threads(1);
  fast(one);
  kernels::set_compute_threads(2);
  fast(two);
  CHECK_MESSAGE(bitwise_equal(one, two), "1 and 2 threads differ");
  return one;
}

}  // namespace kiln::testing
