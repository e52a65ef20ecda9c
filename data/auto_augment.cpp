#include "data/auto_augment.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <numbers>

#include "core/error.hpp"
#include "data/image.hpp"

namespace kiln::data {
namespace {

bool has_direction(AugmentOperation operation) {
  switch (operation) {
    case AugmentOperation::Posterize:
    case AugmentOperation::Solarize:
    case AugmentOperation::AutoContrast:
    case AugmentOperation::Equalize:
    case AugmentOperation::Identity:
      return false;
    default:
      return true;
  }
}

float clamp01(double x) { return static_cast<float>(std::clamp(x, 0.0, 1.0)); }

// A view of one image's planes.
struct Planes {
  std::vector<float>& pixels;
  std::int64_t channels, height, width;

  std::int64_t plane() const { return height * width; }
  float& at(std::int64_t c, std::int64_t y, std::int64_t x) {
    return pixels[static_cast<std::size_t>((c * height + y) * width + x)];
  }
  // The luma of pixel p (the plane's index): the pixel itself in a grey image.
  double luma_at(std::int64_t p) const {
    const auto i = static_cast<std::size_t>(p);
    if (channels != 3) return pixels[i];
    const auto s = static_cast<std::size_t>(plane());
    return luma(pixels[i], pixels[s + i], pixels[2 * s + i]);
  }
};

// A point in continuous pixel coordinates: pixel (i, j) covers [i, i + 1) x [j, j + 1).
struct Point {
  double x, y;
};

// Each output pixel (x, y) takes the source pixel under source_of(x + 1/2, y + 1/2), the Point its centre
// maps back to, or `fill` where that lies outside the image.
template <typename SourceOf>
void resample_nearest(Planes image, const std::vector<float>& fill, SourceOf source_of) {
  const std::vector<float> source = image.pixels;
  for (std::int64_t y = 0; y < image.height; ++y) {
    for (std::int64_t x = 0; x < image.width; ++x) {
      const auto [source_x, source_y] = source_of(static_cast<double>(x) + 0.5, static_cast<double>(y) + 0.5);
      const double column = std::floor(source_x), row = std::floor(source_y);
      const bool inside = column >= 0 && column < static_cast<double>(image.width) && row >= 0 &&
                          row < static_cast<double>(image.height);
      for (std::int64_t c = 0; c < image.channels; ++c) {
        image.at(c, y, x) = inside ? source[static_cast<std::size_t>(
                                         (c * image.height + static_cast<std::int64_t>(row)) * image.width +
                                         static_cast<std::int64_t>(column))]
                                   : fill[static_cast<std::size_t>(c)];
      }
    }
  }
}

void rotate(Planes image, double degrees, const std::vector<float>& fill) {
  // Content turning counterclockwise on the screen (y down) by theta: output point o, taken from the
  // centre, shows the source at o turned clockwise by theta.
  const double theta = degrees * std::numbers::pi / 180.0;
  const double cosine = std::cos(theta), sine = std::sin(theta);
  const double centre_x = static_cast<double>(image.width) / 2,
               centre_y = static_cast<double>(image.height) / 2;
  resample_nearest(image, fill, [&](double x, double y) {
    const double dx = x - centre_x, dy = y - centre_y;
    return Point{centre_x + dx * cosine - dy * sine, centre_y + dx * sine + dy * cosine};
  });
}

// x' = blend_with + factor (x - blend_with), clamped; blend_with(c, p) for channel c, pixel p.
template <typename BlendWith>
void blend(Planes image, double factor, BlendWith blend_with) {
  for (std::int64_t c = 0; c < image.channels; ++c) {
    for (std::int64_t p = 0; p < image.plane(); ++p) {
      float& x = image.pixels[static_cast<std::size_t>(c * image.plane() + p)];
      const double base = blend_with(c, p);
      x = clamp01(base + factor * (x - base));
    }
  }
}

void sharpen(Planes image, double factor) {
  // The smoothed image: [1 1 1; 1 5 1; 1 1 1] / 13 on the interior; the border pixels are their own.
  std::vector<float> smoothed = image.pixels;
  for (std::int64_t c = 0; c < image.channels; ++c) {
    for (std::int64_t y = 1; y + 1 < image.height; ++y) {
      for (std::int64_t x = 1; x + 1 < image.width; ++x) {
        double sum = 4.0 * image.at(c, y, x);  // and once more in the 3x3 below: 5 times
        for (std::int64_t dy = -1; dy <= 1; ++dy)
          for (std::int64_t dx = -1; dx <= 1; ++dx) sum += image.at(c, y + dy, x + dx);
        smoothed[static_cast<std::size_t>((c * image.height + y) * image.width + x)] =
            static_cast<float>(sum / 13.0);
      }
    }
  }
  blend(image, factor, [&](std::int64_t c, std::int64_t p) {
    return static_cast<double>(smoothed[static_cast<std::size_t>(c * image.plane() + p)]);
  });
}

// The value's 8-bit level, 0 to 255.
int eight_bits(float x) { return static_cast<int>(std::lround(std::clamp(x, 0.0f, 1.0f) * 255.0f)); }

void posterize(Planes image, int bits) {
  const int keep = (0xff << (8 - bits)) & 0xff;
  for (float& x : image.pixels) x = static_cast<float>(eight_bits(x) & keep) / 255.0f;
}

void autocontrast(Planes image) {
  for (std::int64_t c = 0; c < image.channels; ++c) {
    const auto first = image.pixels.begin() + c * image.plane(), last = first + image.plane();
    const auto [low, high] = std::minmax_element(first, last);
    const double lowest = *low, range = static_cast<double>(*high) - lowest;  // the top maps to 1 exactly
    if (range <= 0) continue;
    for (auto x = first; x != last; ++x) *x = clamp01((*x - lowest) / range);
  }
}

// PIL's equalization of one channel's 8-bit values: with the histogram's counts, and `step` the pixels not
// at the highest level present divided into 255 parts (rounded down), level v maps to (the pixels below v
// + step / 2) / step, rounded down; a channel of one level, or too few pixels for a step, is left alone.
void equalize(Planes image) {
  for (std::int64_t c = 0; c < image.channels; ++c) {
    const auto first = image.pixels.begin() + c * image.plane(), last = first + image.plane();
    std::array<std::int64_t, 256> histogram{};
    for (auto x = first; x != last; ++x) ++histogram[static_cast<std::size_t>(eight_bits(*x))];
    std::int64_t highest_count = 0;
    for (const std::int64_t count : histogram)
      if (count > 0) highest_count = count;
    const std::int64_t step = (image.plane() - highest_count) / 255;
    if (step == 0) continue;
    std::array<float, 256> table{};
    std::int64_t below = 0;
    for (std::size_t v = 0; v < 256; ++v) {
      table[v] = static_cast<float>(std::min<std::int64_t>((below + step / 2) / step, 255)) / 255.0f;
      below += histogram[v];
    }
    for (auto x = first; x != last; ++x) *x = table[static_cast<std::size_t>(eight_bits(*x))];
  }
}

}  // namespace

std::string_view augment_operation_name(AugmentOperation operation) {
  static constexpr std::array<std::string_view, kAugmentOperations> kNames = {
      "identity", "shear_x",  "shear_y",   "translate_x", "translate_y", "rotate",       "brightness",
      "color",    "contrast", "sharpness", "posterize",   "solarize",    "autocontrast", "equalize"};
  return kNames[static_cast<std::size_t>(operation)];
}

double augment_magnitude(const AugmentChoice& choice, StrengthTable table, std::int64_t height,
                         std::int64_t width) {
  KILN_CHECK(choice.level >= 0 && choice.level < kAugmentLevels, "automatic augmentation: level ",
             choice.level, " outside [0, ", kAugmentLevels, ")");
  const bool wide = table == StrengthTable::Wide;
  const double m = static_cast<double>(choice.level) / (kAugmentLevels - 1);  // 0 to 1
  double magnitude = 0.0;
  switch (choice.operation) {
    case AugmentOperation::ShearX:
    case AugmentOperation::ShearY:
      magnitude = (wide ? 0.99 : 0.3) * m;
      break;
    case AugmentOperation::Brightness:
    case AugmentOperation::Color:
    case AugmentOperation::Contrast:
    case AugmentOperation::Sharpness:
      magnitude = (wide ? 0.99 : 0.9) * m;
      break;
    case AugmentOperation::TranslateX:
    case AugmentOperation::TranslateY: {
      const auto side =
          static_cast<double>(choice.operation == AugmentOperation::TranslateX ? width : height);
      magnitude = (wide ? 32.0 : 150.0 / 331.0 * side) * m;
      break;
    }
    case AugmentOperation::Rotate:
      magnitude = (wide ? 135.0 : 30.0) * m;
      break;
    case AugmentOperation::Posterize:
      magnitude = 8.0 - std::round((wide ? 6.0 : 4.0) * m);
      break;
    case AugmentOperation::Solarize:
      magnitude = 1.0 - m;
      break;
    case AugmentOperation::Identity:
    case AugmentOperation::AutoContrast:
    case AugmentOperation::Equalize:
      break;
  }
  return choice.negative && has_direction(choice.operation) ? -magnitude : magnitude;
}

void apply_augment_operation(std::vector<float>& pixels, std::int64_t channels, std::int64_t height,
                             std::int64_t width, const AugmentChoice& choice, StrengthTable table,
                             const std::vector<float>& fill) {
  KILN_CHECK(static_cast<std::int64_t>(pixels.size()) == channels * height * width &&
                 static_cast<std::int64_t>(fill.size()) == channels,
             "automatic augmentation: ", pixels.size(), " values and ", fill.size(), " fill values for a ",
             channels, "x", height, "x", width, " image");
  const Planes image{pixels, channels, height, width};
  const double magnitude = augment_magnitude(choice, table, height, width);
  switch (choice.operation) {
    case AugmentOperation::Identity:
      return;
    case AugmentOperation::ShearX:
      return resample_nearest(image, fill, [&](double x, double y) { return Point{x + magnitude * y, y}; });
    case AugmentOperation::ShearY:
      return resample_nearest(image, fill, [&](double x, double y) { return Point{x, y + magnitude * x}; });
    case AugmentOperation::TranslateX:
    case AugmentOperation::TranslateY: {
      const double shift = std::trunc(magnitude);  // whole pixels; the content moves right (down) by it
      const bool along_x = choice.operation == AugmentOperation::TranslateX;
      return resample_nearest(image, fill, [&](double x, double y) {
        return along_x ? Point{x - shift, y} : Point{x, y - shift};
      });
    }
    case AugmentOperation::Rotate:
      return rotate(image, magnitude, fill);
    case AugmentOperation::Brightness:
      return blend(image, 1.0 + magnitude, [](std::int64_t, std::int64_t) { return 0.0; });
    case AugmentOperation::Color: {
      if (channels != 3) return;  // a grey image has no saturation
      std::vector<double> grey(
          static_cast<std::size_t>(image.plane()));  // before the blend changes a channel
      for (std::int64_t p = 0; p < image.plane(); ++p) grey[static_cast<std::size_t>(p)] = image.luma_at(p);
      return blend(image, 1.0 + magnitude,
                   [&](std::int64_t, std::int64_t p) { return grey[static_cast<std::size_t>(p)]; });
    }
    case AugmentOperation::Contrast: {
      double total = 0.0;
      for (std::int64_t p = 0; p < image.plane(); ++p) total += image.luma_at(p);
      const double mean = total / static_cast<double>(image.plane());
      return blend(image, 1.0 + magnitude, [&](std::int64_t, std::int64_t) { return mean; });
    }
    case AugmentOperation::Sharpness:
      return sharpen(image, 1.0 + magnitude);
    case AugmentOperation::Posterize:
      return posterize(image, static_cast<int>(magnitude));
    case AugmentOperation::Solarize:
      for (float& x : pixels)
        if (x >= magnitude) x = 1.0f - x;
      return;
    case AugmentOperation::AutoContrast:
      return autocontrast(image);
    case AugmentOperation::Equalize:
      return equalize(image);
  }
}

}  // namespace kiln::data
