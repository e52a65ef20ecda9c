#include "train/folds.hpp"

#include "core/error.hpp"
#include "data/shuffle.hpp"

namespace kiln::train {

void check_fold_count(std::int64_t folds) {
  KILN_CHECK(folds >= 2,
             "train: --folds must be at least 2 (each run trains on K-1 folds and holds one out), got ",
             folds);
}

std::vector<std::int64_t> stratified_folds(const data::ImageFolder& folder, std::int64_t folds,
                                           std::uint64_t seed) {
  check_fold_count(folds);
  KILN_CHECK(!folder.multi_label(), "train: --folds is not supported for multi-label data (",
             folder.root().string(), "): the folds are stratified by each image's one class");
  std::vector<std::vector<std::size_t>> by_class(folder.classes().size());  // [class] sample indices
  for (std::size_t i = 0; i < folder.size(); ++i) {
    by_class[static_cast<std::size_t>(folder.samples()[i].label)].push_back(i);
  }
  std::vector<std::int64_t> fold_of(folder.size(), 0);
  std::int64_t dealt = 0;  // images dealt so far: the next one goes to fold dealt % folds
  for (std::size_t label = 0; label < by_class.size(); ++label) {
    const std::vector<std::size_t>& members = by_class[label];
    KILN_CHECK(static_cast<std::int64_t>(members.size()) >= folds, "train: --folds ", folds, ": class '",
               folder.classes()[label], "' has only ", members.size(), " training image",
               members.size() == 1 ? "" : "s", "; every class needs at least one per fold");
    // As in the validation split: 2^30 Philox blocks (2^32 draws) between the classes' parts.
    const kernels::PhiloxState state{seed, data::kCrossValidationStream, label << 30};
    for (const std::size_t position : data::seeded_permutation(members.size(), state)) {
      fold_of[members[position]] = dealt++ % folds;
    }
  }
  return fold_of;
}

FoldSplit fold_split(const data::ImageFolder& folder, std::int64_t folds, std::int64_t fold,
                     std::uint64_t seed) {
  KILN_CHECK(fold >= 0 && fold < folds, "train: fold ", fold + 1, " of ", folds, " does not exist");
  const std::vector<std::int64_t> fold_of = stratified_folds(folder, folds, seed);
  std::vector<std::size_t> train, held_out;
  for (std::size_t i = 0; i < fold_of.size(); ++i) (fold_of[i] == fold ? held_out : train).push_back(i);
  return {folder.subset(train), folder.subset(held_out)};
}

}  // namespace kiln::train
