// How often each label applies in a multi-label training split, and --pos-weight auto from it.
//
// With L labels that each apply to few images, a model can lower the binary cross-entropy a lot by
// answering "no" to everything. pos_weight (kernels/loss/bce_with_logits.hpp) weighs each label's
// positive term; auto sets it to negatives / positives of the training split, so that a label's
// positives and negatives weigh the same in total (PyTorch's suggested BCEWithLogitsLoss pos_weight).
#pragma once

#include <cstdint>
#include <vector>

#include "data/dataset.hpp"

namespace kiln::train {

// [labels] how many of the folder's samples each label applies to. Throws unless it is multi-label.
std::vector<std::int64_t> label_counts(const data::ImageFolder& folder);

// [labels] negatives / positives per label for a split of `samples` images; a label that never applies
// gets 1 (it has no positive term to weigh).
std::vector<double> auto_pos_weights(const std::vector<std::int64_t>& counts, std::int64_t samples);

}  // namespace kiln::train
