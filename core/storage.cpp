#include "core/storage.hpp"

#include <cstdlib>
#include <new>

#include "core/caching_allocator.hpp"
#include "core/error.hpp"

namespace kiln {
namespace {

// The system's aligned allocation; allocator_for wraps it in a CachingAllocator.
class CpuAllocator final : public Allocator {
 public:
  void* allocate(std::size_t bytes) override {
    // aligned_alloc wants a size that is a multiple of the alignment.
    const std::size_t rounded = (bytes + kStorageAlignment - 1) / kStorageAlignment * kStorageAlignment;
    void* pointer = std::aligned_alloc(kStorageAlignment, rounded == 0 ? kStorageAlignment : rounded);
    KILN_CHECK(pointer != nullptr, "out of memory: could not allocate ", bytes, " bytes on cpu");
    return pointer;
  }
  void deallocate(void* pointer, std::size_t) override { std::free(pointer); }
};

// What the CPU cache may hold: far above a small CNN's working set (ResNet-56 at batch 128 keeps about
// 1 GiB of activations), so in a training loop every block after the first step is a reused one.
constexpr std::size_t kCpuCacheLimit = std::size_t{4} << 30;

}  // namespace

Allocator& allocator_for(Device device) {
  KILN_CHECK(device.is_cpu(), "no allocator for device ", device.str(), ": kiln was built without its backend");
  return cpu_caching_allocator();
}

CachingAllocator& cpu_caching_allocator() {
  // Never destroyed: a Storage in some other static object may be freed after this one would be.
  static CpuAllocator system;
  static CachingAllocator* const cached = new CachingAllocator(system, kCpuCacheLimit);
  return *cached;
}

std::shared_ptr<Storage> Storage::allocate(std::size_t bytes, Device device) {
  void* data = allocator_for(device).allocate(bytes);
  return std::shared_ptr<Storage>(new Storage(data, bytes, device));
}

Storage::~Storage() { allocator_for(device_).deallocate(data_, bytes_); }

}  // namespace kiln
