// The CUDA runtime of the emulated backend (toolkit/cuda_runtime.h): one device, cuda:0, an sm_90a GPU with
// 132 multiprocessors, whose memory is host memory and whose kernels run on the CPU emulator
// (cuda_emulator.cpp) when they are launched. kiln's own runtime wrapper, core/cuda_runtime.cpp, is compiled
// unchanged against it, so the emulated backend tests that file too.
//
// What it checks, as the real runtime would fail or as a GPU would fault:
//   - device memory comes from cudaMalloc and goes back through cudaFree once; freeing anything else is
//     cudaErrorInvalidValue;
//   - a copy's device side (its kind says which side that is) must lie inside one buffer of device memory
//     (a live cudaMalloc, or a ladder step's scratch: the emulator's register of device buffers), and its
//     host side outside every one: a copy named HostToDevice from device memory, or one running past the
//     end of an allocation, is cudaErrorInvalidValue (the real runtime would fault or copy garbage);
//   - device memory ends against a page with no access, so running past an allocation's end faults at once
//     (past cudaMalloc's 256-byte rounding; the caching allocator's size classes round up further);
//   - fresh device memory holds 0xff bytes, NaN in every floating type kiln uses, never zeros: a kernel
//     that reads what nobody wrote shows in its results;
//   - cudaEventElapsedTime needs two recorded events with timing on.
//
// What it cannot show: every copy and kernel has finished when its call returns, so a missing wait between
// the copy stream and the default stream, which would race on a GPU, goes unnoticed here; and host code
// that dereferences a device pointer works here and faults on a GPU.
#include <cuda_runtime.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <new>

#include "tests/emulation/cuda_emulator.hpp"

