#include "core/storage.hpp"

#include <sys/mman.h>

#include <array>
#include <cstdlib>
#include <new>

#include "core/caching_allocator.hpp"
#include "core/cuda_runtime.hpp"
#include "core/error.hpp"

namespace kiln {
namespace {

// The size of an x86-64 transparent huge page.
constexpr std::size_t kHugePageBytes = std::size_t{2} << 20;

// The system's aligned allocation; allocator_for wraps it in a CachingAllocator.
//
// A block of at least one huge page starts on a huge-page boundary and asks the kernel for transparent huge
// pages (madvise; Debian's default THP mode serves only regions that ask). A training step streams its
// activations through memory several times per layer, each 2 MiB of them 512 pages of 4 KiB, each page a
// TLB entry: in huge pages one. Epochs after the first, 20 steps at batch 128 on 2 threads: ResNet-20 1.3%
// faster, VGG-style 3.7%, MobileNet-style bf16 channels-last 3%. The first touch of a huge page costs more
// (the kernel finds and clears 2 MiB at once; in this VM the first epoch took 0.3-0.5 s longer); after it
// the cache hands the same blocks out again. Only the 2 MiB extents wholly inside a block become huge
// pages, so its size is not rounded up; where the kernel has no THP the advice is ignored.
class CpuAllocator final : public Allocator {
 public:
  void* allocate(std::size_t bytes) override {
    const std::size_t alignment = bytes >= kHugePageBytes ? kHugePageBytes : kStorageAlignment;
    void* pointer = nullptr;
    // posix_memalign, unlike aligned_alloc, takes any size for an alignment.
    KILN_CHECK(posix_memalign(&pointer, alignment, bytes == 0 ? 1 : bytes) == 0,
               "out of memory: could not allocate ", bytes, " bytes on cpu");
#ifdef MADV_HUGEPAGE
    if (alignment == kHugePageBytes) madvise(pointer, bytes, MADV_HUGEPAGE);
#endif
    return pointer;
  }
  void deallocate(void* pointer, std::size_t) override { std::free(pointer); }
};

// cudaMalloc and cudaFree on one device (core/cuda_runtime.hpp); allocator_for wraps it in a
// CachingAllocator, which matters more here than on the CPU: cudaMalloc and cudaFree synchronize the
// device, so a training step that called them for every tensor would stall the GPU at each one.
class CudaAllocator final : public Allocator {
 public:
  explicit CudaAllocator(int index) : index_(index) {}
  void* allocate(std::size_t bytes) override { return cuda::allocate_device(bytes, index_); }
  void deallocate(void* pointer, std::size_t) override { cuda::free_device(pointer, index_); }

 private:
  int index_;
};

constexpr int kMaxCudaDevices = 16;
// What each device's cache may hold: most of an H100's memory is free for it, and a small CNN's step
// needs far less.
constexpr std::size_t kCudaCacheLimit = std::size_t{32} << 30;
// Every device block is cached, however small: cudaFree synchronizes the device (caching_allocator.hpp).
constexpr std::size_t kCudaMinCachedBytes = 1;

// What the CPU cache may hold: far above a small CNN's working set (ResNet-56 at batch 128 keeps about
// 1 GiB of activations), so in a training loop every block after the first step is a reused one.
constexpr std::size_t kCpuCacheLimit = std::size_t{4} << 30;
// Below 64 KiB malloc's own free lists serve as well.
constexpr std::size_t kCpuMinCachedBytes = std::size_t{64} << 10;

}  // namespace

Allocator& allocator_for(Device device) {
  return device.is_cpu() ? static_cast<Allocator&>(cpu_caching_allocator())
                         : cuda_caching_allocator(device.index);
}

CachingAllocator& cuda_caching_allocator(int index) {
  KILN_CHECK(index >= 0 && index < kMaxCudaDevices, "cuda:", index, " is not a device kiln can address");
  // Never destroyed, like the CPU's; built on first use, before any CUDA call.
  static const std::array<CachingAllocator*, kMaxCudaDevices> allocators = [] {
    std::array<CachingAllocator*, kMaxCudaDevices> made{};
    for (int i = 0; i < kMaxCudaDevices; ++i)
      made[static_cast<std::size_t>(i)] =
          new CachingAllocator(*new CudaAllocator(i), kCudaCacheLimit, kCudaMinCachedBytes);
    return made;
  }();
  return *allocators[static_cast<std::size_t>(index)];
}

CachingAllocator& cpu_caching_allocator() {
  // Never destroyed: a Storage in some other static object may be freed after this one would be.
  static CpuAllocator system;
  static CachingAllocator* const cached = new CachingAllocator(system, kCpuCacheLimit, kCpuMinCachedBytes);
  return *cached;
}

std::shared_ptr<Storage> Storage::allocate(std::size_t bytes, Device device) {
  void* data = allocator_for(device).allocate(bytes);
  return std::shared_ptr<Storage>(new Storage(data, bytes, device));
}

Storage::~Storage() { allocator_for(device_).deallocate(data_, bytes_); }

}  // namespace kiln
