#include "train/loss_readback.hpp"

#include "core/error.hpp"

namespace kiln::train {

std::uint64_t LossReadback::start(const Tensor& loss) {
  KILN_CHECK(loss.numel() == 1, "LossReadback: expected one element, got ", loss.describe());
  return losses_.start({loss});
}

}  // namespace kiln::train
