// Whether the ladders' Hopper steps (wgmma: sm_90a code, kernels/ladder/wgmma.cuh) can run: only where the
// build carries sm_90a code (CMake's CUDA architectures include 90a, the default) and the current device is
// of compute capability 9.0 (H100, H200). Elsewhere their kernels are stubs that trap, so their `takes`
// tests ask this first and the steps refuse, by name, instead of launching. The CPU emulator answers true:
// it emulates an H100.
#pragma once

namespace kiln::kernels::ladder {

bool wgmma_available();

}  // namespace kiln::kernels::ladder
