// Tests of mixup and CutMix (train/batch_mixing.hpp): the Beta draws' distribution, each step's draw, the
// weights and the mixed images, and a training run with them (reproducible, resumable, graph-free on the CPU).
#include "train/batch_mixing.hpp"

#include <doctest/doctest.h>

#include <cmath>
#include <set>
#include <vector>

#include "core/error.hpp"
#include "core/ops.hpp"
#include "data/shuffle.hpp"
#include "tests/support/fast_kernel_testing.hpp"

namespace train_batch_mixing_test {

using kiln::Tensor;
using kiln::train::BatchMixing;
using kiln::train::draw_mixing;
using kiln::train::MixDraw;
using kiln::train::mixing_weight;

TEST_CASE("batch mixing: Beta(alpha, alpha) draws have its mean and variance") {
  for (const double alpha : {0.2, 1.0, 2.0}) {
    CAPTURE(alpha);
    const int count = 4000;
    double total = 0, squares = 0;
    for (int i = 0; i < count; ++i) {
      const double x =
          kiln::train::sample_symmetric_beta(alpha, {17, 5, static_cast<std::uint64_t>(i) * 128});
      CHECK(x >= 0.0);
      CHECK(x <= 1.0);
      total += x;
      squares += x * x;
    }
    const double mean = total / count, variance = squares / count - mean * mean;
    // Beta(a, a): mean 1/2, variance 1 / (4 (2a + 1)); 4000 draws put the sample mean within about 0.01.
    CHECK(mean == doctest::Approx(0.5).epsilon(0.06));
    CHECK(variance == doctest::Approx(1.0 / (4.0 * (2.0 * alpha + 1.0))).epsilon(0.1));
  }
  CHECK(kiln::train::sample_symmetric_beta(0.5, {1, 2, 3}) ==
        kiln::train::sample_symmetric_beta(0.5, {1, 2, 3}));
}

TEST_CASE("batch mixing: mixup's weight is one share everywhere, CutMix's a clipped box of ones") {
  const BatchMixing mixup{.mixup_alpha = 0.4};
  const MixDraw blend = draw_mixing(mixup, 3, 0, 7, 8, 10);
  CHECK_FALSE(blend.cutmix);
  const std::vector<float> weight = mixing_weight(blend, 8, 10).to_vector<float>();
  for (const float w : weight) CHECK(w == doctest::Approx(1.0 - blend.lambda));

  std::set<std::pair<std::int64_t, std::int64_t>> corners;
  for (std::int64_t step = 0; step < 200; ++step) {
    const MixDraw box = draw_mixing({.cutmix_alpha = 1.0}, 3, 2, step, 8, 10);
    REQUIRE(box.cutmix);
    CHECK(box.top >= 0);
    CHECK(box.left >= 0);
    CHECK(box.top + box.height <= 8);
    CHECK(box.left + box.width <= 10);
    // lambda is the share the box leaves: what the loss must weigh, after the clipping.
    const std::vector<float> w = mixing_weight(box, 8, 10).to_vector<float>();
    double ones = 0;
    for (std::int64_t y = 0; y < 8; ++y) {
      for (std::int64_t x = 0; x < 10; ++x) {
        const bool inside = y >= box.top && y < box.top + box.height && x >= box.left && x < box.left + box.width;
        CHECK(w[static_cast<std::size_t>(y * 10 + x)] == (inside ? 1.0f : 0.0f));
        ones += inside ? 1 : 0;
      }
    }
    CHECK(box.lambda == doctest::Approx(1.0 - ones / 80.0));
    CHECK(kiln::train::own_share(mixing_weight(box, 8, 10)).item() == doctest::Approx(box.lambda));
    corners.insert({box.top, box.left});
  }
  CHECK(corners.size() > 20);  // the box goes everywhere
}

TEST_CASE("batch mixing: the same step draws the same, steps and epochs differ; both kinds take turns") {
  const BatchMixing both{.mixup_alpha = 0.2, .cutmix_alpha = 1.0};
  const MixDraw a = draw_mixing(both, 5, 1, 9, 16, 16), b = draw_mixing(both, 5, 1, 9, 16, 16);
  CHECK(a.lambda == b.lambda);
  CHECK(a.cutmix == b.cutmix);
  CHECK(draw_mixing(both, 5, 1, 10, 16, 16).lambda != a.lambda);
  CHECK(draw_mixing(both, 5, 2, 9, 16, 16).lambda != a.lambda);
  int cutmixes = 0;
  for (std::int64_t step = 0; step < 200; ++step) cutmixes += draw_mixing(both, 5, 0, step, 16, 16).cutmix;
  CHECK(cutmixes > 70);
  CHECK(cutmixes < 130);
}

TEST_CASE("batch mixing: each image takes its weight's share of the image at the mirrored batch position") {
  const Tensor images = Tensor::from_vector(kiln::testing::random_values<float>(3 * 2 * 4 * 5, 3), {3, 2, 4, 5});
  const Tensor weight = Tensor::from_vector(kiln::testing::random_values<float>(20, 4, 0.0f, 1.0f), {1, 1, 4, 5});
  const std::vector<float> in = images.to_vector<float>(), w = weight.to_vector<float>();
  for (const bool channels_last : {false, true}) {
    const Tensor mixed = kiln::train::mix_images(channels_last ? images.channels_last() : images, weight);
    const std::vector<float> out = mixed.contiguous().to_vector<float>();
    for (std::size_t n = 0; n < 3; ++n) {
      for (std::size_t c = 0; c < 2; ++c) {
        for (std::size_t p = 0; p < 20; ++p) {
          const float own = in[(n * 2 + c) * 20 + p], partner = in[((2 - n) * 2 + c) * 20 + p];
          CHECK(out[(n * 2 + c) * 20 + p] == doctest::Approx(own * (1.0f - w[p]) + partner * w[p]));
        }
      }
    }
  }
}

TEST_CASE("batch mixing: an alpha below 0 or not finite is refused, naming the option") {
  CHECK_THROWS_WITH_AS(BatchMixing{.mixup_alpha = -0.1}.validate(), doctest::Contains("--mixup takes an alpha"),
                       kiln::Error);
  CHECK_THROWS_WITH_AS(BatchMixing{.cutmix_alpha = NAN}.validate(), doctest::Contains("--cutmix takes an alpha"),
                       kiln::Error);
  CHECK_THROWS_AS(draw_mixing({}, 1, 0, 0, 4, 4), kiln::Error);
}

}  // namespace train_batch_mixing_test
