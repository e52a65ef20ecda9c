// The automatic augmentation policies, over one set of fourteen image operations:
//
//   TrivialAugment  (Müller and Hutter, "TrivialAugment: Tuning-free Yet State-of-the-Art Data
//                   Augmentation", ICCV 2021), in the "wide" form torchvision ships as TrivialAugmentWide:
//                   each training image gets one operation, drawn uniformly from the fourteen, at one of 31
//                   strengths (levels 0 to 30), also drawn uniformly. No strength to tune: that is its
//                   point, and why it suits a new data set.
//   RandAugment     (Cubuk et al., "RandAugment: Practical automated data augmentation with a reduced
//                   search space", 2020), as torchvision's RandAugment: N operations in turn, each drawn
//                   uniformly from the fourteen (the same one may come twice), all at one level M, on the
//                   standard table's milder strengths. Two numbers to tune; torchvision's defaults are N = 2
//                   and M = 9.
//
// Either way each operation with a direction takes a random sign. The operations and their strengths at
// level L, m = L / 30, on the wide table (TrivialAugment's) / the standard one (RandAugment's), as
// torchvision's tables give them:
//
//   identity        nothing
//   shear x, y      x' = x + s y (or y' = y + s x) about the top-left corner, s = +-0.99 m / +-0.3 m
//   translate x, y  a shift of +-trunc(32 m) pixels, whatever the image's size / +-trunc(150/331 m W) (H for
//   y) rotate          +-135 m / +-30 m degrees counterclockwise about the centre brightness      x' = f x f
//   = 1 +- 0.99 m / 1 +- 0.9 m, and the same f below color           x' = g + f (x - g)                g the
//   pixel's luma (colour images; grey ones unchanged) contrast        x' = mu + f (x - mu)              mu
//   the mean luma of the image sharpness       x' = d + f (x - d)                d the image smoothed by [1 1
//   1; 1 5 1; 1 1 1] / 13,
//                                                     the border pixels kept as they are
//   posterize       8 - round(6 m) / 8 - round(4 m) bits of each 8-bit value kept
//   solarize        values at or above 1 - m inverted (x' = 1 - x), on both tables
//   autocontrast    each channel stretched to span [0, 1] (a constant channel unchanged)
//   equalize        each channel's 8-bit histogram equalized (the algorithm of PIL's ImageOps.equalize)
//
// The images are float [C, H, W] in [0, 1] pixel units; every result is clamped to [0, 1], and posterize
// and equalize act on the values rounded to 8 bits, as they do on torchvision's uint8 images. The geometric
// operations sample their source by nearest neighbour (torchvision's default here), a pixel covering
// [i, i + 1) and sampled at its centre, and bring in `fill` where the source lies outside the image: kiln
// passes each channel's mean colour, as its random crop and cutout do (torchvision fills black).
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

namespace kiln::data {

enum class AugmentOperation {
  Identity,
  ShearX,
  ShearY,
  TranslateX,
  TranslateY,
  Rotate,
  Brightness,
  Color,
  Contrast,
  Sharpness,
  Posterize,
  Solarize,
  AutoContrast,
  Equalize,
};
inline constexpr int kAugmentOperations = 14;
inline constexpr int kAugmentLevels = 31;

std::string_view augment_operation_name(AugmentOperation operation);

// One image's draw: the operation, its level in [0, kAugmentLevels) and, for the operations with a
// direction, whether the strength is negated.
struct AugmentChoice {
  AugmentOperation operation = AugmentOperation::Identity;
  int level = 0;
  bool negative = false;
};

// The strengths: TrivialAugment's wide table or RandAugment's standard one (the top of the file).
enum class StrengthTable { Wide, Standard };

// The choice's strength on `table`, in the operation's own unit (the top of the file): the shear's s, the
// translation's pixels (the standard table's relative to the image's `height` or `width`), the rotation's
// degrees, the factor's f - 1, posterize's bits kept, solarize's threshold; 0 for identity, autocontrast and
// equalize.
double augment_magnitude(const AugmentChoice& choice, StrengthTable table, std::int64_t height,
                         std::int64_t width);

// Applies `choice` at its strength on `table` to `pixels`, [channels, height, width] in [0, 1], in place.
// `fill` holds one value a channel.
void apply_augment_operation(std::vector<float>& pixels, std::int64_t channels, std::int64_t height,
                             std::int64_t width, const AugmentChoice& choice, StrengthTable table,
                             const std::vector<float>& fill);

}  // namespace kiln::data
