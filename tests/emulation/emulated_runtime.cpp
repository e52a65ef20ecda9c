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
//   - cudaEventElapsedTime needs two completed events with timing on;
//   - the "default stream" below is every stream kiln's kernels may run on: the legacy one and blocking ones
//     (kiln's compute stream, core/cuda_runtime.hpp), which a GPU keeps in order with each other;
//   - while a blocking stream is captured into a graph (cudaStreamBeginCapture), the default stream's work
//     (launches, cuBLAS calls, asynchronous copies and fills) is recorded instead of run, each with its
//     arguments as they were, and each cudaGraphLaunch runs the recording again; what a relaxed capture
//     refuses on a GPU fails here and invalidates the capture: a synchronous copy or work on the legacy
//     stream (which would wait for the capturing one), a copy to or from pageable memory, a synchronize,
//     cudaFree, a wait on an event recorded outside the capture (and an event recorded inside one, which
//     kiln never does);
//   - work on a non-blocking stream (kiln's copy stream) runs as late as a GPU may run it: queued, and run
//     only when something needs it: a host wait (cudaEventSynchronize, cudaStreamSynchronize,
//     cudaDeviceSynchronize, cudaFree, the stream's end) or the default stream's next operation (a launch,
//     a copy, a cuBLAS call) after a cudaStreamWaitEvent on it. A kernel that reads a copy's destination
//     without waiting for the copy reads the 0xff bytes (or the block's stale contents), and a host write
//     to a pinned source before its copy has run is what the copy takes: both races show in results
//     instead of hiding (a missing wait in train/device_batches.cpp fails tests/train/device_batches_test).
//
// And it counts what a GPU would show only as lost speed: the host's waits for all the default stream's work
// (kiln::emulation::default_stream_drains; tests/emulation/emulated_training_test.cpp).
//
// What it cannot show: kernels run, and the default stream's copies finish, when their call returns, so a
// copy cannot overtake kernels still reading its destination (the caching allocator handing a block to the
// copy stream early); and host code that dereferences a device pointer works here and faults on a GPU.
#include <cuda_runtime.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <new>
#include <set>
#include <vector>

#include "tests/emulation/address_ranges.hpp"
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
kiln::emulation::AddressRanges pinned_allocations;

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

// Whether [pointer, pointer + bytes) lies inside one pinned (cudaHostAlloc) allocation.
bool pinned(const void* pointer, std::size_t bytes) {
  const std::lock_guard lock(allocations_mutex);
  return pinned_allocations.holds(pointer, bytes);
}

// The work of one non-blocking stream, in order: what has been enqueued and not yet run, and counts of
// both, so an event can name the point it completes at. A stream owns its queue and each event recorded on
// it shares it, so an event outlives its stream safely (the queue is empty by then).
struct WorkQueue {
  std::deque<std::function<void()>> pending;
  std::uint64_t enqueued = 0;  // operations ever enqueued
  std::uint64_t finished = 0;  // of those, how many have run

  void enqueue(std::function<void()> work) {
    pending.push_back(std::move(work));
    ++enqueued;
  }
  // Runs the queued work up to and including the operation numbered `position` (counting from 1).
  void run_until(std::uint64_t position) {
    while (finished < position) {
      const std::function<void()> work = std::move(pending.front());
      pending.pop_front();
      work();
      ++finished;
    }
  }
  void run_all() { run_until(enqueued); }
};

}  // namespace

// A blocking stream (kiln's compute stream) is the default stream here: its work runs at once, in order with
// the legacy stream's, and its queue stays empty. A non-blocking one (kiln's copy stream) queues its work.
struct CUstream_st {
  bool blocking = false;
  std::shared_ptr<WorkQueue> work = std::make_shared<WorkQueue>();
};

// A graph: the default-stream operations a capture recorded, in order, each a closure holding its arguments
// (a launch's by value, as a GPU keeps them). Launching it runs them again.
struct CUgraph_st {
  std::vector<std::function<void()>> work;
};
struct CUgraphExec_st {
  std::vector<std::function<void()>> work;
};

