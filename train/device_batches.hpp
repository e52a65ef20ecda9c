// DeviceBatches: a DataLoader's batches, delivered on the device the model runs on.
//
// On the CPU the loader's batches pass through. On a CUDA device one batch is always in flight: when the
// step for batch k asks for its batch, batch k+1 is taken from the loader at once and its tensors start
// travelling (packed into one pinned staging buffer, copied on a CopyStream beside the compute stream), so
// the copy overlaps step k's kernels and step k+1 finds its inputs already on the device:
//
//   host:        next() -> k          next() -> k+1
//   copy stream:   [copy k+1]           [copy k+2]
//   kernels:     [  step k         ]  [  step k+1       ]
//
// Images, labels and (multi-label) targets move; indices stay on the host.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>

#include "core/cuda_runtime.hpp"
#include "data/loader.hpp"

namespace kiln::train {

class DeviceBatches {
 public:
  DeviceBatches(data::DataLoader& loader, Device device);
  ~DeviceBatches();
  DeviceBatches(const DeviceBatches&) = delete;
  DeviceBatches& operator=(const DeviceBatches&) = delete;

  void start_epoch(std::int64_t epoch);
  // The epoch's next batch with its tensors on the device, or nothing once the epoch is done.
  std::optional<data::Batch> next();

 private:
  // Takes the loader's next batch and starts copying its tensors to the device (the tensors of the
  // returned batch are device tensors whose contents are not there until order_before_kernels()).
  std::optional<data::Batch> send_next();
  // Drops the batch in flight once its copy has finished: freed earlier, its device blocks could go to a
  // kernel while the copy stream is still writing them, and its pinned source could be released under it.
  void drop_in_flight();

  data::DataLoader& loader_;
  Device device_;
  std::unique_ptr<cuda::CopyStream> copies_;  // CUDA only
  cuda::PinnedBuffer staging_;
  std::optional<data::Batch> in_flight_;
  bool epoch_started_ = false;
};

}  // namespace kiln::train
