// The CUDA runtime as kiln uses it, behind functions that exist in every build. A build without the CUDA
// toolkit (KILN_WITH_CUDA not defined; CMake decides, see CMakeLists.txt) reports no devices, and
// whatever needs a device throws a kiln::Error saying the build has no CUDA. A build with it reports the
// devices the driver sees, which on a machine without a GPU (CI) is none: every CUDA test checks
// cuda::device_count() and skips, with a message, when it is 0.
//
// Every runtime call is checked; a failure throws a kiln::Error naming the call and the runtime's own
// message ("CUDA: cudaMalloc(1048576 bytes) on cuda:0 failed: out of memory").
#pragma once

#include <cstddef>
#include <string>

#include "core/device.hpp"

namespace kiln::cuda {

bool built_with_cuda();

// The devices the CUDA driver sees; 0 without a driver, without a GPU or without CUDA in this build.
// Never throws.
int device_count();

// "NVIDIA H100 80GB HBM3 (sm_90, 79.1 GiB)". Throws for an index that is not a device.
std::string device_description(int index);

// Device memory on cuda:index, through cudaMalloc / cudaFree (storage.cpp caches it).
void* allocate_device(std::size_t bytes, int index);
void free_device(void* pointer, int index);

// Copies `bytes` between any two of the host and the CUDA devices, synchronously (the copy has finished
// when the call returns).
void copy_bytes(void* destination, Device destination_device, const void* source, Device source_device,
                std::size_t bytes);

// Throws, naming `kernel`, when its launch failed (a bad configuration, no device): kernels/ calls it
// right after each <<<...>>> launch.
void check_launch(const char* kernel);

// Waits until every kernel launched on cuda:index has finished, and throws the first error one of them
// raised (kernel launches are asynchronous: a fault surfaces at the next synchronizing call).
void synchronize(int index);

}  // namespace kiln::cuda
