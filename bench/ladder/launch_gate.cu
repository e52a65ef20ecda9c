// The gate kernel of the ladder benchmarks' timing (harness.hpp, time_runs): one thread that spins on a flag
// in page-locked host memory, so that a sample's launches queue up behind it and then run back to back.
// Without it, a sample of many 3-microsecond kernels measures how fast the host launches them (a cuDNN call
// costs several microseconds of host time), not how fast the device runs them. The same idea as nvbench's
// "blocking kernel", timeout included: if the host never releases the gate (a library call that waits on
// the stream while the gate holds it would otherwise deadlock), the kernel gives up after the timeout and
// says so.
#include <cuda_runtime.h>

#include <atomic>
#include <cstdint>

#include "bench/ladder/harness.hpp"

namespace kiln::bench::ladder {
namespace {

// Spins until *release is set or `timeout_ns` of the global timer passed; on a timeout sets *timed_out.
__global__ void gate_kernel(const volatile int* release, std::uint64_t timeout_ns, volatile int* timed_out) {
  std::uint64_t start = 0;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(start));
  while (*release == 0) {
    std::uint64_t now = 0;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(now));
    if (now - start > timeout_ns) {
      *timed_out = 1;
      return;
    }
    __nanosleep(500);
  }
}

// Two ints of mapped, page-locked host memory: [0] the release flag (host writes), [1] timed out (device
// writes). Allocated on first use, for the process's life.
int* flags() {
  static int* pointer = [] {
    void* memory = nullptr;
    LADDER_CUDA(cudaHostAlloc(&memory, 2 * sizeof(int), cudaHostAllocMapped));
    return static_cast<int*>(memory);
  }();
  return pointer;
}

}  // namespace

void gate_hold(double timeout_ms) {
  int* host = flags();
  reinterpret_cast<volatile int*>(host)[0] = 0;
  reinterpret_cast<volatile int*>(host)[1] = 0;
  std::atomic_thread_fence(std::memory_order_seq_cst);
  int* device = nullptr;
  LADDER_CUDA(cudaHostGetDevicePointer(reinterpret_cast<void**>(&device), host, 0));
  gate_kernel<<<1, 1>>>(device, static_cast<std::uint64_t>(timeout_ms * 1e6), device + 1);
  LADDER_CUDA(cudaGetLastError());
}

void gate_release() {
  std::atomic_thread_fence(std::memory_order_seq_cst);
  reinterpret_cast<volatile int*>(flags())[0] = 1;
}

bool gate_timed_out() { return reinterpret_cast<volatile int*>(flags())[1] != 0; }

}  // namespace kiln::bench::ladder
