#include "train/device_batches.hpp"

#include <cstring>
#include <vector>

#include "core/error.hpp"
#include "core/raw.hpp"
#include "train/packing.hpp"

namespace kiln::train {

DeviceBatches::DeviceBatches(data::DataLoader& loader, Device device) : loader_(loader), device_(device) {
  if (device_.is_cuda()) copies_ = std::make_unique<cuda::CopyStream>(device_.index);
}

DeviceBatches::~DeviceBatches() {
  try {
    drop_in_flight();
  } catch (const Error&) {
    // The device is already in error (the wait reports it); a destructor must not throw.
  }
}

void DeviceBatches::drop_in_flight() {
  if (copies_) copies_->wait_for_copies();
  in_flight_.reset();
}

void DeviceBatches::start_epoch(std::int64_t epoch) {
  drop_in_flight();  // a batch still in flight belongs to the old epoch
  epoch_started_ = false;
  loader_.start_epoch(epoch);
}

std::optional<data::Batch> DeviceBatches::next() {
  if (device_.is_cpu()) return loader_.next();
  if (!epoch_started_) {
    in_flight_ = send_next();
    epoch_started_ = true;
  }
  std::optional<data::Batch> ready = std::move(in_flight_);
  if (!ready) return std::nullopt;
  copies_->order_before_kernels();  // this step's kernels start after its inputs have arrived
  in_flight_ = send_next();         // and the next batch travels while they run
  return ready;
}

std::optional<data::Batch> DeviceBatches::send_next() {
  std::optional<data::Batch> batch = loader_.next();
  if (!batch) return std::nullopt;
  std::vector<Tensor*> moving{&batch->images, &batch->labels};
  if (batch->targets.defined()) moving.push_back(&batch->targets);

  std::size_t total = 0;
  for (const Tensor* tensor : moving) total += packed_size(tensor->nbytes());
  copies_->wait_for_copies();  // the staging buffer's last copy (the batch handed out now) has finished
  if (staging_.bytes() < total) staging_ = cuda::PinnedBuffer(total);
  copies_->wait_for_kernels();  // the device blocks allocated below may have just been freed by kernels

  auto* staging = static_cast<char*>(staging_.data());
  for (Tensor* tensor : moving) {
    // Dense as it is: NCHW, or channels-last (--memory-format channels-last), a layout the device keeps.
    const bool channels_last = tensor->is_channels_last();
    const Tensor host = channels_last ? tensor->channels_last() : tensor->contiguous();
    const std::size_t bytes = host.nbytes();
    std::memcpy(staging, host.data_ptr(), bytes);
    Tensor on_device = raw::empty_in_layout(host.shape(), host.dtype(), device_, channels_last);
    copies_->copy_to_device(on_device.data_ptr(), staging, bytes);
    *tensor = std::move(on_device);
    staging += packed_size(bytes);
  }
  return batch;
}

}  // namespace kiln::train
