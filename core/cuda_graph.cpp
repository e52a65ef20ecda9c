#include "core/cuda_graph.hpp"

#include <string>

#include "core/caching_allocator.hpp"
#include "core/cuda_runtime.hpp"
#include "core/error.hpp"
#include "core/storage.hpp"

#ifdef KILN_WITH_CUDA
#include <cuda_runtime.h>
#endif

namespace kiln {

#ifdef KILN_WITH_CUDA

CudaGraph::CudaGraph(int device_index, const std::function<void()>& record) : device_index_(device_index) {
  cuda::require_device(device_index);
  const std::string where = " on cuda:" + std::to_string(device_index);
  const auto stream = static_cast<cudaStream_t>(cuda::compute_stream(device_index));
  CachingAllocator& allocator = cuda_caching_allocator(device_index);
  pool_ = allocator.open_pool();
  const auto abandon = [&] {
    allocator.close_pool();
    allocator.release_pool(pool_);
  };
  // Relaxed: the caching allocator may cudaMalloc a new block during the capture, which stricter modes
  // refuse.
  if (const cudaError_t began = cudaStreamBeginCapture(stream, cudaStreamCaptureModeRelaxed);
      began != cudaSuccess) {
    abandon();
    cuda::check_status(began, "cudaStreamBeginCapture(compute stream)" + where);
  }
  cudaGraph_t graph = nullptr;
  try {
    record();
  } catch (...) {
    if (cudaStreamEndCapture(stream, &graph) == cudaSuccess && graph != nullptr) cudaGraphDestroy(graph);
    cudaGetLastError();
    abandon();
    throw;
  }
  const cudaError_t ended = cudaStreamEndCapture(stream, &graph);
  allocator.close_pool();
  if (ended != cudaSuccess) {
    allocator.release_pool(pool_);
    cuda::check_status(ended, "capturing a CUDA graph" + where +
                                  " (cudaStreamEndCapture: the captured work waited for the device, or "
                                  "used another stream)");
  }
  cudaGraphExec_t exec = nullptr;
  const cudaError_t instantiated = cudaGraphInstantiate(&exec, graph, 0);
  cudaGraphDestroy(graph);  // the executable graph is a copy
  if (instantiated != cudaSuccess) {
    allocator.release_pool(pool_);
    cuda::check_status(instantiated, "cudaGraphInstantiate" + where);
  }
  exec_ = exec;
}

CudaGraph::~CudaGraph() {
  // A graph still running finishes first: the runtime frees it when it is done. Its blocks go back to the
  // shared cache, and work queued later on the same stream runs after it.
  cudaGraphExecDestroy(static_cast<cudaGraphExec_t>(exec_));
  cuda_caching_allocator(device_index_).release_pool(pool_);
}

void CudaGraph::launch() const {
  cuda::check_status(cudaGraphLaunch(static_cast<cudaGraphExec_t>(exec_),
                                     static_cast<cudaStream_t>(cuda::compute_stream(device_index_))),
                     "cudaGraphLaunch on cuda:" + std::to_string(device_index_));
}

#else  // built without the CUDA toolkit

CudaGraph::CudaGraph(int device_index, const std::function<void()>&) : device_index_(device_index) {
  fail("CUDA graphs: this kiln was built without CUDA (CMake found no CUDA compiler; see the README)");
}
CudaGraph::~CudaGraph() = default;
void CudaGraph::launch() const {}

#endif

}  // namespace kiln
