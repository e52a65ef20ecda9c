// Tests of the CUDA gradient clipping (kernels/grad_clip/cuda_grad_clip.cu) against the reference, float and
// double: the sum of squares over one tensor and over hundreds of odd sizes (empty ones, single elements,
// chunk edges; more tensors than one launch's table takes), added to what the sum held; the clipping that
// follows (the coefficient is read from the device, not the host); gradients within max_norm, NaN and
// infinite ones left alone, bit for bit; and the same bits on every run. Then optim::clip_grad_norm on
// GPU gradients against the same call on the CPU.
//
// Tolerances: the GPU adds the squares in another order than the reference (blocks, then a tree), a
// difference of double rounding, which the reference's left-to-right sum of 1.4 million terms makes up to
// n * 2^-53 = 1.5e-10 relative (seen: 7e-13): the sums agree to 1e-11. The coefficient inherits that, and
// each clipped value is rounded to T once: float32 atol 1e-7 + rtol 1e-6 (one float rounding apart at worst),
// float64 atol 1e-15 + rtol 1e-12.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "core/ops.hpp"
#include "core/tensor.hpp"
#include "kernels/grad_clip/grad_clip.hpp"
#include "optim/clip.hpp"
#include "tests/support/cuda_testing.hpp"
#include "tests/support/fast_kernel_testing.hpp"
#include "tests/support/matches_reference.hpp"

namespace cuda_grad_clip_cuda_test {

namespace {

using namespace kiln;
using kernels::ClipSlice;
using testing::have_gpu;
using testing::matches_reference;
using testing::random_values;
using testing::to_gpu;
using testing::to_host;
using testing::Tolerance;

template <typename T>
Tolerance tolerance() {
  return std::is_same_v<T, float> ? Tolerance{1e-7, 1e-6} : Tolerance{1e-15, 1e-12};
}

// Sizes of `count` tensors: empty, single elements, either side of a 4096-element chunk, and odd ones.
std::vector<std::int64_t> odd_sizes(int count) {
  const std::vector<std::int64_t> pattern = {4097, 0, 1, 3, 4095, 4096, 17, 250, 9000, 64, 2};
  std::vector<std::int64_t> sizes;
  for (int t = 0; t < count; ++t) sizes.push_back(pattern[static_cast<std::size_t>(t) % pattern.size()]);
  return sizes;
}

// Gradients twice: on the host for the reference, and on the GPU; slices of each.
template <typename T>
struct Gradients {
  std::vector<std::vector<T>> host;
  std::vector<Tensor> gpu;

