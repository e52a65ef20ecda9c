// cuda_testing: what a CUDA kernel test needs besides matches_reference: the check that skips (with a
// MESSAGE saying why, never a failure) where there is no GPU, and host vectors carried to the device and
// back through Tensor, so a test hands kernels device pointers without touching the CUDA runtime itself.
// A GPU case's name starts with "cuda:": that is how scripts/device-check.sh finds the cases to run there.
//
//   TEST_CASE("cuda: relu matches the reference") {
//     if (!testing::have_gpu()) return;
//     const std::vector<float> x = random_floats(n, /*seed=*/1);
//     const Tensor x_gpu = testing::to_gpu(x), y_gpu = testing::empty_gpu<float>(n);
//     kernels::unary_forward(Device::cuda(), UnaryOp::Relu, {}, n, x_gpu.data<float>(), y_gpu.data<float>());
//     std::vector<float> expected(n);
//     kernels::reference::unary_forward(UnaryOp::Relu, {}, n, x.data(), expected.data());
//     const auto report = matches_reference(testing::to_host<float>(y_gpu).data(), expected.data(), n,
//                                           Tolerance::float32());
//     CHECK_MESSAGE(report.ok, report.message);
//   }
#pragma once

#include <doctest/doctest.h>

#include <cstdint>
#include <limits>
#include <string>
#include <type_traits>
#include <vector>

#include "core/cuda_runtime.hpp"
#include "core/tensor.hpp"
#include "kernels/conv2d/cuda_tuning.hpp"
#include "kernels/cuda_grid.hpp"

namespace kiln::testing {

// The threads one grid-stride pass of a launch covers (kernels/cuda_grid.hpp): 16,776,960 on a GPU, 16,384
// on the CPU emulator, whose grids are capped low so that its launches go around their loops too.
inline constexpr std::int64_t kOneGridPass = kernels::cuda::kMaxGridBlocks * kernels::cuda::kThreadsPerBlock;

// The side of `planes` square planes that together hold more elements than one grid pass covers: 2 past
// the largest side that does not (one plane: 4097 on a GPU, 130 emulated), so that a kernel with a thread
// per element takes some of them on a second turn of its grid-stride loop.
constexpr std::int64_t side_past_one_grid_pass(std::int64_t planes = 1) {
  std::int64_t side = 1;
  while ((side + 1) * (side + 1) * planes <= kOneGridPass) ++side;
  return side + 2;
}

// Sets the CUDA convolutions' policy (kernels/conv2d/cuda_tuning.hpp) while alive, and puts back the one
// before, even when the test fails.
class ConvPolicyGuard {
 public:
  explicit ConvPolicyGuard(kernels::cuda::ConvPolicy policy) : previous_(kernels::cuda::conv_policy()) {
    kernels::cuda::set_conv_policy(policy);
  }
  ~ConvPolicyGuard() { kernels::cuda::set_conv_policy(previous_); }
  ConvPolicyGuard(const ConvPolicyGuard&) = delete;
  ConvPolicyGuard& operator=(const ConvPolicyGuard&) = delete;

 private:
  kernels::cuda::ConvPolicy previous_;
};

// True when a test may use cuda:0; otherwise reports why the test skips.
inline bool have_gpu() {
  if (cuda::device_count() > 0) return true;
  const std::string why = cuda::built_with_cuda() ? "the driver sees no GPU" : "kiln was built without CUDA";
  const std::string message = "skipping: no CUDA device (" + why + ")";  // MESSAGE takes one operand
  MESSAGE(message);
  return false;
}

// A 1-d tensor on cuda:0 holding `values` (float, double, bfloat16, int64 or uint8); its data<T>() is a
// device pointer.
template <typename T>
Tensor to_gpu(const std::vector<T>& values) {
  return Tensor::from_vector(values, Shape{static_cast<std::int64_t>(values.size())}).to(Device::cuda());
}

// count elements on cuda:0 for a kernel to write, filled with a poison value (NaN for floating types,
// bfloat16 included; -777 for int64) so an element the kernel forgets to write shows up in the comparison.
template <typename T>
Tensor empty_gpu(std::int64_t count) {
  const double poison = std::is_floating_point_v<T> || std::is_same_v<T, bfloat16>
                            ? std::numeric_limits<double>::quiet_NaN()
                            : -777.0;
  return Tensor::full(Shape{count}, poison, dtype_of_v<T>, Device::cuda());
}

// The elements of a device tensor, copied to the host (waits for the kernels that write it).
template <typename T>
std::vector<T> to_host(const Tensor& device_tensor) {
  return device_tensor.to(Device::cpu()).to_vector<T>();
}

// The device pointer to a float or bfloat16 tensor's elements, for kernels that take untyped operands (the
// kernel ladders' tables).
inline const void* device_pointer(const Tensor& tensor) {
  return tensor.dtype() == DType::BFloat16 ? static_cast<const void*>(tensor.data<bfloat16>())
                                           : static_cast<const void*>(tensor.data<float>());
}

}  // namespace kiln::testing
