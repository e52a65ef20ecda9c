// The emulated runtime's streams (tests/emulation/emulated_runtime.cpp): the default stream runs each call
// to its end, and a non-blocking stream runs its work as late as a GPU may: at a host wait, or at the default
// stream's first work after it waits. What these cases pin down is what makes a missing wait visible in
// kiln's own tests: until then a copy's destination keeps its old bytes, and a pinned source rewritten
// meanwhile is what lands.
#include <doctest/doctest.h>

#include <algorithm>
#include <vector>

#include "tests/emulation/toolkit/cuda_runtime.h"  // the emulated runtime's, by path: this tests it

namespace emulation_emulated_runtime_test {

namespace {

constexpr std::size_t kCount = 64;
constexpr std::size_t kBytes = kCount * sizeof(float);

// Host reads of device memory are legal here: emulated device memory is host memory.
bool holds(const float* device, float value) {
  for (std::size_t i = 0; i < kCount; ++i)
    if (device[i] != value) return false;
  return true;
}

bool untouched(const float* device) {  // cudaMalloc's 0xff bytes
  const auto* bytes = reinterpret_cast<const unsigned char*>(device);
  for (std::size_t i = 0; i < kBytes; ++i)
    if (bytes[i] != 0xff) return false;
  return true;
}

void fill(float* host, float value) {
  for (std::size_t i = 0; i < kCount; ++i) host[i] = value;
}

// A device buffer, a pinned one, a non-blocking stream and an event, released in order.
struct Fixture {
  float* device = nullptr;
  float* pinned = nullptr;
  cudaStream_t stream = nullptr;
  cudaEvent_t copied = nullptr;

