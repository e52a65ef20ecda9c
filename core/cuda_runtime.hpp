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
#include <span>
#include <string>

#include "core/device.hpp"

namespace kiln::cuda {

bool built_with_cuda();

// The devices the CUDA driver sees; 0 without a driver, without a GPU or without CUDA in this build.
// Never throws.
int device_count();

// The device the calling thread's kernels launch on (cudaGetDevice), for code that allocates beside them.
int current_device();

// Throws a kiln::Error saying why cuda:index cannot be used (no such device, no driver, no CUDA in this
// build); returns when it can.
void require_device(int index);

// "NVIDIA H100 80GB HBM3 (sm_90, 79.1 GiB)". Throws for an index that is not a device.
std::string device_description(int index);

// What kernels size themselves by, or choose by: asked of the runtime once per device and kept, so that a
// launcher may ask on every launch. Does not change the current device. Throws for an index that is not a
// device.
struct DeviceProperties {
  int multiprocessors = 0;
  int major = 0, minor = 0;  // the compute capability: 9.0 for an H100 or H200
};
DeviceProperties device_properties(int index);

// Device memory on cuda:index, through cudaMalloc / cudaFree (storage.cpp caches it).
void* allocate_device(std::size_t bytes, int index);
void free_device(void* pointer, int index);

// Copies `bytes` between any two of the host and the CUDA devices, synchronously (the copy has finished
// when the call returns).
void copy_bytes(void* destination, Device destination_device, const void* source, Device source_device,
                std::size_t bytes);

// The stream all of kiln's device work on cuda:index goes on, in order: every kernel, cuBLAS call, fill and
// asynchronous copy of a step. One per device, created on first use and kept for the process; returned as a
// cudaStream_t. It is a blocking stream, so work on the legacy default stream (a synchronous cudaMemcpy,
// another library's kernels) still waits for it and it for them, as when kiln ran on the legacy stream
// itself; unlike the legacy stream, it can be captured into a CUDA graph (core/cuda_graph.hpp).
void* compute_stream(int index);
// compute_stream(current_device()): the stream a launch on the calling thread's device goes on.
void* current_compute_stream();
// Whether cuda:index's compute stream is being captured into a graph (core/cuda_graph.hpp): work queued now
// is recorded, not run, and must not wait for the device nor differ between launches.
bool is_capturing(int index);

// Throws a kiln::Error naming `call` and the runtime's message when `status` (a cudaError_t) is not
// cudaSuccess, and clears the error; for the runtime's other callers in core/ (cuda_graph.cpp).
void check_status(int status, const std::string& call);

// Throws, naming `kernel`, when its launch failed (a bad configuration, no device): kernels/ calls it
// right after each <<<...>>> launch.
void check_launch(const char* kernel);

// Page-locked host memory (cudaHostAlloc). A host-to-device copy overlaps running kernels only from
// memory like this: from ordinary (pageable) memory the driver stages it and the copy blocks the host.
class PinnedBuffer {
 public:
  PinnedBuffer() = default;
  explicit PinnedBuffer(std::size_t bytes);
  ~PinnedBuffer();
  PinnedBuffer(PinnedBuffer&& other) noexcept;
  PinnedBuffer& operator=(PinnedBuffer&& other) noexcept;
  PinnedBuffer(const PinnedBuffer&) = delete;
  PinnedBuffer& operator=(const PinnedBuffer&) = delete;

  void* data() const { return data_; }
  std::size_t bytes() const { return bytes_; }

 private:
  void* data_ = nullptr;
  std::size_t bytes_ = 0;
};

// A stream of host-to-device copies beside the compute stream, where every kernel runs: the next batch
// travels while this one computes. Ordering between the two streams is explicit, through events:
//
//   copies.wait_for_kernels();            // the destination block may have been used by earlier kernels
//   copies.copy_to_device(dst, pinned, n);
//   ...                                   // the current step's kernels, on the compute stream
//   copies.order_before_kernels();        // kernels launched from now on start after the copy
//   copies.wait_for_copies();             // (host) before the pinned source is written again
class CopyStream {
 public:
  explicit CopyStream(int device_index);
  ~CopyStream();
  CopyStream(const CopyStream&) = delete;
  CopyStream& operator=(const CopyStream&) = delete;

  // Copies on this stream start only after every kernel launched on the compute stream so far: device
  // memory freed by those kernels and handed out again by the caching allocator is not written early.
  void wait_for_kernels();
  // Enqueues the copy and returns at once; `source` should be pinned (else the copy is synchronous).
  void copy_to_device(void* destination, const void* source, std::size_t bytes);
  // Kernels launched on the compute stream from now on start only after the copies enqueued so far.
  void order_before_kernels();
  // Blocks the host until the copies enqueued so far have finished.
  void wait_for_copies();

 private:
  int device_index_;
  void* stream_ = nullptr;        // cudaStream_t
  void* copies_done_ = nullptr;   // cudaEvent_t, recorded after each copy
  void* kernels_done_ = nullptr;  // cudaEvent_t, recorded on the compute stream by wait_for_kernels
};

// Device-to-host copies that do not stall the device. start() enqueues them on the compute stream, behind
// the kernels that compute the values, into page-locked memory, and marks their end with an event; wait()
// blocks until they have landed and returns the landing buffer. Read a step late, the copies have long
// landed: the training loop reads each step's loss this way and evaluation each batch's logits, so the
// host never waits for work it has just queued (a cudaMemcpy would, and the GPU would idle until the host
// launched again).
class HostReadback {
 public:
  // One dense block of device memory to bring back, and where it lands in the buffer wait() returns.
  struct Piece {
    const void* device_source = nullptr;
    std::size_t bytes = 0, landing_offset = 0;
  };

  explicit HostReadback(int device_index);
  ~HostReadback();
  HostReadback(const HostReadback&) = delete;
  HostReadback& operator=(const HostReadback&) = delete;

  // Enqueues the pieces' copies and returns at once. When they reach past the landing buffer, it first
  // waits for the previous copies (they land in the old buffer) and grows it: a loop that brings back the
  // same sizes every step allocates once.
  void start(std::span<const Piece> pieces);
  // Blocks until the last start()'s copies have landed; the landing buffer.
  const void* wait() const;

 private:
  int device_index_;
  PinnedBuffer landed_;
  void* copied_ = nullptr;  // cudaEvent_t, recorded after each start()'s copies
};

// Waits until every kernel launched on cuda:index has finished, and throws the first error one of them
// raised (kernel launches are asynchronous: a fault surfaces at the next synchronizing call).
void synchronize(int index);

// The device time between two points of cuda:index's compute stream: start() and stop() mark them among
// the queued work (timing events), milliseconds() waits for the second and returns the time between them.
// The host does not wait at the marks, so timing a stretch of work leaves the device's queue as it was
// (core/profiler.hpp times each op this way).
class StreamInterval {
 public:
  explicit StreamInterval(int device_index);
  ~StreamInterval();
  StreamInterval(const StreamInterval&) = delete;
  StreamInterval& operator=(const StreamInterval&) = delete;

  void start();
  void stop();
  // Blocks until the stop mark is reached; the milliseconds from the start mark to it.
  double milliseconds() const;

 private:
  int device_index_;
  void* start_ = nullptr;  // cudaEvent_t
  void* stop_ = nullptr;   // cudaEvent_t
};

}  // namespace kiln::cuda
