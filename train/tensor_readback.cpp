#include "train/tensor_readback.hpp"

#include <cstring>
#include <utility>

#include "core/error.hpp"
#include "train/packing.hpp"

namespace kiln::train {

TensorReadback::TensorReadback(Device device) : device_(device) {
  if (device_.is_cuda())
    for (Slot& slot : slots_) slot.copies = std::make_unique<cuda::HostReadback>(device_.index);
}

std::uint64_t TensorReadback::start(const std::vector<Tensor>& tensors) {
  for (const Tensor& tensor : tensors) {
    KILN_CHECK(tensor.defined() && tensor.device() == device_, "TensorReadback: expected tensors on ",
               device_.str(), ", got ",
               tensor.defined() ? tensor.describe() + " on " + tensor.device().str()
                                : std::string("an undefined tensor"));
  }
  Slot& slot = slots_[started_ % kSlots];
  if (device_.is_cpu()) {
    slot.snapshots.clear();
    for (const Tensor& tensor : tensors) slot.snapshots.push_back(tensor.detach().clone());
    return started_++;
  }
  // The dense copies are queued on the compute stream behind the kernels that make them, and the copies
  // back behind those; a temporary may be freed once queued, since the caching allocator hands its block
  // only to work queued later on the same stream.
  std::vector<cuda::HostReadback::Piece> pieces;
  slot.landings.clear();
  std::size_t offset = 0;
  for (const Tensor& tensor : tensors) {
    const Tensor dense = tensor.contiguous();
    pieces.push_back({.device_source = dense.data_ptr(), .bytes = dense.nbytes(), .landing_offset = offset});
    slot.landings.push_back({dense.shape(), dense.dtype(), offset});
    offset += packed_size(dense.nbytes());
  }
  slot.copies->start(pieces);
  return started_++;
}

std::vector<Tensor> TensorReadback::read(std::uint64_t ticket) const {
  KILN_CHECK(ticket < started_ && started_ - ticket <= kSlots, "TensorReadback: ticket ", ticket,
             " is not one of the last ", kSlots, " started (", started_, " so far)");
  const Slot& slot = slots_[ticket % kSlots];
  if (device_.is_cpu()) return slot.snapshots;
  const auto* landed = static_cast<const char*>(slot.copies->wait());
  std::vector<Tensor> host;
  for (const Landing& landing : slot.landings) {
    Tensor copy = Tensor::empty(landing.shape, landing.dtype);
    if (copy.numel() > 0)
      std::memcpy(copy.data_ptr(), landed + landing.offset, copy.nbytes());  // else no data
    host.push_back(std::move(copy));
  }
  return host;
}

}  // namespace kiln::train
