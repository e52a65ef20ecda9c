// LossReadback: each training step's loss, brought to the host without stalling the device.
//
// The loop needs every step's loss on the host (the NaN check, the progress bar, the epoch's mean), but
// reading it at once, as Tensor::item() does, makes the host wait for the forward pass it has just queued:
// on a GPU the device then idles between steps while the host launches the backward pass. Here step k's
// loss is copied back behind its forward pass (a TensorReadback) and read after step k+1's work is queued,
// by when it has long landed.
//
//   const std::uint64_t ticket = losses.start(loss);  // right after the forward pass
//   ...                                               // backward, update, the next step's forward
//   const double value = losses.value(ticket);        // at most one start() later
#pragma once

#include <cstdint>

#include "core/tensor.hpp"
#include "train/tensor_readback.hpp"

namespace kiln::train {

class LossReadback {
 public:
  explicit LossReadback(Device device) : losses_(device) {}

  // Starts bringing `loss` (one element, on the device) to the host; a ticket for it.
  std::uint64_t start(const Tensor& loss);
  // The loss `ticket` stands for, waiting for its copy if it has not landed. Only the last two tickets
  // are kept.
  double value(std::uint64_t ticket) const { return losses_.read(ticket).front().item(); }

 private:
  TensorReadback losses_;
};

}  // namespace kiln::train
