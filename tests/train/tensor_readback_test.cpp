// TensorReadback (train/tensor_readback.hpp): a ticket reads back the tensors started with it, as they were
// when started (later writes do not reach them), with their shapes and dtypes, whatever their layout; a
// start bigger than the last grows the landing buffer; a ticket older than the last two is refused. On the
// CPU and on a GPU, where the copies arrive behind the work.
#include "train/tensor_readback.hpp"

#include <doctest/doctest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "core/ops.hpp"
#include "tests/support/cuda_testing.hpp"

namespace train_tensor_readback_test {

using namespace kiln;

namespace {

// Batches of growing size, as an evaluation would start them: float logits [rows, 3] computed on the
// device, their int64 argmax, a float64 sum, and a transposed (non-dense) view.
void check_reads_what_was_started(Device device) {
  train::TensorReadback readback(device);
  std::vector<float> previous_logits;
  std::uint64_t previous = 0;
  for (int step = 0; step < 5; ++step) {
    INFO(device.str(), ", step ", step);
    const std::int64_t rows = 1 + 2 * step;  // every start needs more room than the last
    std::vector<float> values(static_cast<std::size_t>(rows * 3));
    for (std::size_t i = 0; i < values.size(); ++i) values[i] = 0.5F * static_cast<float>(i) - float(step);
    Tensor logits = Tensor::from_vector(values, {rows, 3}).to(device) * 2.0;  // a kernel's output
    const Tensor labels = argmax(logits, 1);
    const Tensor total = sum(logits.to(DType::Float64));
    const std::uint64_t ticket = readback.start({logits, labels, total, logits.transpose(0, 1)});
    CHECK(ticket == static_cast<std::uint64_t>(step));
    logits.fill_(-1.0);  // queued after the copies: it must not reach them

    if (step > 0) {
      const std::vector<Tensor> late = readback.read(previous);
      CHECK(late[0].to_vector<float>() == previous_logits);
    }
    const std::vector<Tensor> host = readback.read(ticket);
    REQUIRE(host.size() == 4);
    std::vector<float> doubled = values;
    for (float& v : doubled) v *= 2.0F;
    for (const Tensor& tensor : host) CHECK(tensor.device() == Device::cpu());
    CHECK(host[0].shape() == Shape({rows, 3}));
    CHECK(host[0].dtype() == DType::Float32);
    CHECK(host[0].to_vector<float>() == doubled);
    CHECK(host[1].dtype() == DType::Int64);
    CHECK(host[1].to_vector<std::int64_t>() == std::vector<std::int64_t>(static_cast<std::size_t>(rows), 2));
    CHECK(host[2].dtype() == DType::Float64);
    CHECK(host[2].item() == doctest::Approx(sum(Tensor::from_vector(doubled, {rows, 3})).item()));
    CHECK(host[3].shape() == Shape({3, rows}));
    CHECK(host[3].to_vector<float>() ==
          Tensor::from_vector(doubled, {rows, 3}).transpose(0, 1).to_vector<float>());
    previous = ticket;
    previous_logits = doubled;
  }
  CHECK_THROWS_WITH_AS(readback.read(2), doctest::Contains("ticket 2 is not one of the last 2"), Error);
  CHECK_THROWS_WITH_AS(readback.read(5), doctest::Contains("ticket 5 is not one of the last 2"), Error);
  const std::string undefined = "expected tensors on " + device.str() + ", got an undefined tensor";
  CHECK_THROWS_WITH_AS(readback.start({Tensor()}), doctest::Contains(undefined.c_str()), Error);
  if (device.is_cuda()) {
    CHECK_THROWS_WITH_AS(readback.start({Tensor::zeros({2})}), doctest::Contains("got float32[2] on cpu"),
                         Error);
  }
}

TEST_CASE("tensor readback: on the CPU each ticket reads its own tensors, as they were") {
  check_reads_what_was_started(Device::cpu());
}

TEST_CASE("cuda: tensor readback brings a batch's tensors from the device, as they were, a batch late") {
  if (!testing::have_gpu()) return;
  check_reads_what_was_started(Device::cuda());
}

}  // namespace

}  // namespace train_tensor_readback_test
