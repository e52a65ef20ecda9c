// wgmma_available() for the CUDA build (hopper.hpp); the CPU emulator defines its own.
#include <cuda_runtime.h>

#include <atomic>

#include "core/cuda_runtime.hpp"
#include "core/error.hpp"
#include "kernels/ladder/hopper.hpp"

namespace kiln::kernels::ladder {

bool wgmma_available() {
#ifdef KILN_CUDA_SM90A
  // Asked of the runtime once per device: 0 not yet known, 1 compute capability 9.0, 2 another.
  constexpr int kMaxDevices = 64;
  static std::atomic<int> answers[kMaxDevices] = {};
  if (::kiln::cuda::device_count() == 0) return false;  // no GPU, or no driver: nothing to run on
  const int device = ::kiln::cuda::current_device();
  KILN_CHECK(device >= 0 && device < kMaxDevices, "kernel ladder: device ", device, " is past the ",
             kMaxDevices, " this build counts");
  int answer = answers[device].load(std::memory_order_relaxed);
  if (answer == 0) {
    int major = 0, minor = 0;
    const cudaError_t major_status =
        cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, device);
    const cudaError_t minor_status =
        cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, device);
    if (major_status != cudaSuccess || minor_status != cudaSuccess)
      fail("kernel ladder: cudaDeviceGetAttribute(ComputeCapability) on cuda:", device,
           " failed: ", cudaGetErrorString(major_status != cudaSuccess ? major_status : minor_status));
    answer = major == 9 && minor == 0 ? 1 : 2;
    answers[device].store(answer, std::memory_order_relaxed);
  }
  return answer == 1;
#else
  return false;  // built without sm_90a code: the wgmma kernels are stubs
#endif
}

}  // namespace kiln::kernels::ladder
