// Intel AMX (Advanced Matrix Extensions, Sapphire Rapids and later): eight tile registers of up to 16 rows
// of 64 bytes, and a tile multiply (TDPBF16PS) that adds a 16 x 16 float tile the products of a 16 x 32
// bfloat16 tile and a 32 x 16 one, pairs of products summed in float, in one instruction: 16 times the
// multiply-adds of an AVX-512 FMA. kiln's bfloat16 kernels on the CPU use it where it is there
// (kernels/conv2d/amx_bf16_conv.cpp).
//
// Using it takes three things: the CPU has it (CPUID: AMX-TILE and AMX-BF16), the operating system saves
// the tile state (XCR0's XTILECFG and XTILEDATA bits), and the process has asked Linux for permission to
// use that state (arch_prctl ARCH_REQ_XCOMP_PERM, once per process); a tile instruction without the
// permission dies with SIGILL. amx_bf16_usable() checks all three, asking once, and the answer never
// changes. KILN_AMX=0 in the environment turns AMX off (the kernels then take the AVX-512 paths), for tests
// and comparisons.
#pragma once

namespace kiln::kernels {

// True when this process may run AMX bfloat16 tile instructions (see the top), and the CPU level allows
// AVX-512 (the kernels around the tile multiplies are AVX-512).
bool amx_bf16_usable();

}  // namespace kiln::kernels
