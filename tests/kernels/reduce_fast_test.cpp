// Tests of the vectorized float Sum (kernels/reduce/avx512.cpp, avx2.cpp) against the reference, at every
// dispatch level this CPU has, with 1 and 2 threads (which must agree bitwise): row sums (inner 1), from a
// single value to a row longer than one parallel piece, and column sums (a Linear bias gradient) with
// column counts around the vector widths.
//
// Tolerances: column sums equal the reference bitwise (the same double additions in the same order); row
// sums within atol 1e-6 + rtol 1e-7 (double lanes added in another order: at most one float rounding off).
#include <doctest/doctest.h>

#include <cstdint>
#include <vector>

#include "kernels/cpu_level.hpp"
#include "kernels/parallel.hpp"
#include "kernels/reduce/reduce.hpp"
#include "tests/support/fast_kernel_testing.hpp"
#include "tests/support/matches_reference.hpp"

namespace kernels_reduce_fast_test {

namespace {

using kiln::Device;
using kiln::kernels::CpuLevel;
using kiln::kernels::ReduceGeometry;
using kiln::kernels::ReduceOp;
using kiln::testing::bitwise_equal;
using kiln::testing::DispatchGuard;
using kiln::testing::fast_levels;
using kiln::testing::random_floats;
namespace kk = kiln::kernels;

}  // namespace

TEST_CASE("reduce fast: float Sum matches the reference at every level, 1 and 2 threads") {
  DispatchGuard guard;
  const std::vector<ReduceGeometry> geometries{
      {.outer = 1, .reduced = 1, .inner = 1},      {.outer = 3, .reduced = 17, .inner = 1},
      {.outer = 1, .reduced = 100003, .inner = 1}, {.outer = 5, .reduced = 0, .inner = 1},
      {.outer = 1, .reduced = 128, .inner = 10},   {.outer = 2, .reduced = 7, .inner = 33},
      {.outer = 3, .reduced = 5, .inner = 100},    {.outer = 1, .reduced = 300, .inner = 257},
  };
  for (const CpuLevel level : fast_levels()) {
    kk::set_cpu_level(level);
    for (const ReduceGeometry& g : geometries) {
      INFO(kk::cpu_level_name(level), " [", g.outer, ",", g.reduced, ",", g.inner, "]");
      const std::vector<float> x = random_floats(g.outer * g.reduced * g.inner, 1, -1.0f, 2.0f);
      const auto outputs = static_cast<std::size_t>(g.outer * g.inner);
      std::vector<float> expected(outputs), one(outputs), two(outputs);
      kk::reference::reduce(ReduceOp::Sum, g, x.data(), expected.data());
      kk::set_compute_threads(1);
      kk::reduce(Device::cpu(), ReduceOp::Sum, g, x.data(), one.data());
      kk::set_compute_threads(2);
      kk::reduce(Device::cpu(), ReduceOp::Sum, g, x.data(), two.data());
      CHECK(bitwise_equal(one, two));
      if (g.inner > 1) {
        CHECK(bitwise_equal(one, expected));
      } else {
        const auto report = kiln::testing::matches_reference(
            one.data(), expected.data(), static_cast<std::int64_t>(outputs), {1e-6, 1e-7});
        CHECK_MESSAGE(report.ok, report.message);
      }
    }
  }
}

}  // namespace kernels_reduce_fast_test
