#include <cstdlib>
#include <cstring>

#include "kernels/amx/amx.hpp"
#include "kernels/cpu_level.hpp"

#if defined(__linux__) && defined(__x86_64__)
#include <cpuid.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace kiln::kernels {
namespace {

#if defined(__linux__) && defined(__x86_64__)
constexpr unsigned kArchReqXcompPerm = 0x1023;  // arch_prctl: ask for an extended state component
constexpr unsigned kXfeatureXtiledata = 18;     // the tile data's state component

bool cpu_and_os_have_amx_bf16() {
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (!__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx)) return false;
  const bool tile = (edx >> 24) & 1u, bf16 = (edx >> 22) & 1u;
  if (!tile || !bf16) return false;
  if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx) || !((ecx >> 27) & 1u)) return false;  // OSXSAVE
  unsigned xcr0_low = 0, xcr0_high = 0;
  __asm__ volatile("xgetbv" : "=a"(xcr0_low), "=d"(xcr0_high) : "c"(0));
  if (((xcr0_low >> 17) & 3u) != 3u) return false;  // XTILECFG and XTILEDATA
  return syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
}
#else
bool cpu_and_os_have_amx_bf16() { return false; }
#endif

bool switched_off() {
  const char* setting = std::getenv("KILN_AMX");
  return setting != nullptr && std::strcmp(setting, "0") == 0;
}

}  // namespace

bool amx_bf16_usable() {
  static const bool available = !switched_off() && cpu_and_os_have_amx_bf16();
  return available && cpu_level() == CpuLevel::Avx512;
}

}  // namespace kiln::kernels