  Fixture() {
    REQUIRE(cudaMalloc(reinterpret_cast<void**>(&device), kBytes) == cudaSuccess);
    REQUIRE(cudaHostAlloc(reinterpret_cast<void**>(&pinned), kBytes, cudaHostAllocDefault) == cudaSuccess);
    REQUIRE(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking) == cudaSuccess);
    REQUIRE(cudaEventCreate(&copied) == cudaSuccess);
  }
  ~Fixture() {
    cudaEventDestroy(copied);
    if (stream != nullptr) cudaStreamDestroy(stream);
    cudaFreeHost(pinned);
    cudaFree(device);
  }
  void copy_in() {
    REQUIRE(cudaMemcpyAsync(device, pinned, kBytes, cudaMemcpyHostToDevice, stream) == cudaSuccess);
    REQUIRE(cudaEventRecord(copied, stream) == cudaSuccess);
  }
};

TEST_CASE(
    "emulated runtime: a copy on a non-blocking stream lands at the default stream's first work after "
    "it waits") {
  Fixture f;
  fill(f.pinned, 1.0f);
  f.copy_in();
  CHECK(untouched(f.device));  // a kernel launched now would read 0xff bytes: NaN
  REQUIRE(cudaStreamWaitEvent(cudaStreamLegacy, f.copied, 0) == cudaSuccess);
  CHECK(untouched(f.device));  // the wait only orders the default stream's later work
  fill(f.pinned, 2.0f);        // a host write racing the copy: on a GPU either value may land
  std::vector<float> back(kCount);
  REQUIRE(cudaMemcpy(back.data(), f.device, kBytes, cudaMemcpyDeviceToHost) == cudaSuccess);
  CHECK(back == std::vector<float>(kCount, 2.0f));  // here the latest one does, so the race shows
}

TEST_CASE("emulated runtime: every synchronizing call finishes the stream's work") {
  Fixture f;
  fill(f.pinned, 3.0f);
  SUBCASE("cudaEventSynchronize") {
    f.copy_in();
    REQUIRE(cudaEventSynchronize(f.copied) == cudaSuccess);
  }
  SUBCASE("cudaStreamSynchronize") {
    f.copy_in();
    REQUIRE(cudaStreamSynchronize(f.stream) == cudaSuccess);
  }
  SUBCASE("cudaDeviceSynchronize") {
    f.copy_in();
    REQUIRE(cudaDeviceSynchronize() == cudaSuccess);
  }
  SUBCASE("cudaStreamDestroy") {
    f.copy_in();
    REQUIRE(cudaStreamDestroy(f.stream) == cudaSuccess);
    f.stream = nullptr;
  }
  SUBCASE("a device-to-host copy into pageable memory, on the same stream") {
    f.copy_in();
    std::vector<float> back(kCount);
    REQUIRE(cudaMemcpyAsync(back.data(), f.device, kBytes, cudaMemcpyDeviceToHost, f.stream) == cudaSuccess);
    CHECK(back == std::vector<float>(kCount, 3.0f));
  }
  CHECK(holds(f.device, 3.0f));
}

TEST_CASE("emulated runtime: the default stream neither waits for a non-blocking stream nor is waited on") {
  Fixture f;
  fill(f.pinned, 4.0f);
  f.copy_in();
  std::vector<float> back(kCount);
  // A synchronous copy runs on the default stream, which does not wait for a non-blocking one.
  REQUIRE(cudaMemcpy(back.data(), f.device, kBytes, cudaMemcpyDeviceToHost) == cudaSuccess);
  CHECK(untouched(back.data()));
  // And a wait on an event recorded on the default stream is over at once.
  cudaEvent_t kernels_done = nullptr;
  REQUIRE(cudaEventCreate(&kernels_done) == cudaSuccess);
  REQUIRE(cudaEventRecord(kernels_done, cudaStreamLegacy) == cudaSuccess);
  REQUIRE(cudaStreamWaitEvent(f.stream, kernels_done, 0) == cudaSuccess);
  CHECK(untouched(f.device));
  cudaEventDestroy(kernels_done);
}

TEST_CASE("emulated runtime: an event recorded on the default stream while it waits stands for that wait") {
  Fixture f;
  fill(f.pinned, 8.0f);
  f.copy_in();
  REQUIRE(cudaStreamWaitEvent(cudaStreamLegacy, f.copied, 0) == cudaSuccess);
  cudaEvent_t kernels_done = nullptr;
  REQUIRE(cudaEventCreate(&kernels_done) == cudaSuccess);
  REQUIRE(cudaEventRecord(kernels_done, cudaStreamLegacy) == cudaSuccess);
  CHECK(untouched(f.device));  // recording marks the default stream; it runs nothing
  REQUIRE(cudaStreamWaitEvent(f.stream, kernels_done, 0) == cudaSuccess);
  CHECK(untouched(f.device));  // nor does a non-blocking stream's wait, until its queue reaches it
  REQUIRE(cudaEventSynchronize(kernels_done) == cudaSuccess);
  CHECK(holds(f.device, 8.0f));
  cudaEventDestroy(kernels_done);
}

TEST_CASE("emulated runtime: from pageable memory the source is taken at the call") {
  Fixture f;
  std::vector<float> pageable(kCount, 5.0f);
  REQUIRE(cudaMemcpyAsync(f.device, pageable.data(), kBytes, cudaMemcpyHostToDevice, f.stream) ==
          cudaSuccess);
  std::fill(pageable.begin(), pageable.end(), 6.0f);
  REQUIRE(cudaStreamSynchronize(f.stream) == cudaSuccess);
  CHECK(holds(f.device, 5.0f));
}

TEST_CASE("emulated runtime: an event's time is not ready until its stream reaches it, and frees stay safe") {
  Fixture f;
  cudaEvent_t start = nullptr;
  REQUIRE(cudaEventCreate(&start) == cudaSuccess);
  REQUIRE(cudaEventRecord(start, f.stream) == cudaSuccess);
  fill(f.pinned, 7.0f);
  f.copy_in();
  float milliseconds = -1.0f;
  CHECK(cudaEventElapsedTime(&milliseconds, start, f.copied) == cudaErrorNotReady);
  REQUIRE(cudaEventSynchronize(f.copied) == cudaSuccess);
  CHECK(cudaEventElapsedTime(&milliseconds, start, f.copied) == cudaSuccess);
  CHECK(milliseconds >= 0.0f);
  cudaEventDestroy(start);

  // cudaFree synchronizes the device, so a copy still queued lands before its memory goes (else it would
  // fault on the freed pages).
  float* second = nullptr;
  REQUIRE(cudaMalloc(reinterpret_cast<void**>(&second), kBytes) == cudaSuccess);
  REQUIRE(cudaMemcpyAsync(second, f.pinned, kBytes, cudaMemcpyHostToDevice, f.stream) == cudaSuccess);
  CHECK(cudaFree(second) == cudaSuccess);
}

// A graph (kiln's CudaGraph, core/cuda_graph.hpp): what a blocking stream is asked to do during a capture is
// recorded, not run, and runs at each launch, reading its pinned source as it is then; a call a GPU refuses
// during a capture (a synchronous copy, a synchronize, cudaFree) fails and invalidates the capture.
TEST_CASE("emulated runtime: a capture records a blocking stream's work, and each graph launch runs it") {
  Fixture f;
  cudaStream_t blocking = nullptr;
  REQUIRE(cudaStreamCreateWithFlags(&blocking, cudaStreamDefault) == cudaSuccess);
  float* second = nullptr;
  REQUIRE(cudaMalloc(reinterpret_cast<void**>(&second), kBytes) == cudaSuccess);

  REQUIRE(cudaStreamBeginCapture(blocking, cudaStreamCaptureModeRelaxed) == cudaSuccess);
  cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
  REQUIRE(cudaStreamIsCapturing(blocking, &status) == cudaSuccess);
  CHECK(status == cudaStreamCaptureStatusActive);
  REQUIRE(cudaMemcpyAsync(f.device, f.pinned, kBytes, cudaMemcpyHostToDevice, blocking) == cudaSuccess);
  REQUIRE(cudaMemsetAsync(second, 0, kBytes, blocking) == cudaSuccess);
  CHECK(untouched(f.device));  // recorded, not run
  CHECK(untouched(second));
  cudaGraph_t graph = nullptr;
  REQUIRE(cudaStreamEndCapture(blocking, &graph) == cudaSuccess);
  cudaGraphExec_t exec = nullptr;
  REQUIRE(cudaGraphInstantiate(&exec, graph, 0) == cudaSuccess);
  REQUIRE(cudaGraphDestroy(graph) == cudaSuccess);

  for (const float value : {1.0f, 2.0f}) {
    fill(f.pinned, value);  // each launch copies what the pinned buffer holds then
    REQUIRE(cudaGraphLaunch(exec, blocking) == cudaSuccess);
    CHECK(holds(f.device, value));
    CHECK(holds(second, 0.0f));
  }
  REQUIRE(cudaGraphExecDestroy(exec) == cudaSuccess);

  // A synchronous copy would make the legacy stream wait for the capturing one: refused, and the capture
  // is invalidated, so it ends with an error and no graph.
  REQUIRE(cudaStreamBeginCapture(blocking, cudaStreamCaptureModeRelaxed) == cudaSuccess);
  CHECK(cudaMemcpy(f.pinned, f.device, kBytes, cudaMemcpyDeviceToHost) == cudaErrorStreamCaptureImplicit);
  CHECK(cudaStreamSynchronize(blocking) == cudaErrorStreamCaptureUnsupported);
  CHECK(cudaFree(second) == cudaErrorStreamCaptureUnsupported);
  REQUIRE(cudaStreamIsCapturing(blocking, &status) == cudaSuccess);
  CHECK(status == cudaStreamCaptureStatusInvalidated);
  CHECK(cudaStreamEndCapture(blocking, &graph) == cudaErrorStreamCaptureInvalidated);
  CHECK(graph == nullptr);
  // The legacy stream cannot be captured, nor a non-blocking stream here (kiln captures its compute stream).
  CHECK(cudaStreamBeginCapture(cudaStreamLegacy, cudaStreamCaptureModeRelaxed) ==
        cudaErrorStreamCaptureUnsupported);
  CHECK(cudaStreamBeginCapture(f.stream, cudaStreamCaptureModeRelaxed) == cudaErrorStreamCaptureUnsupported);
  CHECK(cudaFree(second) == cudaSuccess);
  CHECK(cudaStreamDestroy(blocking) == cudaSuccess);
}

}  // namespace

}  // namespace emulation_emulated_runtime_test