  Gradients(const std::vector<std::int64_t>& sizes, std::uint64_t seed, float scale) {
    for (const std::int64_t n : sizes) {
      std::vector<T> values = random_values<T>(n, seed++, -scale, scale);
      gpu.push_back(n == 0 ? Tensor() : to_gpu(values));
      host.push_back(std::move(values));
    }
  }
  std::vector<ClipSlice<T>> host_slices() {
    std::vector<ClipSlice<T>> slices;
    for (std::vector<T>& values : host)
      slices.push_back({values.data(), static_cast<std::int64_t>(values.size())});
    return slices;
  }
  std::vector<ClipSlice<T>> gpu_slices() const {
    std::vector<ClipSlice<T>> slices;
    for (const Tensor& tensor : gpu)
      slices.push_back(
          {tensor.defined() ? tensor.data<T>() : nullptr, tensor.defined() ? tensor.numel() : 0});
    return slices;
  }
};

// The GPU's sum of squares, added to `start`, and the reference's.
template <typename T>
std::pair<double, double> sums(Gradients<T>& gradients, double start) {
  const Tensor sum_gpu = to_gpu(std::vector<double>{start});
  kernels::add_sum_of_squares_many<T>(Device::cuda(), gradients.gpu_slices(), sum_gpu.data<double>());
  double expected = start;
  kernels::reference::add_sum_of_squares_many<T>(gradients.host_slices(), &expected);
  return {to_host<double>(sum_gpu)[0], expected};
}

// Clips on both sides with max_norm, from each side's own sum; checks every tensor.
template <typename T>
void check_clip(Gradients<T>& gradients, double max_norm, const Tolerance& tol) {
  const Tensor sum_gpu = to_gpu(std::vector<double>{0.0});
  kernels::add_sum_of_squares_many<T>(Device::cuda(), gradients.gpu_slices(), sum_gpu.data<double>());
  kernels::clip_to_norm_many<T>(Device::cuda(), gradients.gpu_slices(), sum_gpu.data<double>(), max_norm);
  double sum = 0.0;
  kernels::reference::add_sum_of_squares_many<T>(gradients.host_slices(), &sum);
  kernels::reference::clip_to_norm_many<T>(gradients.host_slices(), &sum, max_norm);
  for (std::size_t t = 0; t < gradients.host.size(); ++t) {
    if (!gradients.gpu[t].defined()) continue;
    const std::vector<T> actual = to_host<T>(gradients.gpu[t]);
    const auto report = matches_reference(actual.data(), gradients.host[t].data(),
                                          static_cast<std::int64_t>(actual.size()), tol);
    CHECK_MESSAGE(report.ok, "tensor ", t, " of ", gradients.host.size(), ": ", report.message);
  }
}

template <typename T>
void check_against_reference() {
  for (const int count : {1, 7, 700}) {  // 700: more tensors than one launch's table
    INFO(count, " tensors, ", std::is_same_v<T, float> ? "float" : "double");
    Gradients<T> gradients(odd_sizes(count), 100 + static_cast<std::uint64_t>(count), 1.0f);
    const auto [actual, expected] = sums(gradients, 0.25);  // added to what the sum held
    CHECK(actual == doctest::Approx(expected).epsilon(1e-11));
    const auto [again, unused] = sums(gradients, 0.25);
    CHECK(again == actual);                                            // deterministic: the same bits
    check_clip(gradients, 0.5 * std::sqrt(expected), tolerance<T>());  // clips: a coefficient of about 0.5
  }
}

TEST_CASE("cuda: grad clip sums of squares and clipping match the reference (float)") {
  if (!have_gpu()) return;
  check_against_reference<float>();
}

TEST_CASE("cuda: grad clip sums of squares and clipping match the reference (double)") {
  if (!have_gpu()) return;
  check_against_reference<double>();
}

// Within max_norm, or a NaN or an infinity anywhere: not one bit changes.
TEST_CASE("cuda: grad clip leaves gradients within max_norm, and non-finite ones, untouched") {
  if (!have_gpu()) return;
  for (const double poison :
       {0.0, std::numeric_limits<double>::quiet_NaN(), std::numeric_limits<double>::infinity()}) {
    INFO("poison ", poison);
    Gradients<float> gradients(odd_sizes(30), 7, 1.0f);
    if (poison != 0.0) {
      gradients.host[0][4000] = static_cast<float>(poison);  // tensor 0 holds 4097 elements
      gradients.gpu[0] = to_gpu(gradients.host[0]);
    }
    const std::vector<std::vector<float>> before = gradients.host;
    double sum = 0.0;
    kernels::reference::add_sum_of_squares_many<float>(gradients.host_slices(), &sum);
    // A max_norm far below the norm would clip finite gradients; one just above it must not.
    const double max_norm = poison == 0.0 ? std::sqrt(sum) + 1e-3 : 1e-3;
    check_clip(gradients, max_norm, Tolerance{0.0, 0.0});
    for (std::size_t t = 0; t < before.size(); ++t) {
      if (gradients.gpu[t].defined())
        CHECK(testing::first_difference(to_host<float>(gradients.gpu[t]), before[t]) == "");
    }
  }
}

// optim::clip_grad_norm with its gradients on the GPU: the same norm and the same clipped gradients as on
// the CPU, float32 and float64 gradients in one call.
TEST_CASE("cuda: clip_grad_norm on GPU gradients agrees with the CPU") {
  if (!have_gpu()) return;
  std::vector<Tensor> cpu_parameters, gpu_parameters;
  std::uint64_t seed = 40;
  for (const std::int64_t n : odd_sizes(25)) {
    for (const DType dtype : {DType::Float32, DType::Float64}) {
      const Tensor grad = Tensor::rand({n}, dtype, nullptr, -1.0, 1.0) * static_cast<double>(seed++ % 3);
      Tensor cpu = Tensor::zeros({n}, dtype).set_requires_grad();
      Tensor gpu = Tensor::zeros({n}, dtype, Device::cuda()).set_requires_grad();
      cpu.set_grad(grad);
      gpu.set_grad(grad.to(Device::cuda()));
      cpu_parameters.push_back(cpu);
      gpu_parameters.push_back(gpu);
    }
  }
  const Tensor cpu_norm = optim::clip_grad_norm(cpu_parameters, 1.0);
  const Tensor gpu_norm = optim::clip_grad_norm(gpu_parameters, 1.0);
  CHECK(gpu_norm.device() == Device::cuda());
  CHECK(gpu_norm.item() == doctest::Approx(cpu_norm.item()).epsilon(1e-11));
  CHECK(cpu_norm.item() > 1.0);  // so both clipped
  for (std::size_t p = 0; p < cpu_parameters.size(); ++p) {
    const std::vector<double> expected = cpu_parameters[p].grad().to_vector<double>();
    const std::vector<double> actual = gpu_parameters[p].grad().to_vector<double>();
    const auto report = matches_reference(actual.data(), expected.data(),
                                          static_cast<std::int64_t>(actual.size()), Tolerance{1e-7, 1e-6});
    CHECK_MESSAGE(report.ok, "parameter ", p, ": ", report.message);
  }
}

}  // namespace

}  // namespace cuda_grad_clip_cuda_test
