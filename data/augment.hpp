// Augmentation: the random changes made to each training image.
//
// The resized crop acts while the image is made (data/loader.cpp): it moves the window that
// Preprocessing::apply resamples, so the crop is cut from the decoded image at its own resolution, not
// from the model-sized one. augment(chw, ...) then acts on the preprocessed image, float32 [C, H, W] in
// normalized units, in this order:
//
//   resized crop    (in the loader, above) a window of the preprocessing's own window (the whole image for
//                   Stretch, the centre crop for ShorterSideThenCenterCrop) holding a fraction of its area
//                   drawn from [min_crop_scale, 1], its aspect ratio that window's times a factor drawn
//                   log-uniformly from [3/4, 4/3] (each side clamped to the window's), at a random place
//                   inside it, resampled to the input size: torchvision's RandomResizedCrop, relative to
//                   the window evaluation uses, so a draw of scale 1 and factor 1 is exactly what
//                   evaluation and prediction see.
//   colour jitter   brightness, then contrast, then saturation, each by a factor drawn from
//                   [1 - strength, 1 + strength] and applied to the whole image alike (every pixel and
//                   channel), in [0, 1] pixel units (undoing and redoing the normalization) and clamped to
//                   [0, 1] there:
//                     brightness  x' = b x                     (towards black)
//                     contrast    x' = m + k (x - m)           (m = the image's mean luminance)
//                     saturation  x' = g + s (x - g)           (g = the pixel's luminance; colour only)
//   random crop     pad by crop_padding on every side, then cut an H x W window at a random offset: the
//                   content shifts by up to crop_padding pixels each way. The padding is zero in
//                   normalized units, which is each channel's mean colour (not black).
//   horizontal flip with probability 1/2.
//   vertical flip   with probability 1/2 (images with no up and down: micrographs, satellite tiles, scans).
//   rotation        by 0, 90, 180 or 270 degrees, each with probability 1/4 (square inputs only). With both
//                   flips, every one of a square's eight symmetries is equally likely.
//   TrivialAugment  one operation of fourteen at a random strength (data/auto_augment.hpp), in [0, 1]
//                   pixel units, bringing in the mean colour where a shear, shift or rotation uncovers
//                   the image.
//   RandAugment     rand_augment_ops operations of the same fourteen in turn, each at the strength
//                   rand_augment_magnitude (data/auto_augment.hpp), in the same units, with the same fill.
//   cutout          a cutout x cutout square centred on a random pixel is set to zero (the mean colour);
//                   near a border it is clipped, so less than the full square may be covered.
//
// All randomness comes from draws 0 .. kAugmentationDraws-1 of the Philox state given (one draw per
// choice, at a fixed index whether or not the other operations are on). The loader gives each sample a
// state made from (seed, epoch, sample index), so a sample's augmentation never depends on which thread
// made it or when. The first eight draws belong to the operations kiln started with (colour jitter, random
// crop, horizontal flip, cutout); a run that uses none of the later ones (resized crop, vertical flip,
// rotation, TrivialAugment) gives each sample only those (draws_per_sample), so it draws exactly what it did
// before they were added. TrivialAugment took the last two of the sixteen draws, unused before it, so
// runs with the other later operations draw as they did too; RandAugment's draws come after the sixteen, in
// two more blocks that only its runs give a sample.
#pragma once

#include <cstdint>
#include <nlohmann/json_fwd.hpp>  // declarations only; the full json.hpp costs each includer ~2 s

#include "core/tensor.hpp"
#include "data/preprocessing.hpp"
#include "data/resample.hpp"
#include "kernels/random/philox.hpp"

namespace kiln::data {

struct Augmentation {
  std::int64_t crop_padding = 0;  // pixels of padding for the random crop; 0 = no crop
  bool horizontal_flip = false;
  float brightness = 0, contrast = 0, saturation = 0;  // colour jitter strengths in [0, 1]; 0 = off
  std::int64_t cutout = 0;                             // side of the cutout square; 0 = off
  bool vertical_flip = false;
  bool rotate90 = false;     // a random multiple of 90 degrees; square inputs only
  float min_crop_scale = 1;  // the resized crop's smallest area fraction, in (0, 1]; 1 = off
  bool trivial_augment = false;
  std::int64_t rand_augment_ops = 0;  // RandAugment's operations an image, 0 to kMaxRandAugmentOps; 0 = off
  std::int64_t rand_augment_magnitude = 9;  // their level, 0 to 30 (kAugmentLevels - 1)

  // Whether any operation is on.
  bool any() const;
  // Whether the resized crop is on: the loader then moves Preprocessing::apply's window.
  bool resized_crop() const { return min_crop_scale < 1; }
  // Throws kiln::Error naming the field out of range.
  void validate() const;
  // validate(), and that the operations fit images of `preprocessing`'s size (rotation needs a square).
  void validate_for(const Preprocessing& preprocessing) const;

  // {"crop_padding": 4, "horizontal_flip": true, "brightness": 0, ...}
  nlohmann::json to_json() const;
  // Fields left out keep their defaults (off); an unknown or mistyped field is an error naming it.
  static Augmentation from_json(const nlohmann::json& json);

  friend bool operator==(const Augmentation&, const Augmentation&) = default;
};

// Draws the augmentation takes from a sample's Philox state (four Philox blocks): the resized crop's window
// and augment()'s operations but RandAugment's.
inline constexpr std::uint64_t kAugmentationDraws = 16;
// RandAugment's: two an operation (which one, and its sign) after those, in two more blocks.
inline constexpr std::int64_t kMaxRandAugmentOps = 4;
inline constexpr std::uint64_t kRandAugmentDraws = kAugmentationDraws + 2 * kMaxRandAugmentOps;
// The draws a sample's state must hold for `augmentation`: the first eight (two blocks) when none of the
// operations added after them is on, so that such a run draws as it did before they were; all sixteen
// when some are but not RandAugment, so that such a run draws as it did before RandAugment; with it, 24.
std::uint64_t draws_per_sample(const Augmentation& augmentation);

// The resized crop's window for one sample (see the top of the file): inside `window`, the one the
// preprocessing would resample, from draws of `state`.
SourceWindow resized_crop_window(const SourceWindow& window, const Augmentation& augmentation,
                                 const kernels::PhiloxState& state);

// Augments `chw` (float32 [C, H, W], contiguous, made by `preprocessing`) in place. `preprocessing`
// supplies the mean and std that map normalized values back to pixels for the colour jitter.
void augment(Tensor& chw, const Augmentation& augmentation, const Preprocessing& preprocessing,
             const kernels::PhiloxState& state);

}  // namespace kiln::data
