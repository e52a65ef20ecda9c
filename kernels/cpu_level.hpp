// The CPU instruction-set level kernels may use, chosen once per process.
//
// Every op's dispatch.cpp asks `cpu_level()` which version to run. The level is the best the CPU supports,
// lowered (never raised) by the KILN_CPU_LEVEL environment variable (reference | avx2 | avx512), so each
// path can be tested and benchmarked on one machine.
#pragma once

#include <string_view>

#include "core/device.hpp"

namespace kiln::kernels {

enum class CpuLevel { Reference = 0, Avx2 = 1, Avx512 = 2 };

CpuLevel detected_cpu_level();  // what the hardware supports (AVX2 means AVX2+FMA; AVX-512 means F+BW+VL+DQ)
CpuLevel cpu_level_ceiling();   // detected, capped by KILN_CPU_LEVEL (read once): where cpu_level() starts
CpuLevel cpu_level();           // the level dispatch uses now: the ceiling, unless set_cpu_level moved it
void set_cpu_level(CpuLevel);   // explicit override (tests, --cpu-level); capped at the detected level
std::string_view cpu_level_name(CpuLevel);

// Whether kernels may use AVX512-BF16 (VDPBF16PS, bfloat16 pair dot products summed in float: Cooper Lake,
// Sapphire Rapids, Zen 4 and later): the CPU has it, the level is Avx512, and KILN_AVX512_BF16 is not 0 in
// the environment (which keeps bfloat16 on the float kernels, for tests and comparisons).
bool avx512_bf16_usable();

// Throws a kiln::Error naming `op` unless `device` is the CPU. Dispatch functions call this before running
// a CPU kernel on pointers they were given: a CUDA device reaches it only where the build has no CUDA
// kernels (or the op has none).
void require_cpu(Device device, std::string_view op);

}  // namespace kiln::kernels