namespace {

// A point in a non-blocking stream's work: reached once the queue has finished `position` operations.
struct StreamPoint {
  std::shared_ptr<WorkQueue> queue;
  std::uint64_t position;
  bool reached() const { return queue->finished >= position; }
  void run_to() const { queue->run_until(position); }
};
using StreamPoints = std::vector<StreamPoint>;

void run_to(const StreamPoints& points) {
  for (const StreamPoint& point : points) point.run_to();
}

}  // namespace

// An event completes when the points it stands for are reached: its own point in a non-blocking stream's
// work, or, recorded on the default stream, whatever that stream was waiting for then (nothing, mostly: the
// default stream's own work has finished). `completed_at` is the host time it did, shared with the queued
// mark that sets it.
struct CUevent_st {
  bool timing = true;
  bool recorded = false;
  bool on_default_stream = false;  // where it was last recorded
  std::uint64_t operations_before = 0;  // the default stream's, when recorded there
  StreamPoints waits_for;
  std::shared_ptr<std::chrono::steady_clock::time_point> completed_at;
};

namespace {

// Every stream's and event's queue, under one lock; the live non-blocking streams, for the calls that
// synchronize the whole device; and the points the default stream waits for before its next operation
// (cudaStreamWaitEvent on it).
std::mutex streams_mutex;
std::set<cudaStream_t> live_streams;
StreamPoints default_stream_waits;

// The legacy default stream and the blocking streams run everything at once.
bool legacy(cudaStream_t stream) { return stream == nullptr || stream == cudaStreamLegacy; }
bool immediate(cudaStream_t stream) { return legacy(stream) || stream->blocking; }

// The capture in progress (cudaStreamBeginCapture to cudaStreamEndCapture), under streams_mutex: its stream,
// the default-stream work recorded so far, and whether a call the capture cannot take has invalidated it.
struct Capture {
  cudaStream_t stream;
  std::vector<std::function<void()>> work;
  bool invalidated = false;
};
std::unique_ptr<Capture> capture;

// A call that a GPU refuses during a capture (a synchronization, a copy on the legacy stream) invalidates it:
// cudaStreamEndCapture then fails, and the caller (core/cuda_graph.cpp) must not rely on anything recorded.
cudaError_t refuse_during_capture(cudaError_t error) {
  capture->invalidated = true;
  return error;
}

void complete(const CUevent_st& event) { run_to(event.waits_for); }
bool is_complete(const CUevent_st& event) {
  return std::all_of(event.waits_for.begin(), event.waits_for.end(),
                     [](const StreamPoint& point) { return point.reached(); });
}

void run_every_stream() {
  for (const cudaStream_t stream : live_streams) stream->work->run_all();
  default_stream_waits.clear();
}

// The work the default stream was told to wait for runs now.
void settle_default_stream_waits() {
  run_to(default_stream_waits);
  default_stream_waits.clear();
}

// Operations queued on the default stream so far (launches, copies, memsets, cuBLAS calls): a host wait for
// an event recorded there drains the stream only when nothing was queued after it.
std::uint64_t default_stream_operations = 0;

// Before each operation on the default stream.
void begin_default_stream_operation() {
  settle_default_stream_waits();
  ++default_stream_operations;
}

std::atomic<std::uint64_t> drains{0};
void count_drain() { drains.fetch_add(1, std::memory_order_relaxed); }

}  // namespace

std::uint64_t kiln::emulation::default_stream_drains() { return drains.load(std::memory_order_relaxed); }

bool kiln::emulation::default_stream_work(std::function<void()> work, bool on_legacy_stream) {
  {
    const std::lock_guard lock(streams_mutex);
    if (capture) {
      if (on_legacy_stream) {
        capture->invalidated = true;
        return false;
      }
      capture->work.push_back(std::move(work));
      return true;
    }
    begin_default_stream_operation();
  }
  work();
  return true;
}

namespace {
std::atomic<std::uint64_t> graphs_launched{0};
}  // namespace

