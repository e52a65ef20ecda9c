// How a ladder step launches its kernel, declares dynamic shared memory, gets scratch memory and learns the
// GPU's multiprocessor count: the places where a step touches the CUDA runtime, kept here so that the steps'
// files hold kernels and nothing else, and so that the CPU emulator (tests/emulation) can run the very same
// files: built with KILN_CUDA_EMULATION, the launch runs the grid on CPU threads and the shared memory is the
// emulator's. Included by .cu files only.
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
// kiln::bfloat16, #pragma unroll, __restrict__, __forceinline__, __launch_bounds__, __grid_constant__, and the
// wrappers in mma.cuh, wgmma.cuh, cp_async.cuh, mbarrier.cuh, tma.cuh and warpgroup_registers.cuh. No inline
// PTX outside those headers.
#pragma once

#include <cstddef>

#ifdef KILN_CUDA_EMULATION

#include <new>

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

// Scratch memory for a launcher's kernels (split-K partial sums, NHWC copies): host memory, as every "device"
// pointer is in emulation, where each launch has finished when it returns; registered as device memory, so
// the kernels may cp.async from it.
class Scratch {
 public:
  explicit Scratch(std::size_t bytes)
      : bytes_(new (std::align_val_t{16}) unsigned char[bytes > 0 ? bytes : 1]) {
    emulation::register_device_buffer(bytes_, bytes);
  }
  ~Scratch() {
    emulation::unregister_device_buffer(bytes_);
    ::operator delete[](bytes_, std::align_val_t{16});
  }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  template <typename T>
  T* as() const {
    return reinterpret_cast<T*>(bytes_);
  }

 private:
  unsigned char* bytes_;
};

template <typename... Parameters, typename... Arguments>
void launch(const char* name, void (*kernel)(Parameters...), dim3 grid, dim3 block, std::size_t shared_bytes,
            Arguments... arguments) {
  emulation::run_grid(name, grid, block, shared_bytes, [&] { kernel(arguments...); });
}

// An H100's (and H200's) count, so the emulator runs the grids a GPU of the target would.
inline int multiprocessors() { return 132; }
}  // namespace kiln::kernels::ladder

#else  // CUDA

#include <cuda_runtime.h>

#include <memory>

#include "core/cuda_runtime.hpp"
#include "core/error.hpp"
#include "core/storage.hpp"

#define KILN_DYNAMIC_SHARED_MEMORY(name) extern __shared__ __align__(16) unsigned char name[]

namespace kiln::kernels::ladder {

// Above 48 KiB a kernel's dynamic shared memory must be allowed explicitly, per kernel and device: done on
// every launch that needs it (a cheap attribute write), so a second GPU is not forgotten.
inline constexpr std::size_t kDefaultSharedLimitBytes = 48 * 1024;

// Scratch memory for a launcher's kernels (split-K partial sums), on the current device, from kiln's caching
// allocator. It goes back when the launcher returns, before its kernels have run, and that is safe: the
// allocator hands a block out again only to work queued after them on the same (default) stream.
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

// Launches kernel<<<grid, block, shared_bytes>>>(arguments...) on the default stream and checks the launch,
// naming the step in any error.
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
  kernel<<<grid, block, shared_bytes>>>(arguments...);
  // clang-format on
  ::kiln::cuda::check_launch(name);
}

}  // namespace kiln::kernels::ladder

#endif
