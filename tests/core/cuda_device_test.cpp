// The CUDA device plumbing (core/cuda_runtime.hpp, the CUDA allocator behind Storage, Tensor::to, the
// CUDA fill kernel). Without a GPU (or without CUDA in the build) the tests that need one say so and
// skip; what must hold everywhere is checked everywhere: device_count never throws, and asking for device
// memory without a device is a kiln::Error that names CUDA, never a crash.
#include <doctest/doctest.h>

#include <cstring>
#include <string>

#include "core/caching_allocator.hpp"
#include "core/cuda_graph.hpp"
#include "core/cuda_runtime.hpp"
#include "core/error.hpp"
#include "core/generator.hpp"
#include "core/ops.hpp"
#include "core/profiler.hpp"
#include "core/tensor.hpp"
#include "kernels/softmax/softmax.hpp"
#include "tests/support/cuda_testing.hpp"
#include "tests/support/fast_kernel_testing.hpp"

namespace core_cuda_device_test {

namespace {

using namespace kiln;

using testing::have_gpu;

TEST_CASE("cuda: the device count never throws, and is 0 in a build without CUDA") {
  int count = -1;
  CHECK_NOTHROW(count = cuda::device_count());
  CHECK(count >= 0);
  if (!cuda::built_with_cuda()) CHECK(count == 0);
}

TEST_CASE("cuda: without a device, device memory is an error naming CUDA") {
  if (cuda::device_count() > 0) {
    MESSAGE("skipping: this machine has a CUDA device");
    return;
  }
  CHECK_THROWS_WITH_AS(Tensor::empty({4}, DType::Float32, Device::cuda()), doctest::Contains("CUDA"), Error);
  CHECK_THROWS_WITH_AS(Tensor::zeros({4}).to(Device::cuda()), doctest::Contains("CUDA"), Error);
}

TEST_CASE("cuda: a build without CUDA refuses a CUDA device in dispatch, naming the op") {
  if (cuda::built_with_cuda()) {
    MESSAGE("skipping: this build has the CUDA kernels");
    return;
  }
  const float x[1] = {0.0f};
  float y[1];
  CHECK_THROWS_WITH_AS(kernels::softmax_forward(Device::cuda(), kernels::SoftmaxGeometry{1, 1, 1}, x, y),
                       doctest::Contains("softmax_forward"), Error);
}

TEST_CASE("cuda: a tensor goes to the device and back unchanged") {
  if (!have_gpu()) return;
  MESSAGE("on ", cuda::device_description(0));
  Generator generator(3);
  for (const Shape& shape : {Shape{}, Shape{1}, Shape{3, 5, 7}, Shape{1000003}}) {
    const Tensor host = Tensor::randn(shape, DType::Float32, &generator);
    const Tensor device = host.to(Device::cuda());
    CHECK(device.device() == Device::cuda());
    CHECK(device.shape() == shape);
    const Tensor back = device.to(Device::cpu());
    CHECK(testing::bitwise_equal(back.to_vector<float>(), host.to_vector<float>()));
  }
  // A strided host view arrives dense.
  const Tensor matrix = Tensor::randn({4, 6}, DType::Float32, &generator);
  const Tensor transposed = matrix.transpose(0, 1);
  CHECK(testing::bitwise_equal(transposed.to(Device::cuda()).to(Device::cpu()).to_vector<float>(),
                               transposed.contiguous().to_vector<float>()));
}

TEST_CASE("cuda: fill on the device, every dtype, sizes around the block size") {
  if (!have_gpu()) return;
  for (const std::int64_t n :
       {std::int64_t{0}, std::int64_t{1}, std::int64_t{255}, std::int64_t{257}, std::int64_t{5000001}}) {
    INFO("n = ", n);
    CHECK(testing::bitwise_equal(
        Tensor::full({n}, 2.5, DType::Float32, Device::cuda()).to(Device::cpu()).to_vector<float>(),
        std::vector<float>(static_cast<std::size_t>(n), 2.5f)));
    CHECK(Tensor::full({n}, -3.0, DType::Float64, Device::cuda()).to(Device::cpu()).to_vector<double>() ==
          std::vector<double>(static_cast<std::size_t>(n), -3.0));
    CHECK(Tensor::full({n}, 7.0, DType::Int64, Device::cuda()).to(Device::cpu()).to_vector<std::int64_t>() ==
          std::vector<std::int64_t>(static_cast<std::size_t>(n), 7));
  }
  CHECK_NOTHROW(cuda::synchronize(0));
}

TEST_CASE("cuda: the device allocator caches freed blocks of every size and reports the peak") {
  if (!have_gpu()) return;
  CachingAllocator& allocator = cuda_caching_allocator(0);
  { const Tensor warm = Tensor::empty({1 << 20}, DType::Float32, Device::cuda()); }
  const auto before = allocator.stats();
  for (int i = 0; i < 10; ++i) {
    const Tensor again = Tensor::empty({1 << 20}, DType::Float32, Device::cuda());
  }
  const auto after = allocator.stats();
  CHECK(after.backing_allocations == before.backing_allocations);  // every block came from the cache
  CHECK(after.peak_in_use_bytes >= (std::size_t{1} << 22));

  // Small blocks too (a bias, a label batch): cudaFree would synchronize the device at each.
  { const Tensor warm_small = Tensor::empty({10}, DType::Float32, Device::cuda()); }
  const auto before_small = allocator.stats();
  for (int i = 0; i < 10; ++i) {
    const Tensor small = Tensor::empty({10}, DType::Float32, Device::cuda());
    CHECK(allocator.stats().in_use_bytes == before_small.in_use_bytes + CachingAllocator::kSmallGranule);
  }
  CHECK(allocator.stats().backing_allocations == before_small.backing_allocations);
}

TEST_CASE(
    "cuda: a CopyStream's copies reach the kernels ordered after them, and its pinned source is free "
    "to refill once waited for") {
  if (!have_gpu()) return;
  // The emulated runtime runs copy-stream work only when something waits for it: without the order a kernel
  // there reads the destination's 0xff bytes (NaN), and a refill before the wait is what the copy takes.
  constexpr std::int64_t n = 1000;
  const std::size_t bytes = n * sizeof(float);
  cuda::CopyStream copies(0);
  cuda::PinnedBuffer staging(bytes);
  auto* pinned = static_cast<float*>(staging.data());
  for (int round = 1; round <= 3; ++round) {
    INFO("round ", round);
    for (std::int64_t i = 0; i < n; ++i) pinned[i] = static_cast<float>(round * 1000 + i);
    const std::vector<float> sent(pinned, pinned + n);
    copies.wait_for_kernels();
    const Tensor arrived = Tensor::empty({n}, DType::Float32, Device::cuda());
    copies.copy_to_device(arrived.impl().storage->data(), pinned, bytes);
    copies.order_before_kernels();
    const Tensor doubled = arrived * 2.0;  // a kernel on the default stream
    copies.wait_for_copies();              // before the host writes the pinned buffer again
    std::vector<float> expected(sent);
    for (float& value : expected) value *= 2.0f;
    CHECK(testing::bitwise_equal(doubled.to(Device::cpu()).to_vector<float>(), expected));
  }
}

TEST_CASE("cuda: the profiler times a device op between its stream's events, and nothing inside a capture") {
  if (!have_gpu()) return;
  const Tensor x = Tensor::from_vector<float>({-1.0f, 2.0f, -3.0f, 4.0f}, {4}).to(Device::cuda());
  Tensor y, captured;
  profiler::Session session(Device::cuda());
  y = relu(x);
  const CudaGraph graph(0, [&] { captured = relu(x); });  // recorded, not run: no row of its own
  graph.launch();
  const profiler::Profile profile = session.finish();
  REQUIRE(profile.ops.size() == 1);
  const profiler::OpTime& row = profile.ops.front();
  CHECK(row.op == "unary_forward");
  CHECK(row.detail == "relu");
  CHECK(row.device == Device::cuda(0));
  CHECK(row.dtype == DType::Float32);
  CHECK(row.calls == 1);
  CHECK(row.milliseconds >= 0.0);
  CHECK(row.milliseconds <= profile.wall_milliseconds);
  CHECK(y.to(Device::cpu()).to_vector<float>() == std::vector<float>{0.0f, 2.0f, 0.0f, 4.0f});
  CHECK(captured.to(Device::cpu()).to_vector<float>() == std::vector<float>{0.0f, 2.0f, 0.0f, 4.0f});
}

}  // namespace

}  // namespace core_cuda_device_test
