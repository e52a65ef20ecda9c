#include "core/cuda_runtime.hpp"

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <optional>
#include <utility>
#include <vector>

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

void require_device(int index) { use_device(index); }

int current_device() {
  int index = 0;
  check(cudaGetDevice(&index), "cudaGetDevice");
  return index;
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

DeviceProperties device_properties(int index) {
  static std::mutex mutex;
  static std::vector<std::optional<DeviceProperties>> known;  // by device index
  const int count = device_count();
  KILN_CHECK(index >= 0 && index < count, "CUDA: cuda:", index, " is not a device (the driver sees ", count,
             count == 1 ? " device)" : " devices)");
  const std::lock_guard lock(mutex);
  if (known.size() < static_cast<std::size_t>(count)) known.resize(static_cast<std::size_t>(count));
  std::optional<DeviceProperties>& entry = known[static_cast<std::size_t>(index)];
  if (!entry) {
    DeviceProperties properties;
    check(cudaDeviceGetAttribute(&properties.multiprocessors, cudaDevAttrMultiProcessorCount, index),
          "cudaDeviceGetAttribute(MultiProcessorCount)" + on(index));
    check(cudaDeviceGetAttribute(&properties.major, cudaDevAttrComputeCapabilityMajor, index),
          "cudaDeviceGetAttribute(ComputeCapabilityMajor)" + on(index));
    check(cudaDeviceGetAttribute(&properties.minor, cudaDevAttrComputeCapabilityMinor, index),
          "cudaDeviceGetAttribute(ComputeCapabilityMinor)" + on(index));
    entry = properties;
  }
  return *entry;
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

void check_status(int status, const std::string& call) { check(static_cast<cudaError_t>(status), call); }

void* compute_stream(int index) {
  constexpr int kMaxDevices = 64;
  static std::array<std::atomic<void*>, kMaxDevices> streams{};
  static std::mutex creation;
  KILN_CHECK(index >= 0 && index < kMaxDevices, "CUDA: cuda:", index, " is not a device kiln can address");
  std::atomic<void*>& slot = streams[static_cast<std::size_t>(index)];
  if (void* stream = slot.load(std::memory_order_acquire)) return stream;  // every launch after the first
  const std::lock_guard lock(creation);
  if (void* stream = slot.load(std::memory_order_acquire)) return stream;
  // A stream belongs to the device current at its creation.
  const int previous = current_device();
  use_device(index);
  cudaStream_t stream = nullptr;
  const cudaError_t status = cudaStreamCreateWithFlags(&stream, cudaStreamDefault);
  check(cudaSetDevice(previous), "cudaSetDevice(" + std::to_string(previous) + ")");
  check(status, "cudaStreamCreateWithFlags(compute stream)" + on(index));
  slot.store(stream, std::memory_order_release);  // never destroyed, like the cuBLAS handles
  return stream;
}

void* current_compute_stream() { return compute_stream(current_device()); }

bool is_capturing(int index) {
  cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
  check(cudaStreamIsCapturing(static_cast<cudaStream_t>(compute_stream(index)), &status),
        "cudaStreamIsCapturing" + on(index));
  return status != cudaStreamCaptureStatusNone;
}

void check_launch(const char* kernel) { check(cudaGetLastError(), std::string("launching ") + kernel); }

void synchronize(int index) {
  use_device(index);
  check(cudaDeviceSynchronize(), "cudaDeviceSynchronize" + on(index));
}

StreamInterval::StreamInterval(int device_index) : device_index_(device_index) {
  use_device(device_index);
  cudaEvent_t start = nullptr, stop = nullptr;
  check(cudaEventCreate(&start), "cudaEventCreate" + on(device_index));
  const cudaError_t status = cudaEventCreate(&stop);
  if (status != cudaSuccess) cudaEventDestroy(start);  // the destructor will not run
  check(status, "cudaEventCreate" + on(device_index));
  start_ = start;
  stop_ = stop;
}

StreamInterval::~StreamInterval() {
  cudaEventDestroy(static_cast<cudaEvent_t>(start_));
  cudaEventDestroy(static_cast<cudaEvent_t>(stop_));
}

void StreamInterval::start() {
  check(cudaEventRecord(static_cast<cudaEvent_t>(start_),
                        static_cast<cudaStream_t>(compute_stream(device_index_))),
        "cudaEventRecord(compute stream)" + on(device_index_));
}

void StreamInterval::stop() {
  check(cudaEventRecord(static_cast<cudaEvent_t>(stop_),
                        static_cast<cudaStream_t>(compute_stream(device_index_))),
        "cudaEventRecord(compute stream)" + on(device_index_));
}

double StreamInterval::milliseconds() const {
  check(cudaEventSynchronize(static_cast<cudaEvent_t>(stop_)), "cudaEventSynchronize" + on(device_index_));
  float milliseconds = 0.0f;
  check(
      cudaEventElapsedTime(&milliseconds, static_cast<cudaEvent_t>(start_), static_cast<cudaEvent_t>(stop_)),
      "cudaEventElapsedTime" + on(device_index_));
  return milliseconds;
}

PinnedBuffer::PinnedBuffer(std::size_t bytes) : bytes_(bytes) {
  check(cudaHostAlloc(&data_, bytes == 0 ? 1 : bytes, cudaHostAllocDefault),
        "cudaHostAlloc(" + std::to_string(bytes) + " bytes)");
}

PinnedBuffer::~PinnedBuffer() {
  if (data_ != nullptr) cudaFreeHost(data_);  // a destructor cannot throw; a failure here leaks at worst
}

CopyStream::CopyStream(int device_index) : device_index_(device_index) {
  use_device(device_index);
  cudaStream_t stream = nullptr;
  // Non-blocking: a blocking stream would serialize with the legacy default stream, and through it with the
  // compute stream, and nothing would overlap.
  check(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking),
        "cudaStreamCreateWithFlags" + on(device_index));
  stream_ = stream;
  cudaEvent_t copies = nullptr, kernels = nullptr;
  check(cudaEventCreateWithFlags(&copies, cudaEventDisableTiming), "cudaEventCreate" + on(device_index));
  check(cudaEventCreateWithFlags(&kernels, cudaEventDisableTiming), "cudaEventCreate" + on(device_index));
  copies_done_ = copies;
  kernels_done_ = kernels;
}

CopyStream::~CopyStream() {
  cudaStreamSynchronize(static_cast<cudaStream_t>(stream_));  // no copy may outlive its buffers
  cudaEventDestroy(static_cast<cudaEvent_t>(copies_done_));
  cudaEventDestroy(static_cast<cudaEvent_t>(kernels_done_));
  cudaStreamDestroy(static_cast<cudaStream_t>(stream_));
}

void CopyStream::wait_for_kernels() {
  use_device(device_index_);
  const auto kernels = static_cast<cudaEvent_t>(kernels_done_);
  check(cudaEventRecord(kernels, static_cast<cudaStream_t>(compute_stream(device_index_))),
        "cudaEventRecord(compute stream)" + on(device_index_));
  check(cudaStreamWaitEvent(static_cast<cudaStream_t>(stream_), kernels, 0),
        "cudaStreamWaitEvent(copy stream)" + on(device_index_));
}

void CopyStream::copy_to_device(void* destination, const void* source, std::size_t bytes) {
  if (bytes == 0) return;
  use_device(device_index_);
  const auto stream = static_cast<cudaStream_t>(stream_);
  check(cudaMemcpyAsync(destination, source, bytes, cudaMemcpyHostToDevice, stream),
        "cudaMemcpyAsync(" + std::to_string(bytes) + " bytes, cpu -> cuda:" + std::to_string(device_index_) +
            ")");
  check(cudaEventRecord(static_cast<cudaEvent_t>(copies_done_), stream),
        "cudaEventRecord(copy stream)" + on(device_index_));
}

void CopyStream::order_before_kernels() {
  use_device(device_index_);
  check(cudaStreamWaitEvent(static_cast<cudaStream_t>(compute_stream(device_index_)),
                            static_cast<cudaEvent_t>(copies_done_), 0),
        "cudaStreamWaitEvent(compute stream)" + on(device_index_));
}

void CopyStream::wait_for_copies() {
  use_device(device_index_);
  check(cudaEventSynchronize(static_cast<cudaEvent_t>(copies_done_)),
        "cudaEventSynchronize(copy stream)" + on(device_index_));
}

HostReadback::HostReadback(int device_index) : device_index_(device_index) {
  use_device(device_index);
  cudaEvent_t copied = nullptr;
  check(cudaEventCreateWithFlags(&copied, cudaEventDisableTiming), "cudaEventCreate" + on(device_index));
  copied_ = copied;
}

HostReadback::~HostReadback() {
  cudaEventSynchronize(static_cast<cudaEvent_t>(copied_));  // no copy may outlive its page-locked buffer
  cudaEventDestroy(static_cast<cudaEvent_t>(copied_));
}

void HostReadback::start(std::span<const Piece> pieces) {
  use_device(device_index_);
  std::size_t reach = 0;
  for (const Piece& piece : pieces) reach = std::max(reach, piece.landing_offset + piece.bytes);
  if (reach > landed_.bytes()) {
    wait();  // the previous copies land in the buffer about to be released
    landed_ = PinnedBuffer(reach);
  }
  const auto stream = static_cast<cudaStream_t>(compute_stream(device_index_));
  for (const Piece& piece : pieces) {
    check(cudaMemcpyAsync(static_cast<char*>(landed_.data()) + piece.landing_offset, piece.device_source,
                          piece.bytes, cudaMemcpyDeviceToHost, stream),
          "cudaMemcpyAsync(" + std::to_string(piece.bytes) + " bytes, cuda:" + std::to_string(device_index_) +
              " -> cpu)");
  }
  check(cudaEventRecord(static_cast<cudaEvent_t>(copied_), stream),
        "cudaEventRecord(compute stream)" + on(device_index_));
}

const void* HostReadback::wait() const {
  use_device(device_index_);
  check(cudaEventSynchronize(static_cast<cudaEvent_t>(copied_)),
        "cudaEventSynchronize(readback)" + on(device_index_));
  return landed_.data();
}

#else  // built without the CUDA toolkit

namespace {
[[noreturn]] void no_cuda(const char* what) {
  fail("CUDA: ", what, ": this kiln was built without CUDA (CMake found no CUDA compiler; see the README)");
}
}  // namespace

bool built_with_cuda() { return false; }
int device_count() { return 0; }
void require_device(int index) { no_cuda(("using cuda:" + std::to_string(index)).c_str()); }
int current_device() { no_cuda("current_device"); }
std::string device_description(int) { no_cuda("device_description"); }
DeviceProperties device_properties(int) { no_cuda("device_properties"); }
void* allocate_device(std::size_t, int) { no_cuda("allocating device memory"); }
void free_device(void*, int) { no_cuda("freeing device memory"); }
void copy_bytes(void* destination, Device destination_device, const void* source, Device source_device,
                std::size_t bytes) {
  if (!destination_device.is_cpu() || !source_device.is_cpu()) no_cuda("copying to or from a device");
  if (bytes > 0) std::memcpy(destination, source, bytes);
}
void check_status(int status, const std::string& call) {
  if (status != 0) no_cuda(call.c_str());
}
void* compute_stream(int) { no_cuda("compute_stream"); }
void* current_compute_stream() { no_cuda("current_compute_stream"); }
bool is_capturing(int) { return false; }
void check_launch(const char* kernel) { no_cuda(kernel); }
void synchronize(int) { no_cuda("synchronize"); }
StreamInterval::StreamInterval(int device_index) : device_index_(device_index) {
  no_cuda("timing work on a device");
}
StreamInterval::~StreamInterval() = default;
void StreamInterval::start() { no_cuda("StreamInterval"); }
void StreamInterval::stop() { no_cuda("StreamInterval"); }
double StreamInterval::milliseconds() const { no_cuda("StreamInterval"); }
PinnedBuffer::PinnedBuffer(std::size_t) { no_cuda("allocating pinned host memory"); }
PinnedBuffer::~PinnedBuffer() = default;
CopyStream::CopyStream(int device_index) : device_index_(device_index) { no_cuda("creating a copy stream"); }
CopyStream::~CopyStream() = default;
void CopyStream::wait_for_kernels() { no_cuda("CopyStream"); }
void CopyStream::copy_to_device(void*, const void*, std::size_t) { no_cuda("CopyStream"); }
void CopyStream::order_before_kernels() { no_cuda("CopyStream"); }
void CopyStream::wait_for_copies() { no_cuda("CopyStream"); }
HostReadback::HostReadback(int device_index) : device_index_(device_index) {
  no_cuda("reading back from a device");
}
HostReadback::~HostReadback() = default;
void HostReadback::start(std::span<const Piece>) { no_cuda("HostReadback"); }
const void* HostReadback::wait() const { no_cuda("HostReadback"); }

#endif

PinnedBuffer::PinnedBuffer(PinnedBuffer&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)), bytes_(std::exchange(other.bytes_, 0)) {}

PinnedBuffer& PinnedBuffer::operator=(PinnedBuffer&& other) noexcept {
  if (this != &other) {
    PinnedBuffer released(std::move(*this));
    data_ = std::exchange(other.data_, nullptr);
    bytes_ = std::exchange(other.bytes_, 0);
  }
  return *this;
}

}  // namespace kiln::cuda
