// LossReadback: each training step's loss, brought to the host without stalling the device.
//
// The loop needs every step's loss on the host (the NaN check, the progress bar, the epoch's mean), but
// reading it at once, as Tensor::item() does, makes the host wait for the forward pass it has just queued:
// on a GPU the device then idles between steps while the host launches the backward pass. Here, on a GPU,
// step k's loss is copied back behind its forward pass (cuda::HostReadback) and read after step k+1's work
// is queued, by when it has long landed. On the CPU the value is simply read.
//
//   const std::uint64_t ticket = losses.start(loss);  // right after the forward pass
//   ...                                               // backward, update, the next step's forward
//   const double value = losses.value(ticket);        // at most one start() later
#pragma once

#include <array>
#include <cstdint>
#include <memory>

#include "core/cuda_runtime.hpp"
#include "core/tensor.hpp"

namespace kiln::train {

class LossReadback {
 public:
  explicit LossReadback(Device device);

  // Starts bringing `loss` (one element, float32 or float64, on the device) to the host; a ticket for it.
  std::uint64_t start(const Tensor& loss);
  // The loss `ticket` stands for, waiting for its copy if it has not landed. Only the last two tickets
  // are kept.
  double value(std::uint64_t ticket) const;

 private:
  static constexpr std::size_t kSlots = 2;  // the step being reported and the one just started

  Device device_;
  std::uint64_t started_ = 0;
  std::array<double, kSlots> cpu_values_{};                            // on the CPU
  std::array<std::unique_ptr<cuda::HostReadback>, kSlots> readbacks_;  // on a GPU
};

}  // namespace kiln::train
