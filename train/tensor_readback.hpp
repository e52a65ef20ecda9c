// TensorReadback: tensors a loop computes on the device, brought to the host a step late, so the device
// never waits for the host.
//
// Reading a device tensor at once (Tensor::item, to_vector) makes the host wait for the work it has just
// queued, and the GPU then idles until the host launches again. Here start() queues the copies behind that
// work, into page-locked memory (cuda::HostReadback), and read() collects them after the next step's work
// is queued, by when they have long landed. On the CPU, start() takes a copy at once.
//
//   const std::uint64_t ticket = readback.start({logits, labels, loss});  // after batch k's forward pass
//   ...                                                                  // batch k+1's forward pass
//   const std::vector<Tensor> host = readback.read(ticket);               // batch k's, on the CPU
//
// The training loop reads its losses this way (train/loss_readback.hpp), evaluation its logits.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <vector>

#include "core/cuda_runtime.hpp"
#include "core/tensor.hpp"

namespace kiln::train {

class TensorReadback {
 public:
  explicit TensorReadback(Device device);

  // Starts bringing `tensors` (on the device given at construction) to the host as they are now: writes
  // queued later do not reach the copies. Returns a ticket for them.
  std::uint64_t start(const std::vector<Tensor>& tensors);
  // The tensors `ticket` stands for, as dense CPU tensors of the same shapes and dtypes, waiting for
  // their copies if they have not landed. Only the last kSlots tickets are kept.
  std::vector<Tensor> read(std::uint64_t ticket) const;

  static constexpr std::size_t kSlots = 2;  // the step being read and the one just started

 private:
  // Where one tensor of a start() lands in its slot's page-locked buffer.
  struct Landing {
    Shape shape;
    DType dtype;
    std::size_t offset;
  };
  struct Slot {
    std::vector<Tensor> snapshots;               // on the CPU: the copies taken at start()
    std::unique_ptr<cuda::HostReadback> copies;  // on a GPU: the copies in flight
    std::vector<Landing> landings;               // on a GPU: where each tensor lands
  };

  Device device_;
  std::uint64_t started_ = 0;
  std::array<Slot, kSlots> slots_;
};

}  // namespace kiln::train
