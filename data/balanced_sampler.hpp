// Balanced sampling: an epoch's training indices drawn with replacement so that, on average, every class
// is seen equally often, however few images it has (`kiln train --balanced-sampler`).
//
// With n(c) the number of samples of class c and K the number of classes that have samples, draw d picks
// sample i with probability
//     p(i) = 1 / (K * n(label_i))          (proportional to 1 / n(label_i); the p(i) sum to 1)
// by drawing a class uniformly from the K (uniform 2d of the stream) and then one of its samples uniformly
// (uniform 2d + 1). A class of 10 images and a class of 1000 are each drawn about count / K times; the
// small class's images repeat, the large class's are not all seen in one epoch.
//
// The draws are a pure function of the labels and the Philox state, so the same seed and epoch give the
// same draws on any machine and at any thread count, and a resumed run draws what it would have drawn.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "kernels/random/philox.hpp"

namespace kiln::data {

// `count` sample indices into `labels` (labels[i] >= 0 is sample i's class), drawn with replacement as
// above. Throws kiln::Error when `labels` is empty and count > 0, or a label is negative.
std::vector<std::size_t> balanced_draws(const std::vector<std::int64_t>& labels, std::size_t count,
                                        const kernels::PhiloxState& state);

}  // namespace kiln::data
