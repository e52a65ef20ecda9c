// wgmma_available() for the CUDA build (hopper.hpp); the CPU emulator defines its own.
#include "core/cuda_runtime.hpp"
#include "kernels/ladder/hopper.hpp"

namespace kiln::kernels::ladder {

bool wgmma_available() {
#ifdef KILN_CUDA_SM90A
  if (::kiln::cuda::device_count() == 0) return false;  // no GPU, or no driver: nothing to run on
  const ::kiln::cuda::DeviceProperties device =
      ::kiln::cuda::device_properties(::kiln::cuda::current_device());
  return device.major == 9 && device.minor == 0;
#else
  return false;  // built without sm_90a code: the wgmma kernels are stubs
#endif
}

}  // namespace kiln::kernels::ladder
