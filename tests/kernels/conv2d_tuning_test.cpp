// The CPU-side parts of the CUDA convolution tuning (kernels/conv2d/cuda_tuning.hpp), which every build has:
//   - the agreement rule a ladder step must meet before it may serve a shape: two correct convolutions,
//   summed
//     in different orders, always meet it (float, and bfloat16 rounded once each, a long backward-weight sum
//     that cancels as gradients behind a batchnorm do); a swapped pair of outputs, a NaN, or an output that
//     is off by one term does not;
//   - the record of choices: found again by shape, direction, element type and device, forgotten on demand;
//   - the policy switch.
// Two correct results here are the CPU's fast float kernels (dispatch) and the reference rounded to float:
// different summation orders, as cuBLAS and a ladder step are.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <vector>

#include "core/bfloat16.hpp"
#include "core/device.hpp"
#include "kernels/conv2d/algorithm.hpp"
#include "kernels/conv2d/conv2d.hpp"
#include "kernels/conv2d/cuda_tuning.hpp"
#include "tests/support/fast_kernel_testing.hpp"

namespace kernels_conv2d_tuning_test {

namespace {

using namespace kiln;
using kernels::Conv2dDirection;
using kernels::Conv2dGeometry;
namespace cuda = kernels::cuda;

Conv2dGeometry geometry(std::int64_t n, std::int64_t c, std::int64_t hw, std::int64_t k, std::int64_t r,
                        std::int64_t stride, std::int64_t pad, std::int64_t groups = 1) {
  return {.batch = n,
          .in_channels = c,
          .in_height = hw,
          .in_width = hw,
          .out_channels = k,
          .kernel_h = r,
          .kernel_w = r,
          .stride_h = stride,
          .stride_w = stride,
          .pad_h = pad,
          .pad_w = pad,
          .groups = groups};
}

template <typename T>
std::vector<double> widened(const std::vector<T>& values) {
  return std::vector<double>(values.begin(), values.end());
}
std::vector<double> absolute(std::vector<double> values) {
  for (double& v : values) v = std::fabs(v);
  return values;
}

std::int64_t x_count(const Conv2dGeometry& g) { return g.batch * g.in_channels * g.in_height * g.in_width; }
std::int64_t w_count(const Conv2dGeometry& g) {
  return g.out_channels * g.in_channels_per_group() * g.kernel_h * g.kernel_w;
}
std::int64_t y_count(const Conv2dGeometry& g) {
  return g.batch * g.out_channels * g.out_height() * g.out_width();
}

// Two correct weight gradients of one convolution (the fast CPU kernels and the reference, each summing
// N*OH*OW products in its own order), and the magnitude sum |gy| |x| each is judged against.
struct TwoResults {
  std::vector<double> library, candidate, magnitude;
};
TwoResults two_weight_gradients(const Conv2dGeometry& g, const std::vector<float>& gy,
                                const std::vector<float>& x) {
  std::vector<float> fast(static_cast<std::size_t>(w_count(g))), oracle(fast.size());
  kernels::conv2d_backward_weight<float>(Device::cpu(), g, gy.data(), x.data(), fast.data());
  kernels::reference::conv2d_backward_weight<float>(g, gy.data(), x.data(), oracle.data());
  std::vector<double> magnitude(fast.size());
  const std::vector<double> gy_abs = absolute(widened(gy)), x_abs = absolute(widened(x));
  kernels::reference::conv2d_backward_weight<double>(g, gy_abs.data(), x_abs.data(), magnitude.data());
  return {widened(fast), widened(oracle), magnitude};
}

TEST_CASE(
    "conv2d tuning: two correct float forwards agree; a swapped pair, a NaN or one term too many do not") {
  testing::DispatchGuard guard;
  for (const Conv2dGeometry& g : {geometry(2, 16, 9, 24, 3, 1, 1), geometry(3, 5, 11, 7, 3, 2, 1),
                                  geometry(1, 12, 6, 20, 1, 1, 0), geometry(2, 8, 8, 12, 3, 1, 1, 4)}) {
    INFO("C=", g.in_channels, " K=", g.out_channels, " groups=", g.groups);
    const std::vector<float> x = testing::random_floats(x_count(g), 11),
                             w = testing::random_floats(w_count(g), 12);
    std::vector<float> fast(static_cast<std::size_t>(y_count(g))), oracle(fast.size());
    kernels::conv2d_forward<float>(Device::cpu(), g, x.data(), w.data(), nullptr, fast.data());
    kernels::reference::conv2d_forward<float>(g, x.data(), w.data(), nullptr, oracle.data());
    std::vector<double> magnitude(fast.size());
    const std::vector<double> x_abs = absolute(widened(x)), w_abs = absolute(widened(w));
    kernels::reference::conv2d_forward<double>(g, x_abs.data(), w_abs.data(), nullptr, magnitude.data());
    const auto tolerance = cuda::agreement_tolerance(cuda::reduction_terms(g, Conv2dDirection::Forward),
                                                     /*bfloat16_output=*/false);

    CHECK(cuda::first_disagreement(widened(fast), widened(oracle), magnitude, tolerance) == -1);

    // Element 1 read from element 0's place: an indexing error.
    std::vector<double> swapped = widened(oracle);
    std::swap(swapped[0], swapped[1]);
    CHECK(cuda::first_disagreement(widened(fast), swapped, magnitude, tolerance) == 0);

    std::vector<double> with_nan = widened(oracle);
    with_nan[5] = std::numeric_limits<double>::quiet_NaN();
    CHECK(cuda::first_disagreement(widened(fast), with_nan, magnitude, tolerance) == 5);

    // One product too many in the last element, |x| |w| of a typical size: a tap read twice.
    std::vector<double> extra_term = widened(oracle);
    extra_term.back() += 0.25;
    CHECK(cuda::first_disagreement(widened(fast), extra_term, magnitude, tolerance) ==
          static_cast<std::int64_t>(extra_term.size() - 1));
  }
}

TEST_CASE(
    "conv2d tuning: a long weight-gradient sum that cancels (gy summing to zero per channel) still agrees") {
  testing::DispatchGuard guard;
  const Conv2dGeometry g = geometry(16, 16, 16, 16, 3, 1, 1);  // N*OH*OW = 4096 terms per element
  std::vector<float> gy = testing::random_floats(y_count(g), 21);
  const std::int64_t plane = g.out_height() * g.out_width();
  for (std::int64_t k = 0; k < g.out_channels; ++k) {  // the batchnorm backward's mean removal
    double sum = 0;
    for (std::int64_t n = 0; n < g.batch; ++n)
      for (std::int64_t p = 0; p < plane; ++p)
        sum += gy[static_cast<std::size_t>((n * g.out_channels + k) * plane + p)];
    const float mean = static_cast<float>(sum / static_cast<double>(g.batch * plane));
    for (std::int64_t n = 0; n < g.batch; ++n)
      for (std::int64_t p = 0; p < plane; ++p)
        gy[static_cast<std::size_t>((n * g.out_channels + k) * plane + p)] -= mean;
  }
  const std::vector<float> x = testing::random_floats(x_count(g), 22, 0.0f, 2.0f);  // after a ReLU: positive
  const TwoResults r = two_weight_gradients(g, gy, x);
  const auto tolerance =
      cuda::agreement_tolerance(cuda::reduction_terms(g, Conv2dDirection::BackwardWeight), false);
  CHECK(cuda::first_disagreement(r.library, r.candidate, r.magnitude, tolerance) == -1);

  // The same gradient from a batch with its last image dropped (a lost tile of the split sum) does not.
  Conv2dGeometry fewer = g;
  fewer.batch = g.batch - 1;
  const std::vector<float> gy_fewer(gy.begin(), gy.begin() + y_count(fewer));
  const std::vector<float> x_fewer(x.begin(), x.begin() + x_count(fewer));
  const TwoResults lost = two_weight_gradients(fewer, gy_fewer, x_fewer);
  CHECK(cuda::first_disagreement(r.library, lost.candidate, r.magnitude, tolerance) >= 0);
}

TEST_CASE("conv2d tuning: two bfloat16 results, each rounded once from its own float sum, agree") {
  testing::DispatchGuard guard;
  const Conv2dGeometry g = geometry(2, 32, 8, 32, 3, 1, 1);
  std::vector<bfloat16> x, w;
  for (float v : testing::random_floats(x_count(g), 31)) x.push_back(bfloat16(v));
  for (float v : testing::random_floats(w_count(g), 32)) w.push_back(bfloat16(v));
  std::vector<bfloat16> fast(static_cast<std::size_t>(y_count(g))), oracle(fast.size());
  kernels::conv2d_forward<bfloat16>(Device::cpu(), g, x.data(), w.data(), nullptr, fast.data());
  // The float reference's sum rounded to bfloat16: a different order and a rounding of its own.
  const std::vector<float> x_float(x.begin(), x.end()), w_float(w.begin(), w.end());
  std::vector<float> oracle_float(fast.size());
  kernels::reference::conv2d_forward<float>(g, x_float.data(), w_float.data(), nullptr, oracle_float.data());
  for (std::size_t i = 0; i < oracle.size(); ++i) oracle[i] = bfloat16(oracle_float[i]);
  std::vector<double> magnitude(fast.size());
  const std::vector<double> x_abs = absolute(widened(x)), w_abs = absolute(widened(w));
  kernels::reference::conv2d_forward<double>(g, x_abs.data(), w_abs.data(), nullptr, magnitude.data());
  const std::int64_t terms = cuda::reduction_terms(g, Conv2dDirection::Forward);

  CHECK(cuda::first_disagreement(widened(fast), widened(oracle), magnitude,
                                 cuda::agreement_tolerance(terms, true)) == -1);
  // Two bfloat16 roundings apart is more than a float tolerance allows: the output term is what lets them
  // agree.
  CHECK(cuda::first_disagreement(widened(fast), widened(oracle_float), magnitude,
                                 cuda::agreement_tolerance(terms, false)) >= 0);
}

TEST_CASE("conv2d tuning: the reduction length of each direction") {
  const Conv2dGeometry g = geometry(4, 12, 10, 8, 3, 2, 1, 2);  // 6 input and 4 output channels per group
  CHECK(cuda::reduction_terms(g, Conv2dDirection::Forward) == 6 * 9);
  CHECK(cuda::reduction_terms(g, Conv2dDirection::BackwardData) == 4 * 9);
  CHECK(cuda::reduction_terms(g, Conv2dDirection::BackwardWeight) == 4 * 5 * 5);
}

TEST_CASE("conv2d tuning: a choice is recorded once, and found by its shape, direction, element type and device") {
  cuda::forget_conv_choices();
  const Conv2dGeometry g = geometry(8, 16, 32, 16, 3, 1, 1);
  cuda::record_conv_choice(
      {g, Conv2dDirection::Forward, "float", 0, "03_forward_implicit_gemm", nullptr, {}});
  CHECK(cuda::find_conv_choice(g, Conv2dDirection::Forward, "float", 0).found);
  CHECK_FALSE(cuda::find_conv_choice(g, Conv2dDirection::BackwardData, "float", 0).found);
  CHECK_FALSE(cuda::find_conv_choice(g, Conv2dDirection::Forward, "bfloat16", 0).found);
  CHECK_FALSE(cuda::find_conv_choice(g, Conv2dDirection::Forward, "float", 1).found);
  Conv2dGeometry other = g;
  other.batch = 7;
  CHECK_FALSE(cuda::find_conv_choice(other, Conv2dDirection::Forward, "float", 0).found);
  // A second record of the same shape (two threads measuring at once) leaves the first.
  cuda::record_conv_choice({g, Conv2dDirection::Forward, "float", 0, "library", nullptr, {}});
  REQUIRE(cuda::conv_choices().size() == 1);
  CHECK(cuda::conv_choices()[0].chosen == "03_forward_implicit_gemm");
  cuda::forget_conv_choices();
  CHECK(cuda::conv_choices().empty());
  CHECK_FALSE(cuda::find_conv_choice(g, Conv2dDirection::Forward, "float", 0).found);
}

TEST_CASE("conv2d tuning: the policy is measured by default and can be switched") {
  CHECK(cuda::conv_policy() == cuda::ConvPolicy::Measured);
  cuda::set_conv_policy(cuda::ConvPolicy::Library);
  CHECK(cuda::conv_policy() == cuda::ConvPolicy::Library);
  cuda::set_conv_policy(cuda::ConvPolicy::Measured);
  CHECK(cuda::conv_policy() == cuda::ConvPolicy::Measured);
}

}  // namespace

}  // namespace kernels_conv2d_tuning_test