namespace {

constexpr std::size_t kAlignment = 256;  // cudaMalloc's
constexpr int kMultiprocessors = 132;    // an H100's (and H200's), as ladder::multiprocessors() says
constexpr std::size_t kReportedMemory = std::size_t{16} << 30;

thread_local int current_device = 0;  // per host thread, as the runtime keeps it

std::size_t round_up(std::size_t value, std::size_t multiple) {
  return (value + multiple - 1) / multiple * multiple;
}

// Device memory: its own mapping, ending flush (to cudaMalloc's 256-byte alignment) against a page with no
// access, so that a kernel or a copy running past an allocation's end faults there (the emulator names the
// kernel, block and thread) instead of corrupting the host's heap.
struct GuardedMapping {
  void* mapping;  // [mapping, mapping + mapped): the pages, the last one the guard
  std::size_t mapped;
};

// Live allocations by first byte, under allocations_mutex: device (cudaMalloc) with their mappings, pinned
// host (cudaHostAlloc) with their sizes.
std::mutex allocations_mutex;
std::map<const unsigned char*, GuardedMapping> device_allocations;
std::map<const unsigned char*, std::size_t> pinned_allocations;

void* allocate_aligned(std::size_t bytes) {
  return ::operator new (round_up(std::max<std::size_t>(bytes, 1), kAlignment), std::align_val_t{kAlignment},
                         std::nothrow);
}
void free_aligned(void* pointer) { ::operator delete (pointer, std::align_val_t{kAlignment}); }

void* map_device_memory(std::size_t bytes) {
  const auto page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  const std::size_t span = round_up(std::max<std::size_t>(bytes, 1), kAlignment);
  const std::size_t mapped = round_up(span, page) + page;
  void* mapping = mmap(nullptr, mapped, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (mapping == MAP_FAILED) return nullptr;
  unsigned char* guard = static_cast<unsigned char*>(mapping) + mapped - page;
  if (mprotect(guard, page, PROT_NONE) != 0) {
    munmap(mapping, mapped);
    return nullptr;
  }
  unsigned char* memory = guard - span;
  device_allocations.emplace(memory, GuardedMapping{mapping, mapped});
  return memory;
}

// Whether a copy of `kind` may take these two ranges.
bool copy_is_valid(void* destination, const void* source, std::size_t bytes, cudaMemcpyKind kind) {
  const auto device = [&](const void* p) { return kiln::emulation::inside_device_memory(p, bytes); };
  const auto host = [&](const void* p) { return !kiln::emulation::touches_device_memory(p, bytes); };
  switch (kind) {
    case cudaMemcpyHostToHost:
      return host(destination) && host(source);
    case cudaMemcpyHostToDevice:
      return device(destination) && host(source);
    case cudaMemcpyDeviceToHost:
      return host(destination) && device(source);
    case cudaMemcpyDeviceToDevice:
      return device(destination) && device(source);
    case cudaMemcpyDefault:
      return (device(destination) || host(destination)) && (device(source) || host(source));
  }
  return false;
}

cudaError_t copy(void* destination, const void* source, std::size_t bytes, cudaMemcpyKind kind) {
  if (bytes == 0) return cudaSuccess;
  if (!copy_is_valid(destination, source, bytes, kind)) return cudaErrorInvalidValue;
  std::memmove(destination, source, bytes);
  return cudaSuccess;
}

}  // namespace

// Streams only need to exist; events keep the host time they were recorded at.
struct CUstream_st {};
struct CUevent_st {
  bool timing = true;
  bool recorded = false;
  std::chrono::steady_clock::time_point time;
};

// ---- errors and devices
// ------------------------------------------------------------------------------------

// Every failure is returned by the call that fails and nothing fails later, so there is no sticky error.
cudaError_t cudaGetLastError() { return cudaSuccess; }

const char* cudaGetErrorString(cudaError_t error) {
  switch (error) {
    case cudaSuccess:
      return "no error";
    case cudaErrorInvalidValue:
      return "invalid argument";
    case cudaErrorMemoryAllocation:
      return "out of memory";
    case cudaErrorNoDevice:
      return "no CUDA-capable device is detected";
    case cudaErrorInvalidDevice:
      return "invalid device ordinal";
    case cudaErrorInvalidResourceHandle:
      return "invalid resource handle";
  }
  return "unrecognized error code";
}

cudaError_t cudaGetDeviceCount(int* count) {
  *count = 1;
  return cudaSuccess;
}

cudaError_t cudaSetDevice(int device) {
  if (device != 0) return cudaErrorInvalidDevice;
  current_device = device;
  return cudaSuccess;
}

cudaError_t cudaGetDevice(int* device) {
  *device = current_device;
  return cudaSuccess;
}

cudaError_t cudaGetDeviceProperties(cudaDeviceProp* properties, int device) {
  if (device != 0) return cudaErrorInvalidDevice;
  *properties = {};
  std::strncpy(properties->name, "kiln's CPU emulator of an sm_90a GPU", sizeof properties->name - 1);
  properties->totalGlobalMem = kReportedMemory;
  properties->major = 9;
  properties->minor = 0;
  properties->multiProcessorCount = kMultiprocessors;
  return cudaSuccess;
}

cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attribute, int device) {
  if (device != 0) return cudaErrorInvalidDevice;
  switch (attribute) {
    case cudaDevAttrMultiProcessorCount:
      *value = kMultiprocessors;
      return cudaSuccess;
    case cudaDevAttrComputeCapabilityMajor:
      *value = 9;
      return cudaSuccess;
    case cudaDevAttrComputeCapabilityMinor:
      *value = 0;
      return cudaSuccess;
  }
  return cudaErrorInvalidValue;
}

cudaError_t cudaDeviceSynchronize() { return cudaSuccess; }

// ---- memory ----------------------------------------------------------------------------------------------

cudaError_t cudaMalloc(void** pointer, std::size_t bytes) {
  void* memory = nullptr;
  {
    const std::lock_guard lock(allocations_mutex);
    memory = map_device_memory(bytes);
    if (memory == nullptr) return cudaErrorMemoryAllocation;
  }
  std::memset(memory, 0xff, bytes);                        // never zeros: see the top of the file
  kiln::emulation::register_device_buffer(memory, bytes);  // cp.async may read it
  *pointer = memory;
  return cudaSuccess;
}

