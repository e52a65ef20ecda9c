// The CPU level's ceiling (kernels/cpu_level.hpp): the detected level capped by KILN_CPU_LEVEL, fixed for the
// process, where set_cpu_level moves only the level dispatch uses. CTest runs this file at the detected level
// and again at KILN_CPU_LEVEL=avx2 and reference (CMakeLists.txt), so each cap is checked where it applies.
#include "kernels/cpu_level.hpp"

#include <doctest/doctest.h>

#include <cstdlib>
#include <string_view>
#include <vector>

#include "tests/support/fast_kernel_testing.hpp"

namespace kernels_cpu_level_test {

using namespace kiln;
using kernels::CpuLevel;

namespace {

// What the environment asks for, worked out here rather than by the code under test.
CpuLevel expected_ceiling() {
  const char* forced = std::getenv("KILN_CPU_LEVEL");
  const CpuLevel detected = kernels::detected_cpu_level();
  if (forced == nullptr) return detected;
  const std::string_view text(forced);
  const CpuLevel wanted = text == "reference" ? CpuLevel::Reference
                          : text == "avx2"    ? CpuLevel::Avx2
                                              : CpuLevel::Avx512;
  return static_cast<int>(wanted) < static_cast<int>(detected) ? wanted : detected;
}

TEST_CASE(
    "cpu level: the ceiling is the detected level capped by KILN_CPU_LEVEL, and set_cpu_level leaves it") {
  const CpuLevel ceiling = expected_ceiling();
  INFO("KILN_CPU_LEVEL=", (std::getenv("KILN_CPU_LEVEL") ? std::getenv("KILN_CPU_LEVEL") : "(unset)"));
  CHECK(kernels::cpu_level_ceiling() == ceiling);

  const testing::DispatchGuard guard;
  kernels::set_cpu_level(CpuLevel::Reference);
  CHECK(kernels::cpu_level() == CpuLevel::Reference);
  CHECK(kernels::cpu_level_ceiling() == ceiling);
  kernels::set_cpu_level(kernels::detected_cpu_level());  // a test may still run what the ceiling caps
  CHECK(kernels::cpu_level() == kernels::detected_cpu_level());
  CHECK(kernels::cpu_level_ceiling() == ceiling);
}

TEST_CASE("cpu level: the fast-kernel tests' levels are the fast ones up to the ceiling, widest first") {
  std::vector<CpuLevel> expected;
  for (const CpuLevel level : {CpuLevel::Avx512, CpuLevel::Avx2}) {
    if (static_cast<int>(level) <= static_cast<int>(expected_ceiling())) expected.push_back(level);
  }
  CHECK(testing::fast_levels() == expected);
}

}  // namespace
}  // namespace kernels_cpu_level_test
