// cross_entropy's reductions (core/ops.hpp), worked by hand: the weighted mean divides the weighted sum by
// the total weight of the samples' labels, as PyTorch's does, not by N; on a GPU it agrees with the CPU,
// and a label outside the classes makes the loss NaN there (the labels are not read back) where the CPU
// names it.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "core/error.hpp"
#include "core/ops.hpp"
#include "tests/support/cuda_testing.hpp"

namespace core_cross_entropy_test {

using namespace kiln;

namespace {

// Three samples of two classes; class weights 2 and 0.5.
struct Case {
  Tensor logits = Tensor::from_vector<float>({0.0F, 0.0F, 1.0F, 3.0F, -1.0F, 0.5F}, {3, 2});
  Tensor labels = Tensor::from_vector<std::int64_t>({0, 1, 1}, {3});
  Tensor weights = Tensor::from_vector<float>({2.0F, 0.5F}, {2});

  // -log softmax(logits)[n, labels[n]], by hand.
  static std::vector<double> negative_log_likelihoods() {
    const auto nll = [](double target, double other) {
      return std::log(std::exp(target) + std::exp(other)) - target;
    };
    return {nll(0.0, 0.0), nll(3.0, 1.0), nll(0.5, -1.0)};
  }
};

void check_weighted_reductions(Device device) {
  INFO(device.str());
  const Case c;
  const Tensor logits = c.logits.to(device), labels = c.labels.to(device), weights = c.weights.to(device);
  const std::vector<double> nll = Case::negative_log_likelihoods();
  const double weighted_sum = 2.0 * nll[0] + 0.5 * nll[1] + 0.5 * nll[2];
  CHECK(cross_entropy(logits, labels, weights, {.reduction = Reduction::Sum}).item() ==
        doctest::Approx(weighted_sum).epsilon(1e-6));
  CHECK(cross_entropy(logits, labels, weights).item() == doctest::Approx(weighted_sum / 3.0).epsilon(1e-6));
  CHECK(cross_entropy(logits, labels).item() ==
        doctest::Approx((nll[0] + nll[1] + nll[2]) / 3.0).epsilon(1e-6));
  const std::vector<double> per_sample =
      cross_entropy(logits, labels, weights, {.reduction = Reduction::None}).to_vector<double>();
  CHECK(per_sample[0] == doctest::Approx(2.0 * nll[0]).epsilon(1e-6));
  CHECK(per_sample[1] == doctest::Approx(0.5 * nll[1]).epsilon(1e-6));
}

}  // namespace

TEST_CASE("cross_entropy: the weighted mean divides by the total weight of the labels") {
  check_weighted_reductions(Device::cpu());
  const Case c;
  CHECK_THROWS_WITH_AS(cross_entropy(c.logits, Tensor::from_vector<std::int64_t>({0, 2, 1}, {3}), c.weights),
                       doctest::Contains("cross_entropy: label 2 is outside [0, 2)"), Error);
}

TEST_CASE("cuda: cross_entropy's weighted mean on the GPU, and a bad label's NaN") {
  if (!testing::have_gpu()) return;
  check_weighted_reductions(Device::cuda());
  const Case c;
  const Tensor bad_labels = Tensor::from_vector<std::int64_t>({0, 2, 1}, {3}).to(Device::cuda());
  CHECK(std::isnan(
      cross_entropy(c.logits.to(Device::cuda()), bad_labels, c.weights.to(Device::cuda())).item()));
}

}  // namespace core_cross_entropy_test
