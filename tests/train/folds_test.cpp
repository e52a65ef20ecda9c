// The folds of --folds K on a made-up folder (no image is read): every image is held out by exactly one
// fold, each fold holds each class's images to within one, the folds' sizes differ by at most one, and
// the folds are a function of the seed.
#include "train/folds.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <set>

#include "core/error.hpp"

namespace train_folds_test {

using namespace kiln;

namespace {

// Classes a, b, c with 10, 7 and 5 images: sizes that no fold count divides evenly.
data::ImageFolder made_up_folder(const std::vector<int>& class_sizes = {10, 7, 5}) {
  std::vector<std::string> classes;
  std::vector<data::Sample> samples;
  for (std::size_t c = 0; c < class_sizes.size(); ++c) {
    classes.push_back(std::string(1, static_cast<char>('a' + c)));
    for (int i = 0; i < class_sizes[c]; ++i) {
      samples.push_back(
          {"root/" + classes.back() + "/" + std::to_string(i) + ".png", static_cast<std::int64_t>(c)});
    }
  }
  return data::ImageFolder("root", classes, samples);
}

std::set<std::string> paths_of(const data::ImageFolder& folder) {
  std::set<std::string> paths;
  for (const data::Sample& sample : folder.samples()) paths.insert(sample.path.string());
  return paths;
}

}  // namespace

TEST_CASE("folds: stratified, disjoint, covering, with sizes within one") {
  const data::ImageFolder folder = made_up_folder();
  for (const std::int64_t folds : {2, 3, 5}) {
    CAPTURE(folds);
    const std::vector<std::int64_t> fold_of = train::stratified_folds(folder, folds, 7);
    REQUIRE(fold_of.size() == folder.size());
    std::vector<std::vector<std::int64_t>> per_class(
        3, std::vector<std::int64_t>(static_cast<std::size_t>(folds), 0));
    std::vector<std::int64_t> sizes(static_cast<std::size_t>(folds), 0);
    for (std::size_t i = 0; i < fold_of.size(); ++i) {
      REQUIRE(fold_of[i] >= 0);
      REQUIRE(fold_of[i] < folds);
      ++per_class[static_cast<std::size_t>(folder.samples()[i].label)][static_cast<std::size_t>(fold_of[i])];
      ++sizes[static_cast<std::size_t>(fold_of[i])];
    }
    for (const auto& counts : per_class) {  // stratified: each class spread evenly over the folds
      CHECK(*std::max_element(counts.begin(), counts.end()) -
                *std::min_element(counts.begin(), counts.end()) <=
            1);
    }
    CHECK(*std::max_element(sizes.begin(), sizes.end()) - *std::min_element(sizes.begin(), sizes.end()) <= 1);

    // The splits: fold k held out, the rest trained on; together the held-out folds are every image once.
    std::set<std::string> held_out_so_far;
    std::size_t held_out_total = 0;
    for (std::int64_t fold = 0; fold < folds; ++fold) {
      const train::FoldSplit split = train::fold_split(folder, folds, fold, 7);
      CHECK(split.train.size() + split.held_out.size() == folder.size());
      CHECK(split.held_out.size() == static_cast<std::size_t>(sizes[static_cast<std::size_t>(fold)]));
      CHECK(split.train.classes() == folder.classes());
      const std::set<std::string> train = paths_of(split.train), held_out = paths_of(split.held_out);
      for (const std::string& path : held_out) {
        CHECK_FALSE(train.contains(path));
        CHECK_FALSE(held_out_so_far.contains(path));  // disjoint from the other folds
      }
      held_out_so_far.insert(held_out.begin(), held_out.end());
      held_out_total += held_out.size();
    }
    CHECK(held_out_total == folder.size());
    CHECK(held_out_so_far == paths_of(folder));  // covering
  }
}

TEST_CASE("folds: the same seed gives the same folds, another seed others") {
  const data::ImageFolder folder = made_up_folder();
  const auto folds = train::stratified_folds(folder, 3, 1);
  CHECK(train::stratified_folds(folder, 3, 1) == folds);
  CHECK(train::stratified_folds(folder, 3, 2) != folds);
  // A split keeps the folder's order within each half, like --val-split's.
  const train::FoldSplit split = train::fold_split(folder, 3, 0, 1);
  CHECK(std::is_sorted(split.held_out.samples().begin(), split.held_out.samples().end(),
                       [](const data::Sample& a, const data::Sample& b) { return a.label < b.label; }));
}

TEST_CASE("folds: fewer than two folds, or a class with fewer images than folds, is an error") {
  const data::ImageFolder folder = made_up_folder();
  CHECK_THROWS_WITH_AS(
      train::stratified_folds(folder, 1, 0),
      "train: --folds must be at least 2 (each run trains on K-1 folds and holds one out), got 1", Error);
  CHECK_THROWS_WITH_AS(
      train::stratified_folds(folder, 6, 0),
      "train: --folds 6: class 'c' has only 5 training images; every class needs at least one "
      "per fold",
      Error);
  CHECK_THROWS_WITH_AS(train::fold_split(folder, 3, 3, 0), "train: fold 4 of 3 does not exist", Error);
}

}  // namespace train_folds_test