cudaError_t cudaFree(void* pointer) {
  if (pointer == nullptr) return cudaSuccess;
  const std::lock_guard lock(allocations_mutex);
  const auto allocation = device_allocations.find(static_cast<const unsigned char*>(pointer));
  if (allocation == device_allocations.end()) return cudaErrorInvalidValue;
  kiln::emulation::unregister_device_buffer(pointer);
  munmap(allocation->second.mapping, allocation->second.mapped);
  device_allocations.erase(allocation);
  return cudaSuccess;
}

cudaError_t cudaHostAlloc(void** pointer, std::size_t bytes, unsigned flags) {
  if (flags != cudaHostAllocDefault) return cudaErrorInvalidValue;  // kiln asks for nothing else
  void* memory = allocate_aligned(bytes);
  if (memory == nullptr) return cudaErrorMemoryAllocation;
  const std::lock_guard lock(allocations_mutex);
  pinned_allocations.emplace(static_cast<const unsigned char*>(memory), bytes);
  *pointer = memory;
  return cudaSuccess;
}

cudaError_t cudaFreeHost(void* pointer) {
  if (pointer == nullptr) return cudaSuccess;
  {
    const std::lock_guard lock(allocations_mutex);
    if (pinned_allocations.erase(static_cast<const unsigned char*>(pointer)) == 0)
      return cudaErrorInvalidValue;
  }
  free_aligned(pointer);
  return cudaSuccess;
}

cudaError_t cudaMemcpy(void* destination, const void* source, std::size_t bytes, cudaMemcpyKind kind) {
  return copy(destination, source, bytes, kind);
}

cudaError_t cudaMemcpyAsync(void* destination, const void* source, std::size_t bytes, cudaMemcpyKind kind,
                            cudaStream_t) {
  return copy(destination, source, bytes, kind);
}

cudaError_t cudaMemsetAsync(void* pointer, int value, std::size_t bytes, cudaStream_t) {
  if (bytes == 0) return cudaSuccess;
  if (!kiln::emulation::inside_device_memory(pointer, bytes)) return cudaErrorInvalidValue;
  std::memset(pointer, value, bytes);
  return cudaSuccess;
}

// ---- streams and events ----------------------------------------------------------------------------------

cudaError_t cudaStreamCreateWithFlags(cudaStream_t* stream, unsigned) {
  *stream = new CUstream_st;
  return cudaSuccess;
}

cudaError_t cudaStreamDestroy(cudaStream_t stream) {
  if (stream == nullptr || stream == cudaStreamLegacy) return cudaErrorInvalidResourceHandle;
  delete stream;
  return cudaSuccess;
}

cudaError_t cudaStreamSynchronize(cudaStream_t) { return cudaSuccess; }

cudaError_t cudaStreamWaitEvent(cudaStream_t, cudaEvent_t event, unsigned) {
  return event == nullptr ? cudaErrorInvalidResourceHandle : cudaSuccess;
}

cudaError_t cudaEventCreate(cudaEvent_t* event) { return cudaEventCreateWithFlags(event, cudaEventDefault); }

cudaError_t cudaEventCreateWithFlags(cudaEvent_t* event, unsigned flags) {
  *event = new CUevent_st;
  (*event)->timing = (flags & cudaEventDisableTiming) == 0;
  return cudaSuccess;
}

cudaError_t cudaEventDestroy(cudaEvent_t event) {
  if (event == nullptr) return cudaErrorInvalidResourceHandle;
  delete event;
  return cudaSuccess;
}

cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t) {
  if (event == nullptr) return cudaErrorInvalidResourceHandle;
  event->recorded = true;
  event->time = std::chrono::steady_clock::now();
  return cudaSuccess;
}

cudaError_t cudaEventSynchronize(cudaEvent_t event) {
  return event == nullptr ? cudaErrorInvalidResourceHandle : cudaSuccess;
}

cudaError_t cudaEventElapsedTime(float* milliseconds, cudaEvent_t start, cudaEvent_t stop) {
  if (start == nullptr || stop == nullptr || !start->timing || !stop->timing)
    return cudaErrorInvalidResourceHandle;
  if (!start->recorded || !stop->recorded) return cudaErrorInvalidResourceHandle;
  *milliseconds = std::chrono::duration<float, std::milli>(stop->time - start->time).count();
  return cudaSuccess;
}
