// Seeded permutations, and the Philox streams the data pipeline draws from.
//
// Every random choice in data/ (the validation split, the sample for the statistics, each epoch's
// order or balanced draws, each sample's augmentation), and the folds of cross-validation, is a pure
// function of the seed and a few counters: it draws from its own Philox stream
// (kernels/random/philox.hpp), so no choice disturbs another and none depends on thread timing.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "kernels/random/philox.hpp"

namespace kiln::data {

// One stream per kind of choice. A stream is 64 bits: the high 32 name the kind, the low 32 carry the
// epoch where the choice changes every epoch.
inline constexpr std::uint64_t kValidationSplitStream = 0xDA7A'0001ull << 32;
inline constexpr std::uint64_t kStatisticsSampleStream = 0xDA7A'0002ull << 32;
inline constexpr std::uint64_t kEpochOrderStream = 0xDA7A'0003ull << 32;       // + epoch
inline constexpr std::uint64_t kAugmentationStream = 0xDA7A'0004ull << 32;     // + epoch
inline constexpr std::uint64_t kBalancedSamplerStream = 0xDA7A'0005ull << 32;  // + epoch
inline constexpr std::uint64_t kCrossValidationStream = 0xDA7A'0006ull << 32;  // train/folds.hpp
inline constexpr std::uint64_t kCalibrationSampleStream = 0xDA7A'0007ull
                                                          << 32;  // quant/quantize_checkpoint.hpp
inline constexpr std::uint64_t kBatchMixingStream = 0xDA7A'0008ull << 32;  // + epoch; train/batch_mixing.hpp

// A uniformly random permutation of 0 .. count-1 (Fisher-Yates): step i swaps position i with a position
// j in [0, i], picked by draw i of `state`. The same state gives the same permutation.
std::vector<std::size_t> seeded_permutation(std::size_t count, const kernels::PhiloxState& state);

}  // namespace kiln::data
