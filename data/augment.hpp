// Augmentation: the random changes made to each training image, after Preprocessing::apply.
//
// augment(chw, ...) acts on a preprocessed image, float32 [C, H, W] in normalized units, in this order:
//
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
//   cutout          a cutout x cutout square centred on a random pixel is set to zero (the mean colour);
//                   near a border it is clipped, so less than the full square may be covered.
//
// All randomness comes from draws 0 .. kAugmentationDraws-1 of the Philox state given (one draw per
// choice, at a fixed index whether or not the other operations are on). The loader gives each sample a
// state made from (seed, epoch, sample index), so a sample's augmentation never depends on which thread
// made it or when.
#pragma once

#include <cstdint>
#include <nlohmann/json_fwd.hpp>  // declarations only; the full json.hpp costs each includer ~2 s

#include "core/tensor.hpp"
#include "data/preprocessing.hpp"
#include "kernels/random/philox.hpp"

namespace kiln::data {

struct Augmentation {
  std::int64_t crop_padding = 0;  // pixels of padding for the random crop; 0 = no crop
  bool horizontal_flip = false;
  float brightness = 0, contrast = 0, saturation = 0;  // colour jitter strengths in [0, 1]; 0 = off
  std::int64_t cutout = 0;                             // side of the cutout square; 0 = off

  // Whether any operation is on.
  bool any() const;
  // Throws kiln::Error naming the field out of range.
  void validate() const;

  // {"crop_padding": 4, "horizontal_flip": true, "brightness": 0, ...}
  nlohmann::json to_json() const;
  // Fields left out keep their defaults (off); an unknown or mistyped field is an error naming it.
  static Augmentation from_json(const nlohmann::json& json);

  friend bool operator==(const Augmentation&, const Augmentation&) = default;
};

// Draws augment() takes from its Philox state (two Philox blocks).
inline constexpr std::uint64_t kAugmentationDraws = 8;

// Augments `chw` (float32 [C, H, W], contiguous, made by `preprocessing`) in place. `preprocessing`
// supplies the mean and std that map normalized values back to pixels for the colour jitter.
void augment(Tensor& chw, const Augmentation& augmentation, const Preprocessing& preprocessing,
             const kernels::PhiloxState& state);

}  // namespace kiln::data
