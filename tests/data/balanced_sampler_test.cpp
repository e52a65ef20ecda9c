// Tests for data/balanced_sampler.hpp and the loader's balanced_sampling: draws fixed by the seed, every
// class drawn about equally often however uneven the labels, and a sample repeated within an epoch
// augmented afresh each time.
#include "data/balanced_sampler.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <map>
#include <set>

#include "core/error.hpp"
#include "data/loader.hpp"
#include "data/shuffle.hpp"
#include "tests/data/image_writer.hpp"

namespace data_balanced_sampler_test {

using kiln::data::balanced_draws;
using kiln::kernels::PhiloxState;

namespace {

// 900 samples of class 0, 90 of class 1, 10 of class 2, interleaved so order does not help.
std::vector<std::int64_t> uneven_labels() {
  std::vector<std::int64_t> labels;
  for (int i = 0; i < 1000; ++i) labels.push_back(i % 100 == 0 ? 2 : i % 10 == 5 ? 1 : 0);
  return labels;
}

}  // namespace

TEST_CASE("data/balanced_sampler: the same state gives the same draws, another epoch others") {
  const std::vector<std::int64_t> labels = uneven_labels();
  const PhiloxState epoch0{7, kiln::data::kBalancedSamplerStream + 0, 0};
  const PhiloxState epoch1{7, kiln::data::kBalancedSamplerStream + 1, 0};
  const std::vector<std::size_t> draws = balanced_draws(labels, 500, epoch0);
  CHECK(draws.size() == 500);
  CHECK(balanced_draws(labels, 500, epoch0) == draws);
  CHECK(balanced_draws(labels, 500, epoch1) != draws);
  CHECK(balanced_draws(labels, 500, {8, kiln::data::kBalancedSamplerStream, 0}) != draws);
  // A longer draw starts with the shorter one: draw d depends on d alone.
  const std::vector<std::size_t> longer = balanced_draws(labels, 800, epoch0);
  CHECK(std::equal(draws.begin(), draws.end(), longer.begin()));
  CHECK(std::all_of(draws.begin(), draws.end(), [&](std::size_t i) { return i < labels.size(); }));
}

TEST_CASE("data/balanced_sampler: classes of 900, 90 and 10 samples are each drawn a third of the time") {
  const std::vector<std::int64_t> labels = uneven_labels();
  constexpr std::size_t kDraws = 300000;
  const std::vector<std::size_t> draws =
      balanced_draws(labels, kDraws, {2026, kiln::data::kBalancedSamplerStream, 0});
  std::vector<double> per_class(3, 0.0);
  std::map<std::size_t, std::int64_t> per_sample;
  for (const std::size_t i : draws) {
    per_class[static_cast<std::size_t>(labels[i])] += 1.0;
    ++per_sample[i];
  }
  // The standard deviation of each share is sqrt(1/3 * 2/3 / 300000) = 0.00086; 0.01 is over 11 of them,
  // and the seed is fixed, so this cannot flake.
  for (const double count : per_class) CHECK(count / kDraws == doctest::Approx(1.0 / 3).epsilon(0.03));
  // Within a class the draw is uniform: each of class 2's ten samples gets about a tenth of its third.
  for (std::size_t i = 0; i < labels.size(); i += 100) {
    CAPTURE(i);
    CHECK(static_cast<double>(per_sample[i]) == doctest::Approx(kDraws / 30.0).epsilon(0.1));
  }
}

TEST_CASE("data/balanced_sampler: a label with no samples takes no share, and bad input is refused") {
  const std::vector<std::int64_t> labels{0, 0, 0, 2};  // class 1 has no samples
  const std::vector<std::size_t> draws =
      balanced_draws(labels, 20000, {1, kiln::data::kBalancedSamplerStream, 0});
  const auto last = static_cast<double>(std::count(draws.begin(), draws.end(), std::size_t{3}));
  CHECK(last / 20000 == doctest::Approx(0.5).epsilon(0.05));
  CHECK(balanced_draws({}, 0, {}).empty());
  CHECK_THROWS_WITH_AS(balanced_draws({}, 3, {}), doctest::Contains("no samples"), kiln::Error);
  CHECK_THROWS_WITH_AS(balanced_draws({0, -1}, 3, {}), doctest::Contains("negative label"), kiln::Error);
}

TEST_CASE("data/balanced_sampler: the loader draws balanced epochs, reproducibly, repeats augmented afresh") {
  const kiln::test::TemporaryFolder root;
  // One image of class "a", seven of class "b": a balanced epoch of 8 holds about four copies of a.png.
  kiln::test::write_image(root / "a/only.png", kiln::test::pattern_image(6, 6, 1, 0));
  for (int i = 0; i < 7; ++i) {
    kiln::test::write_image(root / "b" / (std::to_string(i) + ".png"),
                            kiln::test::pattern_image(6, 6, 1, i + 1));
  }
  const kiln::data::ImageFolder folder = kiln::data::ImageFolder::scan(root.path());
  const kiln::data::Preprocessing grey{1, 6, 6, kiln::data::ResizePolicy::Stretch, {0.0f}, {1.0f}};
  kiln::data::LoaderOptions options;
  options.batch_size = 3;
  options.seed = 5;
  options.balanced_sampling = true;
  options.augmentation = kiln::data::Augmentation{.crop_padding = 2, .horizontal_flip = true};

  const auto epoch = [&](int threads, std::int64_t number) {
    kiln::data::LoaderOptions with_threads = options;
    with_threads.threads = threads;
    kiln::data::DataLoader loader(folder, grey, with_threads);
    loader.start_epoch(number);
    std::vector<std::size_t> indices;
    std::vector<std::vector<float>> images;
    while (auto batch = loader.next()) {
      indices.insert(indices.end(), batch->indices.begin(), batch->indices.end());
      for (std::int64_t b = 0; b < batch->images.shape()[0]; ++b) {
        const std::vector<float> all = batch->images.to_vector<float>();
        images.emplace_back(all.begin() + b * 36, all.begin() + (b + 1) * 36);
      }
    }
    return std::pair(indices, images);
  };
  const auto [indices, images] = epoch(0, 0);
  CHECK(indices.size() == 8);
  CHECK(epoch(2, 0).first == indices);  // any thread count: the same draws
  CHECK(epoch(2, 0).second == images);  // and the same augmentation
  CHECK(epoch(0, 1).first != indices);  // another epoch draws again
  std::set<std::vector<float>> copies_of_a;
  std::size_t draws_of_a = 0;
  for (std::size_t k = 0; k < indices.size(); ++k) {
    if (indices[k] != 0) continue;
    ++draws_of_a;
    copies_of_a.insert(images[k]);
  }
  CAPTURE(draws_of_a);
  REQUIRE(draws_of_a >= 2);  // fixed by the seed; class a's 1 image of 8 draws far more than 1/8 of the time
  CHECK(copies_of_a.size() >= 2);  // each copy got its own crop and flip
}

}  // namespace data_balanced_sampler_test