std::uint64_t kiln::emulation::graph_launches() { return graphs_launched.load(std::memory_order_relaxed); }

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
    case cudaErrorNotReady:
      return "device not ready";
    case cudaErrorStreamCaptureUnsupported:
      return "operation not permitted when stream is capturing";
    case cudaErrorStreamCaptureInvalidated:
      return "operation failed due to a previous error during capture";
    case cudaErrorStreamCaptureIsolation:
      return "dependency created on uncaptured work in another stream";
    case cudaErrorStreamCaptureImplicit:
      return "operation would make the legacy stream depend on a capturing blocking stream";
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
  {
    const std::lock_guard streams(streams_mutex);
    if (capture) return refuse_during_capture(cudaErrorStreamCaptureUnsupported);  // it synchronizes
    count_drain();
    run_every_stream();  // cudaFree synchronizes the device: no queued copy may land in freed memory
  }
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
  pinned_allocations.insert(memory, bytes);
  *pointer = memory;
  return cudaSuccess;
}

cudaError_t cudaFreeHost(void* pointer) {
  if (pointer == nullptr) return cudaSuccess;
  {
    const std::lock_guard streams(streams_mutex);
    if (capture) return refuse_during_capture(cudaErrorStreamCaptureUnsupported);  // it synchronizes
    count_drain();
    run_every_stream();  // as cudaFree: no queued copy may read freed memory
  }
  {
    const std::lock_guard lock(allocations_mutex);
    if (!pinned_allocations.erase(pointer)) return cudaErrorInvalidValue;
  }
  free_aligned(pointer);
  return cudaSuccess;
}

// On the legacy default stream, which does not wait for non-blocking streams.
cudaError_t cudaMemcpy(void* destination, const void* source, std::size_t bytes, cudaMemcpyKind kind) {
  if (bytes == 0) return cudaSuccess;
  if (!copy_is_valid(destination, source, bytes, kind)) return cudaErrorInvalidValue;
  const std::lock_guard lock(streams_mutex);
  if (capture) return refuse_during_capture(cudaErrorStreamCaptureImplicit);
  count_drain();  // it waits for the default stream's work before it copies, and returns once copied
  begin_default_stream_operation();
  std::memmove(destination, source, bytes);
  return cudaSuccess;
}

cudaError_t cudaMemcpyAsync(void* destination, const void* source, std::size_t bytes, cudaMemcpyKind kind,
                            cudaStream_t stream) {
  if (bytes == 0) return cudaSuccess;
  if (!copy_is_valid(destination, source, bytes, kind)) return cudaErrorInvalidValue;
  const std::lock_guard lock(streams_mutex);
  if (immediate(stream) && capture) {
    if (legacy(stream)) return refuse_during_capture(cudaErrorStreamCaptureImplicit);
    // A copy to or from pageable memory is synchronous, which a capture cannot take.
    if ((kind == cudaMemcpyDeviceToHost && !pinned(destination, bytes)) ||
        (kind == cudaMemcpyHostToDevice && !pinned(source, bytes)))
      return refuse_during_capture(cudaErrorStreamCaptureUnsupported);
    capture->work.push_back([=] { std::memmove(destination, source, bytes); });
    return cudaSuccess;
  }
  if (immediate(stream)) {
    if (kind == cudaMemcpyDeviceToHost && !pinned(destination, bytes)) count_drain();  // synchronous then
    begin_default_stream_operation();
    std::memmove(destination, source, bytes);
    return cudaSuccess;
  }
  WorkQueue& work = *stream->work;
  if (kind == cudaMemcpyHostToDevice && !pinned(source, bytes)) {
    // From pageable memory the runtime stages the source before it returns: what lands is what it held
    // at the call.
    const auto* first = static_cast<const unsigned char*>(source);
    auto staged = std::make_shared<const std::vector<unsigned char>>(first, first + bytes);
    work.enqueue([=] { std::memcpy(destination, staged->data(), bytes); });
  } else if (kind == cudaMemcpyDeviceToHost && !pinned(destination, bytes)) {
    // To pageable memory it returns only once the copy, and so the stream's work before it, has finished.
    work.run_all();
    std::memmove(destination, source, bytes);
  } else {
    work.enqueue([=] { std::memmove(destination, source, bytes); });
  }
  return cudaSuccess;
}

