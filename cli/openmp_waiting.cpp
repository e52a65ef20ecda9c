#include "cli/openmp_waiting.hpp"

#include <unistd.h>

#include <cstdlib>

namespace kiln::cli {
namespace {

constexpr const char* kSpinCount = "100000";  // the header says why

}  // namespace

void settle_openmp_waiting(char** argv) {
  if (std::getenv("GOMP_SPINCOUNT") != nullptr || std::getenv("OMP_WAIT_POLICY") != nullptr) return;
  if (setenv("GOMP_SPINCOUNT", kSpinCount, 0) != 0) return;
  execv("/proc/self/exe", argv);  // returns only if it failed: then this process goes on as it is
}

}  // namespace kiln::cli
