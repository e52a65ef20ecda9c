// LossReadback (train/loss_readback.hpp): the value a ticket stands for is the loss started with it, on the
// CPU and on a GPU (where it arrives behind the work, a step late), float32 and float64 alike; a ticket
// older than the last two is refused, naming it.
#include "train/loss_readback.hpp"

#include <doctest/doctest.h>

#include <cstdint>

#include "core/error.hpp"
#include "core/ops.hpp"
#include "tests/support/cuda_testing.hpp"

namespace train_loss_readback_test {

using namespace kiln;

namespace {

// Starts the losses 0.5, 1.5, 2.5, ... as the training loop does, each read back one start later.
void check_one_step_late(Device device, DType dtype) {
  train::LossReadback losses(device);
  std::uint64_t previous = 0;
  for (int step = 0; step < 5; ++step) {
    INFO(device.str(), " ", dtype_name(dtype), ", step ", step);
    // The loss computed on the device from a tensor, as a forward pass would leave it.
    const Tensor loss = sum(Tensor::full({4}, 0.125 + 0.25 * step, dtype, device));
    const std::uint64_t ticket = losses.start(loss);
    CHECK(ticket == static_cast<std::uint64_t>(step));
    if (step > 0) CHECK(losses.value(previous) == 0.5 + (step - 1));
    CHECK(losses.value(ticket) == 0.5 + step);
    previous = ticket;
  }
  CHECK_THROWS_WITH_AS(losses.value(2), doctest::Contains("ticket 2 is not one of the last 2"), Error);
  CHECK_THROWS_WITH_AS(losses.start(Tensor::zeros({2}, dtype, device)), doctest::Contains("one element"),
                       Error);
}

TEST_CASE("loss readback: on the CPU each ticket reads its own loss") {
  for (const DType dtype : {DType::Float32, DType::Float64}) check_one_step_late(Device::cpu(), dtype);
}

TEST_CASE("cuda: loss readback brings each step's loss from the device, a step late") {
  if (!testing::have_gpu()) return;
  for (const DType dtype : {DType::Float32, DType::Float64}) check_one_step_late(Device::cuda(), dtype);
}

}  // namespace

}  // namespace train_loss_readback_test