cudaError_t cudaMemsetAsync(void* pointer, int value, std::size_t bytes, cudaStream_t stream) {
  if (bytes == 0) return cudaSuccess;
  if (!kiln::emulation::inside_device_memory(pointer, bytes)) return cudaErrorInvalidValue;
  const std::lock_guard lock(streams_mutex);
  if (immediate(stream) && capture) {
    if (legacy(stream)) return refuse_during_capture(cudaErrorStreamCaptureImplicit);
    capture->work.push_back([=] { std::memset(pointer, value, bytes); });
    return cudaSuccess;
  }
  if (immediate(stream)) {
    begin_default_stream_operation();
    std::memset(pointer, value, bytes);
    return cudaSuccess;
  }
  stream->work->enqueue([=] { std::memset(pointer, value, bytes); });
  return cudaSuccess;
}

// ---- streams and events ----------------------------------------------------------------------------------

cudaError_t cudaStreamCreateWithFlags(cudaStream_t* stream, unsigned flags) {
  if (flags != cudaStreamDefault && flags != cudaStreamNonBlocking) return cudaErrorInvalidValue;
  *stream = new CUstream_st;
  (*stream)->blocking = flags == cudaStreamDefault;
  const std::lock_guard lock(streams_mutex);
  live_streams.insert(*stream);
  return cudaSuccess;
}

// Returns at once on a GPU, the stream's work still finishing: here it finishes first.
cudaError_t cudaStreamDestroy(cudaStream_t stream) {
  const std::lock_guard lock(streams_mutex);
  if (live_streams.erase(stream) == 0) return cudaErrorInvalidResourceHandle;
  stream->work->run_all();
  delete stream;
  return cudaSuccess;
}

cudaError_t cudaStreamSynchronize(cudaStream_t stream) {
  const std::lock_guard lock(streams_mutex);
  if (immediate(stream) && capture) return refuse_during_capture(cudaErrorStreamCaptureUnsupported);
  if (immediate(stream)) {
    count_drain();
    settle_default_stream_waits();
  } else {
    stream->work->run_all();
  }
  return cudaSuccess;
}

// The stream's later work starts after the event, and nothing runs now: the default stream runs what the
// event stands for before its next operation; a non-blocking stream, when its queue reaches the wait.
cudaError_t cudaStreamWaitEvent(cudaStream_t stream, cudaEvent_t event, unsigned) {
  if (event == nullptr) return cudaErrorInvalidResourceHandle;
  const std::lock_guard lock(streams_mutex);
  // An event from outside the capture: the graph would depend on work it does not hold.
  if (immediate(stream) && capture) return refuse_during_capture(cudaErrorStreamCaptureIsolation);
  if (is_complete(*event)) return cudaSuccess;
  if (immediate(stream)) {
    default_stream_waits.insert(default_stream_waits.end(), event->waits_for.begin(), event->waits_for.end());
  } else {
    stream->work->enqueue([points = event->waits_for] { run_to(points); });
  }
  return cudaSuccess;
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

cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream) {
  if (event == nullptr) return cudaErrorInvalidResourceHandle;
  const std::lock_guard lock(streams_mutex);
  // A GPU would record an event node; kiln records none inside a graph, and the emulation does not either.
  if (immediate(stream) && capture) return refuse_during_capture(cudaErrorStreamCaptureUnsupported);
  event->recorded = true;
  event->completed_at = std::make_shared<std::chrono::steady_clock::time_point>();
  event->on_default_stream = immediate(stream);
  if (immediate(stream)) {
    event->operations_before = default_stream_operations;
    event->waits_for = default_stream_waits;  // the default stream's own work has finished
    *event->completed_at = std::chrono::steady_clock::now();
    return cudaSuccess;
  }
  WorkQueue& work = *stream->work;
  work.enqueue([completed_at = event->completed_at] { *completed_at = std::chrono::steady_clock::now(); });
  event->waits_for = {StreamPoint{stream->work, work.enqueued}};
  return cudaSuccess;
}

