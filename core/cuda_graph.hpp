// CudaGraph: device work recorded once and launched again as one unit (a CUDA graph).
//
// A small CNN's training step on a GPU is a few hundred short kernels (a ResNet-20 step at batch 128 launches
// 223), and the host pays microseconds for each launch, which at small batches is as long as the kernels run:
// the GPU idles between them. Captured into a graph, the step's kernels, cuBLAS calls and copies are queued
// by one cudaGraphLaunch, and the GPU runs them back to back.
//
//   CudaGraph step(device_index, [&] { loss = train_step(static_images, static_labels); });  // records
//   for (...) { static_images.copy_(next_batch); step.launch(); }                           // runs
//
// What a graph keeps is exactly what the device was asked to do during the capture: the kernels with their
// arguments and the addresses they were given. So what is captured must
//   - queue device work on the compute stream only, and never wait for it (no item(), no copy to the CPU, no
//     synchronize): nothing of it runs during the capture, and a wait fails the capture;
//   - take the same kernel arguments at every launch: a learning rate or a step count that changes belongs
//     outside the graph (the trainer runs the optimizer outside it), and a random draw would repeat its
//     numbers;
//   - read its inputs from, and leave its results in, tensors that outlive the graph (the "static" tensors):
//     a launch reads and writes the same addresses again.
// Memory: every block the captured work is handed comes from a private pool of the device's caching allocator
// (core/caching_allocator.hpp), so no tensor made outside the graph can share an address a launch writes.
// The pool goes back to the shared cache when the graph is destroyed.
#pragma once

#include <cstdint>
#include <functional>

namespace kiln {

class CudaGraph {
 public:
  // Records the device work `record` queues on cuda:index's compute stream; none of it runs now. Throws a
  // kiln::Error, keeping nothing, when `record` throws or queues something a graph cannot hold.
  CudaGraph(int device_index, const std::function<void()>& record);
  ~CudaGraph();
  CudaGraph(const CudaGraph&) = delete;
  CudaGraph& operator=(const CudaGraph&) = delete;

  // Queues the recorded work on the compute stream, after everything queued there before; returns at once.
  void launch() const;

 private:
  int device_index_;
  void* exec_ = nullptr;  // cudaGraphExec_t
  std::uint64_t pool_ = 0;
};

}  // namespace kiln
