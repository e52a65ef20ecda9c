// TrivialAugment (Müller and Hutter, "TrivialAugment: Tuning-free Yet State-of-the-Art Data Augmentation",
// ICCV 2021), in the "wide" form torchvision ships as TrivialAugmentWide: each training image gets one
// operation, drawn uniformly from the fourteen below, at one of 31 strengths (levels 0 to 30), also drawn
// uniformly, and with a random sign where the operation has a direction. No policy and no strength to tune:
// that is its point, and why it suits a new data set.
//
// The operations and their strength at level L (torchvision's TrivialAugmentWide table; m = L / 30):
//
//   identity        nothing
//   shear x, y      x' = x + s y (or y' = y + s x) about the top-left corner, s = +-0.99 m
//   translate x, y  a shift of +-trunc(32 m) pixels (absolute, whatever the image's size, as torchvision's)
//   rotate          +-135 m degrees counterclockwise about the centre
//   brightness      x' = f x                          f = 1 +- 0.99 m
//   color           x' = g + f (x - g)                g the pixel's luma (colour images; grey ones unchanged)
//   contrast        x' = mu + f (x - mu)              mu the mean luma of the image
//   sharpness       x' = d + f (x - d)                d the image smoothed by [1 1 1; 1 5 1; 1 1 1] / 13,
//                                                     the border pixels kept as they are
//   posterize       8 - round(6 m) bits of each 8-bit value kept (8 down to 2)
//   solarize        values at or above 1 - m inverted (x' = 1 - x)
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

enum class TrivialOperation {
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
inline constexpr int kTrivialOperations = 14;
inline constexpr int kTrivialLevels = 31;

std::string_view trivial_operation_name(TrivialOperation operation);

// One image's draw: the operation, its level in [0, kTrivialLevels) and, for the operations with a
// direction, whether the strength is negated.
struct TrivialChoice {
  TrivialOperation operation = TrivialOperation::Identity;
  int level = 0;
  bool negative = false;
};

// The choice's strength, in the operation's own unit (the table above): the shear's s, the translation's
// pixels, the rotation's degrees, the factor's f - 1, posterize's bits kept, solarize's threshold; 0 for
// identity, autocontrast and equalize.
double trivial_magnitude(const TrivialChoice& choice);

// Applies `choice` to `pixels`, [channels, height, width] in [0, 1], in place. `fill` holds one value a
// channel.
void apply_trivial_augment(std::vector<float>& pixels, std::int64_t channels, std::int64_t height,
                           std::int64_t width, const TrivialChoice& choice, const std::vector<float>& fill);

}  // namespace kiln::data
