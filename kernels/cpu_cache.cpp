#include "kernels/cpu_cache.hpp"

#include <unistd.h>

#include <atomic>

#include "core/error.hpp"

namespace kiln::kernels {
namespace {

constexpr std::int64_t kUnknownL2Bytes = std::int64_t{1} << 20;

std::int64_t detected_l2_bytes() {
  static const std::int64_t bytes = [] {
    const long answer = sysconf(_SC_LEVEL2_CACHE_SIZE);
    return answer > 0 ? static_cast<std::int64_t>(answer) : kUnknownL2Bytes;
  }();
  return bytes;
}

std::atomic<std::int64_t> override_bytes{0};

}  // namespace

std::int64_t per_core_l2_bytes() {
  const std::int64_t set = override_bytes.load(std::memory_order_relaxed);
  return set > 0 ? set : detected_l2_bytes();
}

void set_per_core_l2_bytes(std::int64_t bytes) {
  KILN_CHECK(bytes >= 0, "set_per_core_l2_bytes: bytes must be >= 0, got ", bytes);
  override_bytes.store(bytes, std::memory_order_relaxed);
}

}  // namespace kiln::kernels