cudaError_t cudaEventSynchronize(cudaEvent_t event) {
  if (event == nullptr) return cudaErrorInvalidResourceHandle;
  const std::lock_guard lock(streams_mutex);
  if (event->on_default_stream && event->operations_before == default_stream_operations) count_drain();
  complete(*event);
  return cudaSuccess;
}

cudaError_t cudaEventElapsedTime(float* milliseconds, cudaEvent_t start, cudaEvent_t stop) {
  if (start == nullptr || stop == nullptr || !start->timing || !stop->timing)
    return cudaErrorInvalidResourceHandle;
  if (!start->recorded || !stop->recorded) return cudaErrorInvalidResourceHandle;
  const std::lock_guard lock(streams_mutex);
  if (!is_complete(*start) || !is_complete(*stop)) return cudaErrorNotReady;
  *milliseconds =
      std::chrono::duration<float, std::milli>(*stop->completed_at - *start->completed_at).count();
  return cudaSuccess;
}

cudaError_t cudaDeviceSynchronize() {
  const std::lock_guard lock(streams_mutex);
  if (capture) return refuse_during_capture(cudaErrorStreamCaptureUnsupported);
  count_drain();
  run_every_stream();
  return cudaSuccess;
}

// ---- graphs ----------------------------------------------------------------------------------------------
// One capture at a time, of a blocking stream (the legacy stream cannot be captured), in any mode: the
// emulation refuses, in every mode, what a relaxed capture refuses (synchronizing, the legacy stream).

cudaError_t cudaStreamBeginCapture(cudaStream_t stream, cudaStreamCaptureMode) {
  const std::lock_guard lock(streams_mutex);
  if (legacy(stream) || !stream->blocking) return cudaErrorStreamCaptureUnsupported;
  if (capture) return cudaErrorStreamCaptureUnsupported;  // one at a time
  settle_default_stream_waits();  // the waits belong to work queued before the capture
  capture = std::make_unique<Capture>(Capture{stream, {}, false});
  return cudaSuccess;
}

cudaError_t cudaStreamEndCapture(cudaStream_t stream, cudaGraph_t* graph) {
  const std::lock_guard lock(streams_mutex);
  if (!capture || capture->stream != stream) return cudaErrorInvalidValue;
  const std::unique_ptr<Capture> ended = std::move(capture);
  *graph = nullptr;
  if (ended->invalidated) return cudaErrorStreamCaptureInvalidated;
  *graph = new CUgraph_st{std::move(ended->work)};
  return cudaSuccess;
}

cudaError_t cudaStreamIsCapturing(cudaStream_t stream, cudaStreamCaptureStatus* status) {
  const std::lock_guard lock(streams_mutex);
  *status = !capture || (!legacy(stream) && capture->stream != stream) ? cudaStreamCaptureStatusNone
            : capture->invalidated                                     ? cudaStreamCaptureStatusInvalidated
                                                                       : cudaStreamCaptureStatusActive;
  return cudaSuccess;
}

cudaError_t cudaGraphInstantiate(cudaGraphExec_t* exec, cudaGraph_t graph, unsigned long long) {
  if (graph == nullptr) return cudaErrorInvalidValue;
  *exec = new CUgraphExec_st{graph->work};
  return cudaSuccess;
}

// The recorded operations, in order, as the stream's next operation.
cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t stream) {
  if (exec == nullptr) return cudaErrorInvalidResourceHandle;
  {
    const std::lock_guard lock(streams_mutex);
    if (!immediate(stream)) return cudaErrorInvalidValue;  // kiln launches graphs on its compute stream
    if (capture) return refuse_during_capture(cudaErrorStreamCaptureUnsupported);
    begin_default_stream_operation();
  }
  graphs_launched.fetch_add(1, std::memory_order_relaxed);
  for (const std::function<void()>& work : exec->work) work();
  return cudaSuccess;
}

cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec) {
  if (exec == nullptr) return cudaErrorInvalidResourceHandle;
  delete exec;
  return cudaSuccess;
}

cudaError_t cudaGraphDestroy(cudaGraph_t graph) {
  if (graph == nullptr) return cudaErrorInvalidResourceHandle;
  delete graph;
  return cudaSuccess;
}
