// wgmma_available() for a build without CUDA: no device, no wgmma. The CUDA build defines it in hopper.cu,
// the CPU emulator in tests/emulation/cuda_emulator.cpp.
#include "kernels/ladder/hopper.hpp"

namespace kiln::kernels::ladder {

#ifndef KILN_WITH_CUDA
bool wgmma_available() { return false; }
#endif

}  // namespace kiln::kernels::ladder
