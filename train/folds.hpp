// The folds of k-fold cross-validation (`kiln train --folds K`): every training image is assigned to one
// of K folds, and run k trains on the other K-1 folds and is evaluated on fold k. Each image is held out
// exactly once, so the K held-out scores together cover all the training data, and their spread shows
// how much a single train/validation split's score owes to which images it happened to hold out.
//
// The folds are stratified and drawn from the seed, like --val-split's split (data/dataset.hpp):
//   - each class's images are put in a seeded random order (data/shuffle.hpp, stream
//     kCrossValidationStream, the class's own part of it, so a class's order does not depend on the
//     sizes of the classes before it);
//   - then dealt to the folds round-robin, class after class, each class continuing where the previous
//     one stopped.
// So every fold holds each class's images to within one (stratified), the folds' sizes differ by at most
// one, and the same seed always gives the same folds. Each class needs at least K images, so that every
// fold holds out some of it and trains on the rest.
#pragma once

#include <cstdint>
#include <vector>

#include "data/dataset.hpp"

namespace kiln::train {

// Throws kiln::Error unless folds >= 2.
void check_fold_count(std::int64_t folds);

// result[i] is the fold (0 .. folds-1) of folder.samples()[i]. Throws kiln::Error when folds < 2 or a
// class has fewer than `folds` images (naming the class and its count).
std::vector<std::int64_t> stratified_folds(const data::ImageFolder& folder, std::int64_t folds,
                                           std::uint64_t seed);

struct FoldSplit {
  data::ImageFolder train;     // the samples of the other folds, in the folder's order
  data::ImageFolder held_out;  // the samples of fold `fold`, in the folder's order
};

// The split of run `fold` (0-based) of `folds`.
FoldSplit fold_split(const data::ImageFolder& folder, std::int64_t folds, std::int64_t fold,
                     std::uint64_t seed);

}  // namespace kiln::train
