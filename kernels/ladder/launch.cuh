// How a ladder step launches its kernel, declares dynamic shared memory, gets scratch memory and learns the
// GPU's multiprocessor count: the places where a step touches the CUDA runtime, kept here so that the steps'
// files hold kernels and nothing else, and so that the CPU emulator (tests/emulation) can run the very same
// files: built with KILN_CUDA_EMULATION, the launch runs the grid on CPU threads and the shared memory is the
// emulator's (scratch memory and the multiprocessor count come from the emulated runtime, as on a GPU from
// the real one). Included by .cu files only.
//
//   __global__ void tile_kernel(Problem p, const float* a, float* c) {
//     KILN_DYNAMIC_SHARED_MEMORY(shared);                      // unsigned char*, 16-byte aligned
//     float* tile = reinterpret_cast<float*>(shared);
//     ...
//   }
//   ladder::launch("gemm ladder 05_mma_tf32", tile_kernel, grid, dim3(256), shared_bytes, p, a, c);
//   const ladder::Scratch partials(splits * outputs * sizeof(float));   // partials.as<float>()
//
// Everything else a step's device code may use: threadIdx, blockIdx, blockDim, gridDim, __syncthreads,
// __shfl_*_sync, static __shared__ arrays (`__shared__ __align__(16) float tile[..]`), float2 / float4 /
// uint2 / uint4 and make_*, __float_as_uint / __uint_as_float, fmaf / fminf / fmaxf, min / max,
// kiln::bfloat16, #pragma unroll, __restrict__, __forceinline__, __launch_bounds__, __grid_constant__, and
// the wrappers in mma.cuh, wgmma.cuh, cp_async.cuh, mbarrier.cuh, tma.cuh and warpgroup_registers.cuh. No
// inline PTX outside those headers.
#pragma once

#include <cstddef>
#include <memory>

#include "core/cuda_runtime.hpp"
#include "core/storage.hpp"

#ifdef KILN_CUDA_EMULATION

#include "kernels/cuda_launch.cuh"  // emulation::run_grid

namespace kiln::emulation {
// The calling block's dynamic shared memory.
unsigned char* dynamic_shared_memory();
// Host memory the emulated kernels may treat as device memory (a cp.async must read from such a buffer).
void register_device_buffer(const void* data, std::size_t bytes);
void unregister_device_buffer(const void* data);
}  // namespace kiln::emulation

#define KILN_DYNAMIC_SHARED_MEMORY(name) \
  unsigned char* const name = ::kiln::emulation::dynamic_shared_memory()

namespace kiln::kernels::ladder {

template <typename... Parameters, typename... Arguments>
void launch(const char* name, void (*kernel)(Parameters...), dim3 grid, dim3 block, std::size_t shared_bytes,
            Arguments... arguments) {
  emulation::run_grid(name, grid, block, shared_bytes, [=] { kernel(arguments...); });
}

}  // namespace kiln::kernels::ladder

#else  // CUDA

#include <cuda_runtime.h>

#include "core/error.hpp"

#define KILN_DYNAMIC_SHARED_MEMORY(name) extern __shared__ __align__(16) unsigned char name[]

namespace kiln::kernels::ladder {

// Above 48 KiB a kernel's dynamic shared memory must be allowed explicitly, per kernel and device: done on
// every launch that needs it (a cheap attribute write), so a second GPU is not forgotten.
inline constexpr std::size_t kDefaultSharedLimitBytes = 48 * 1024;

// Launches kernel<<<grid, block, shared_bytes>>>(arguments...) on the current device's compute stream
// (cuda::compute_stream) and checks the launch, naming the step in any error.
template <typename... Parameters, typename... Arguments>
void launch(const char* name, void (*kernel)(Parameters...), dim3 grid, dim3 block, std::size_t shared_bytes,
            Arguments... arguments) {
  if (shared_bytes > kDefaultSharedLimitBytes) {
    const cudaError_t status = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                                    static_cast<int>(shared_bytes));
    if (status != cudaSuccess) {
      cudaGetLastError();  // clear it, or the next launch's check would report it again
      fail(name, ": cudaFuncSetAttribute(MaxDynamicSharedMemorySize, ", shared_bytes,
           " bytes) failed: ", cudaGetErrorString(status));
    }
  }
  // clang-format takes a .cuh for C++ and would split the >>>.
  // clang-format off
  kernel<<<grid, block, shared_bytes, static_cast<cudaStream_t>(::kiln::cuda::current_compute_stream())>>>(
      arguments...);
  // clang-format on
  ::kiln::cuda::check_launch(name);
}

}  // namespace kiln::kernels::ladder

#endif

// What follows is the same on a GPU and on the emulator, whose runtime (tests/emulation/emulated_runtime.cpp)
// allocates device memory and reports an H100's 132 multiprocessors.
namespace kiln::kernels::ladder {

// Scratch memory for a launcher's kernels (split-K partial sums, NHWC copies), on the current device, from
// kiln's caching allocator. It goes back when the launcher returns, before its kernels have run, and that is
// safe: the allocator hands a block out again only to work queued after them on the same (compute) stream.
class Scratch {
 public:
  explicit Scratch(std::size_t bytes)
      : storage_(Storage::allocate(bytes, Device::cuda(::kiln::cuda::current_device()))) {}
  template <typename T>
  T* as() const {
    return static_cast<T*>(storage_->data());
  }

 private:
  std::shared_ptr<Storage> storage_;
};

// The current device's multiprocessor count, which a step sizes its grid by when the output alone would
// leave most of the GPU idle (split-K). Asked of the runtime once per device (cuda::device_properties).
inline int multiprocessors() {
  return ::kiln::cuda::device_properties(::kiln::cuda::current_device()).multiprocessors;
}

}  // namespace kiln::kernels::ladder
