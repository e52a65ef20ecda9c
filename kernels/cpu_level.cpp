#include "kernels/cpu_level.hpp"

#include <atomic>
#include <cstdlib>
#include <string>

#include "core/cuda_runtime.hpp"
#include "core/error.hpp"

namespace kiln::kernels {
namespace {

CpuLevel parse_level(std::string_view text) {
  if (text == "reference") return CpuLevel::Reference;
  if (text == "avx2") return CpuLevel::Avx2;
  if (text == "avx512") return CpuLevel::Avx512;
  fail("KILN_CPU_LEVEL: unknown level '", std::string(text), "' (expected reference, avx2 or avx512)");
}

CpuLevel capped(CpuLevel wanted) {
  const CpuLevel detected = detected_cpu_level();
  return static_cast<int>(wanted) < static_cast<int>(detected) ? wanted : detected;
}

std::atomic<CpuLevel>& current_level() {
  static std::atomic<CpuLevel> level{cpu_level_ceiling()};
  return level;
}

}  // namespace

CpuLevel detected_cpu_level() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq")) {
    return CpuLevel::Avx512;
  }
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) return CpuLevel::Avx2;
#endif
  return CpuLevel::Reference;
}

CpuLevel cpu_level_ceiling() {
  static const CpuLevel ceiling = [] {
    const char* forced = std::getenv("KILN_CPU_LEVEL");
    return forced ? capped(parse_level(forced)) : detected_cpu_level();
  }();
  return ceiling;
}

CpuLevel cpu_level() { return current_level().load(std::memory_order_relaxed); }

bool avx512_bf16_usable() {
  static const bool available = [] {
    const char* setting = std::getenv("KILN_AVX512_BF16");
    if (setting != nullptr && std::string_view(setting) == "0") return false;
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512bf16") != 0;
#else
    return false;
#endif
  }();
  return available && cpu_level() == CpuLevel::Avx512;
}

void set_cpu_level(CpuLevel level) { current_level().store(capped(level), std::memory_order_relaxed); }

std::string_view cpu_level_name(CpuLevel level) {
  switch (level) {
    case CpuLevel::Reference: return "reference";
    case CpuLevel::Avx2: return "avx2";
    case CpuLevel::Avx512: return "avx512";
  }
  return "unknown";
}

void require_cpu(Device device, std::string_view op) {
  KILN_CHECK(device.is_cpu(), std::string(op), ": no kernel for device ", device.str(),
             cuda::built_with_cuda() ? "" : " (this kiln was built without CUDA)");
}

}  // namespace kiln::kernels
