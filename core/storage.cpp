#include "core/storage.hpp"

#include <cstdlib>
#include <new>

#include "core/error.hpp"

namespace kiln {
namespace {

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

}  // namespace

Allocator& allocator_for(Device device) {
  static CpuAllocator cpu;
  KILN_CHECK(device.is_cpu(), "no allocator for device ", device.str(), ": kiln was built without its backend");
  return cpu;
}

std::shared_ptr<Storage> Storage::allocate(std::size_t bytes, Device device) {
  void* data = allocator_for(device).allocate(bytes);
  return std::shared_ptr<Storage>(new Storage(data, bytes, device));
}

Storage::~Storage() { allocator_for(device_).deallocate(data_, bytes_); }

}  // namespace kiln
