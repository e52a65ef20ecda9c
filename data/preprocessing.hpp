// Preprocessing: THE definition of how a decoded image becomes a model input. Training, evaluation and
// prediction all call the same Preprocessing::apply, with the value stored in the checkpoint, so an
// image is seen the same way by all three. Nothing else in kiln may resize or normalize an image for a
// model.
//
// apply(image) -> float32 [channels, height, width], in three steps:
//
//   1. Resize to height x width, by `resize`:
//        Stretch                    the whole image, aspect ratio not kept.
//        ShorterSideThenCenterCrop  scale by the smallest factor that makes the image cover
//                                   height x width (for a square output: the shorter side becomes the
//                                   output side), then keep the centre. Aspect ratio kept, edges lost.
//      Resampling is bilinear: each output pixel averages the source pixels under a triangle centred on
//      it, one pixel wide when enlarging (ordinary bilinear interpolation with half-pixel centres, edges
//      clamped) and as wide as the scale factor when shrinking, so a large photo shrunk to 32x32 is
//      averaged rather than aliased (as PIL's bilinear resize does). Same size: pixels pass unchanged.
//   2. Match the channel count: a grayscale image given to a 3-channel preprocessing is copied into all
//      three channels; an RGB image given to a 1-channel one becomes its luminance,
//      0.299 R + 0.587 G + 0.114 B (ITU-R BT.601, the weights PIL's convert("L") uses).
//   3. Normalize: out[c] = (pixel / 255 - mean[c]) / std[c], mean and std per channel in [0, 1] pixel
//      units. Zero in the output is therefore each channel's mean colour.
#pragma once

#include <cstdint>
#include <nlohmann/json_fwd.hpp>  // declarations only; the full json.hpp costs each includer ~2 s
#include <string_view>
#include <utility>
#include <vector>

#include "core/tensor.hpp"
#include "data/dataset.hpp"
#include "data/image.hpp"
#include "data/resample.hpp"

namespace kiln::data {

enum class ResizePolicy { Stretch, ShorterSideThenCenterCrop };

// "stretch" / "shorter_side_then_center_crop": the names used in JSON.
std::string_view resize_policy_name(ResizePolicy policy);

struct Preprocessing {
  std::int64_t channels = 3, height = 0, width = 0;  // of the output; channels is 1 or 3
  ResizePolicy resize = ResizePolicy::Stretch;
  std::vector<float> mean{}, std{};  // one per channel, in [0, 1] pixel units; std > 0

  // The image as a model input: float32 [channels, height, width] (see the steps above).
  Tensor apply(const Image& image) const;
  // The same with step 1 resampling `window` of the image instead of the one `resize` gives (window()):
  // training's resized crop (data/augment.hpp) moves it.
  Tensor apply(const Image& image, const SourceWindow& window) const;
  // The part of `image` that step 1 resamples: all of it (Stretch), or its centre
  // (ShorterSideThenCenterCrop).
  SourceWindow window(const Image& image) const;
  // The image as the model sees it, for people: apply's resize and channel matching, then its
  // normalization undone, as 8-bit pixels [height, width, channels]. (Pictures of what a model saw, such
  // as kiln explain's heat maps, are drawn over this.)
  Image as_seen(const Image& image) const;

  // Throws kiln::Error naming the field that is out of range or of the wrong length.
  void validate() const;

  // {"channels": 3, "height": 32, "width": 32, "resize": "stretch", "mean": [...], "std": [...]}
  nlohmann::json to_json() const;
  // Throws kiln::Error naming a missing or invalid field ("preprocessing: missing field 'mean'").
  static Preprocessing from_json(const nlohmann::json& json);

  friend bool operator==(const Preprocessing&, const Preprocessing&) = default;
};

// The longest side of the input size chosen for a folder of large images when no size is given. The zoo's
// networks keep their input's resolution through their first stages, so a camera photo's 3000x2000 would
// make every activation megapixels (ResNet-20 at 128x85, batch 128, already holds 3.2 GB); 128 keeps a
// photo's subject recognizable at a small CNN's cost, and --image-size asks for any other.
inline constexpr std::int64_t kDefaultMaxInputSide = 128;

// How preprocessing_for surveys a training set.
struct PreprocessingOptions {
  std::int64_t max_images = 0;  // 0: decode every image; else a seeded random sample of at most this many
  std::uint64_t seed = 0;       // picks that sample
  ResizePolicy resize = ResizePolicy::Stretch;
  std::int64_t height = 0, width = 0;            // 0, 0: the most common image size, shrunk to max_side
  std::int64_t max_side = kDefaultMaxInputSide;  // 0: the most common size however large
  int threads = 4;                               // decoding threads; the result does not depend on them
};

// The input size for images whose most common size is height x width: that size, or, when a side is longer
// than max_side (and max_side is not 0), that size scaled down with its aspect ratio kept until the longer
// side is max_side (the shorter rounded to the nearest pixel, at least 1).
std::pair<std::int64_t, std::int64_t> default_input_size(std::int64_t height, std::int64_t width,
                                                         std::int64_t max_side);

// What preprocessing_for found besides the preprocessing: the surveyed images' most common size, which is
// the input size unless the options gave one or it was shrunk to max_side.
struct SurveyedSize {
  std::int64_t height = 0, width = 0;
};

// The Preprocessing for training on `folder`, measured from its images (all, or the sample):
//   size      the most common height x width (ties: the smaller), shrunk to options.max_side
//             (default_input_size), unless options give one;
//   channels  3 if any image is in colour, else 1;
//   mean/std  per channel, over every pixel of the surveyed images at their own size (a grayscale image
//             counts towards all three channels of a colour preprocessing). A channel with no spread at
//             all gets std 1, so it is only centred.
// Files that fail to decode are passed over (the loader reports them); if none decodes, throws naming
// the folder and the first failure.
// When `most_common` is not null it receives the most common size.
Preprocessing preprocessing_for(const ImageFolder& folder, const PreprocessingOptions& options = {},
                                SurveyedSize* most_common = nullptr);

}  // namespace kiln::data
