// The CPU emulator of kiln's CUDA kernels (cuda_emulator.cpp), the backend's and the ladders', as the
// emulation tests and the emulated runtime see it. The kernels see it through kernels/cuda_launch.cuh and
// kernels/ladder/launch.cuh (run_grid, dynamic_shared_memory), mma.cuh, wgmma.cuh, cp_async.cuh, mbarrier.cuh
// and tma.cuh (the warp- and warpgroup-level functions), all with KILN_CUDA_EMULATION, and through
// cuda_shim.hpp (threadIdx, __syncthreads, shuffles). How it runs a grid:
//
//   - blocks one after another; a block's threads as fibers on the calling thread, each on its own stack
//     (with a guard page below), switched cooperatively: a thread runs until it waits at a barrier; even
//     blocks run their threads first to last, odd blocks last to first, so that a missing barrier shows;
//   - __syncthreads releases the block when every one of its threads has arrived; a warp-level operation
//     (mma, ldmatrix, shuffle, __syncwarp) when every lane of the warp has: the last lane to arrive
//     computes every lane's result from the fragments the warp published (the layouts of mma.cuh);
//   - when no thread can run and some have not finished, the launch is a deadlock and throws a kiln::Error
//     naming the kernel and where its threads wait (a thread that returned while others wait at
//     __syncthreads counts: CUDA leaves that undefined); a launch running past a time limit aborts the
//     process with its name, rather than hanging CI;
//   - a warpgroup-level operation (wgmma.cuh: fence, issue, commit, wait) when all 128 threads of the
//     warpgroup have arrived. A wgmma is queued with every thread's accumulators and computed when a wait
//     retires its group, from the 128-byte-swizzled tiles its descriptors name, in an emulated shared
//     address space that starts at 0x190 (not on 1024 bytes, so unaligned swizzled tiles read wrong bytes).
//     A wgmma without a wgmma_fence since the last wait, or while landed copies await
//     fence_proxy_async_shared, a cp.async into a chunk an unretired wgmma reads, and a block that ends with
//     wgmma in flight are errors;
//   - cp.async copies are queued per thread and land only when a cp_async_wait covers their group, so a tile
//     read before its wait reads stale shared memory, as it may on the GPU;
//   - mbarriers (mbarrier.cuh) are kept beside the dynamic shared memory by address: arrivals and
//     transaction bytes per phase, and a wait that sleeps the thread until its parity's phase completes.
//     Tensor copies (tma.cuh) are queued on their barrier and land, swizzled as the copy engine writes, when
//     a thread first waits there. A barrier used before mbarrier_init, fence_mbarrier_init and a
//     __syncthreads, one arrival too many, bytes delivered beyond those announced, a copy into a chunk an
//     unretired wgmma reads, and a block that ends with copies in flight are errors; bytes announced and
//     never delivered are a deadlock, reported with what each waited-on barrier still expects;
//   - the dynamic shared memory is filled with 0xff bytes (NaN as float and as bfloat16) at each block start
//     and ends flush against a page with no access, so reading memory the block never wrote shows in the
//     output and running past its end faults. (Static __shared__ arrays keep the previous block's contents.)
//   - a memory fault inside a launch prints the kernel, the block and the thread before the process dies.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <string_view>

namespace kiln::emulation {

// Declares [data, data + bytes) as device memory: once any buffer is registered, every cp.async that reads
// must read inside one of them (an error naming the kernel otherwise), and no cp.async or ldmatrix may treat
// one as shared memory. The test registers the operands it hands to a step.
void register_device_buffer(const void* data, std::size_t bytes);
void unregister_device_buffer(const void* data);
// Whether [data, data + bytes) lies inside one registered buffer; whether it overlaps any (the emulated
// runtime's checks of copies and cuBLAS operands).
bool inside_device_memory(const void* data, std::size_t bytes);
bool touches_device_memory(const void* data, std::size_t bytes);

// One operation on the default stream: a launch, a cuBLAS call, an asynchronous copy or fill. The emulated
// runtime's default stream is every stream kiln's kernels may run on, the legacy one and blocking ones
// (kiln's compute stream), which run in order with each other as on a GPU. The operation runs now, after the
// copy-stream work the default stream was told to wait for (cudaStreamWaitEvent), no earlier; or, while a
// blocking stream is being captured into a graph (cudaStreamBeginCapture), it is recorded instead, to run at
// each launch of the graph. Returns false, running nothing, for an operation issued on the legacy stream
// during a capture: a GPU invalidates the capture then (the legacy stream would wait for the capturing one),
// and so does the emulated runtime.
bool default_stream_work(std::function<void()> work, bool on_legacy_stream = false);

// How many graphs have been launched (cudaGraphLaunch) so far.
std::uint64_t graph_launches();

// How many times the host has waited for all the default stream's work so far: each cudaMemcpy (to or
// from the device), cudaDeviceSynchronize, synchronize of the default stream, synchronize of an event
// recorded there with nothing queued after it, cudaFree and cudaFreeHost (which synchronize the device). On
// a GPU each leaves the device idle until the host launches again.
std::uint64_t default_stream_drains();

// How many grids have been launched so far under `name` (the name each launcher gives launch(): "fill",
// "copy_strided", "conv2d im2col"...). On a GPU each launch costs microseconds of host and device time
// whatever its size, which at small batches is most of a step: what a step launches shows here.
std::uint64_t kernel_launches(std::string_view name);
// How many grids have been launched so far, under any name.
std::uint64_t kernel_launches();

}  // namespace kiln::emulation
