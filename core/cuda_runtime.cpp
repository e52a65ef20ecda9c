#include "core/cuda_runtime.hpp"

#include <cstdio>
#include <cstring>

#include "core/error.hpp"

#ifdef KILN_WITH_CUDA
#include <cuda_runtime.h>
#endif

namespace kiln::cuda {

#ifdef KILN_WITH_CUDA

namespace {

void check(cudaError_t status, const std::string& call) {
  if (status == cudaSuccess) return;
  cudaGetLastError();  // clear the error so the next call does not report it again
  fail("CUDA: ", call, " failed: ", cudaGetErrorString(status));
}

std::string on(int index) { return " on cuda:" + std::to_string(index); }

void use_device(int index) {
  const int count = device_count();
  KILN_CHECK(index >= 0 && index < count, "CUDA: cuda:", index, " is not a device (the driver sees ", count,
             count == 1 ? " device)" : " devices)");
  check(cudaSetDevice(index), "cudaSetDevice(" + std::to_string(index) + ")");
}

}  // namespace

bool built_with_cuda() { return true; }

int device_count() {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();
    return 0;
  }
  return count;
}

std::string device_description(int index) {
  use_device(index);
  cudaDeviceProp properties{};
  check(cudaGetDeviceProperties(&properties, index), "cudaGetDeviceProperties" + on(index));
  char memory[32];
  std::snprintf(memory, sizeof memory, "%.1f GiB",
                static_cast<double>(properties.totalGlobalMem) / (1 << 30));
  return std::string(properties.name) + " (sm_" + std::to_string(properties.major) +
         std::to_string(properties.minor) + ", " + memory + ")";
}

void* allocate_device(std::size_t bytes, int index) {
  use_device(index);
  void* pointer = nullptr;
  check(cudaMalloc(&pointer, bytes == 0 ? 1 : bytes),
        "cudaMalloc(" + std::to_string(bytes) + " bytes)" + on(index));
  return pointer;
}

void free_device(void* pointer, int index) {
  use_device(index);
  check(cudaFree(pointer), "cudaFree" + on(index));
}

void copy_bytes(void* destination, Device destination_device, const void* source, Device source_device,
                std::size_t bytes) {
  if (bytes == 0) return;
  if (destination_device.is_cpu() && source_device.is_cpu()) {
    std::memcpy(destination, source, bytes);
    return;
  }
  const cudaMemcpyKind kind = source_device.is_cpu()        ? cudaMemcpyHostToDevice
                              : destination_device.is_cpu() ? cudaMemcpyDeviceToHost
                                                            : cudaMemcpyDeviceToDevice;
  use_device(source_device.is_cuda() ? source_device.index : destination_device.index);
  check(cudaMemcpy(destination, source, bytes, kind), "cudaMemcpy(" + std::to_string(bytes) + " bytes, " +
                                                          source_device.str() + " -> " +
                                                          destination_device.str() + ")");
}

void check_launch(const char* kernel) { check(cudaGetLastError(), std::string("launching ") + kernel); }

void synchronize(int index) {
  use_device(index);
  check(cudaDeviceSynchronize(), "cudaDeviceSynchronize" + on(index));
}

#else  // built without the CUDA toolkit

namespace {
[[noreturn]] void no_cuda(const char* what) {
  fail("CUDA: ", what, ": this kiln was built without CUDA (CMake found no CUDA compiler; see the README)");
}
}  // namespace

bool built_with_cuda() { return false; }
int device_count() { return 0; }
std::string device_description(int) { no_cuda("device_description"); }
void* allocate_device(std::size_t, int) { no_cuda("allocating device memory"); }
void free_device(void*, int) { no_cuda("freeing device memory"); }
void copy_bytes(void* destination, Device destination_device, const void* source, Device source_device,
                std::size_t bytes) {
  if (!destination_device.is_cpu() || !source_device.is_cpu()) no_cuda("copying to or from a device");
  if (bytes > 0) std::memcpy(destination, source, bytes);
}
void check_launch(const char* kernel) { no_cuda(kernel); }
void synchronize(int) { no_cuda("synchronize"); }

#endif

}  // namespace kiln::cuda
