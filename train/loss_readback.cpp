#include "train/loss_readback.hpp"

#include "core/error.hpp"

namespace kiln::train {

LossReadback::LossReadback(Device device) : device_(device) {
  if (device_.is_cuda())
    for (auto& readback : readbacks_)
      readback = std::make_unique<cuda::HostReadback>(device_.index, sizeof(double));
}

std::uint64_t LossReadback::start(const Tensor& loss) {
  KILN_CHECK(loss.numel() == 1 && loss.device() == device_, "LossReadback: expected one element on ",
             device_.str(), ", got ", loss.describe());
  const std::size_t slot = started_ % kSlots;
  if (device_.is_cpu()) {
    cpu_values_[slot] = loss.item();
  } else {
    // In double on the device (one tiny kernel), so the copy back is always 8 bytes. The copy is queued on
    // the default stream behind that kernel; the tensor may be freed once queued, since the caching
    // allocator hands its block only to work queued later on the same stream.
    const Tensor wide = loss.to(DType::Float64);  // one element: its offset is all its layout
    readbacks_[slot]->start(wide.data<double>());
  }
  return started_++;
}

double LossReadback::value(std::uint64_t ticket) const {
  KILN_CHECK(ticket < started_ && started_ - ticket <= kSlots, "LossReadback: ticket ", ticket,
             " is not one of the last ", kSlots, " started (", started_, " so far)");
  const std::size_t slot = ticket % kSlots;
  if (device_.is_cpu()) return cpu_values_[slot];
  return *static_cast<const double*>(readbacks_[slot]->wait());
}

}  // namespace kiln::train
