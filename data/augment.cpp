#include "data/augment.hpp"

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "data/image.hpp"

namespace kiln::data {

namespace {

// The draw index of each random choice.
enum Draw : std::uint64_t {
  kBrightnessDraw,
  kContrastDraw,
  kSaturationDraw,
  kCropRowDraw,
  kCropColumnDraw,
  kFlipDraw,
  kCutoutRowDraw,
  kCutoutColumnDraw,
};
static_assert(kCutoutColumnDraw + 1 == kAugmentationDraws);

// An integer uniform in [0, count), from draw `draw`.
std::int64_t uniform_index(const kernels::PhiloxState& state, Draw draw, std::int64_t count) {
  const float u = kernels::philox_uniform<float>(state, draw);
  return std::min(count - 1, static_cast<std::int64_t>(u * static_cast<float>(count)));
}

// A factor in [1 - strength, 1 + strength], from draw `draw`.
float jitter_factor(const kernels::PhiloxState& state, Draw draw, float strength) {
  return 1.0f + strength * (2.0f * kernels::philox_uniform<float>(state, draw) - 1.0f);
}

float clamp01(float x) { return std::clamp(x, 0.0f, 1.0f); }

// Brightness, contrast and saturation on `pixels`, [C, H*W] in [0, 1] pixel units.
void jitter_colour(std::vector<float>& pixels, std::int64_t channels, std::int64_t plane,
                   const Augmentation& augmentation, const kernels::PhiloxState& state) {
  auto luminance = [&](std::int64_t p) {
    if (channels == 1) return pixels[static_cast<std::size_t>(p)];
    return luma(pixels[static_cast<std::size_t>(p)], pixels[static_cast<std::size_t>(plane + p)],
                pixels[static_cast<std::size_t>(2 * plane + p)]);
  };
  if (augmentation.brightness > 0) {
    const float b = jitter_factor(state, kBrightnessDraw, augmentation.brightness);
    for (float& x : pixels) x = clamp01(b * x);
  }
  if (augmentation.contrast > 0) {
    const float k = jitter_factor(state, kContrastDraw, augmentation.contrast);
    double total = 0;
    for (std::int64_t p = 0; p < plane; ++p) total += luminance(p);
    const auto m = static_cast<float>(total / static_cast<double>(plane));
    for (float& x : pixels) x = clamp01(m + k * (x - m));
  }
  if (augmentation.saturation > 0 && channels == 3) {
    const float s = jitter_factor(state, kSaturationDraw, augmentation.saturation);
    for (std::int64_t p = 0; p < plane; ++p) {
      const float g = luminance(p);
      for (std::int64_t c = 0; c < 3; ++c) {
        float& x = pixels[static_cast<std::size_t>(c * plane + p)];
        x = clamp01(g + s * (x - g));
      }
    }
  }
}

void check_field_in(const char* name, double value, double low, double high) {
  KILN_CHECK(value >= low && value <= high, "augmentation: '", name, "' must be in [", low, ", ", high,
             "], got ", value);
}

}  // namespace

bool Augmentation::any() const {
  return crop_padding > 0 || horizontal_flip || brightness > 0 || contrast > 0 || saturation > 0 ||
         cutout > 0;
}

void Augmentation::validate() const {
  KILN_CHECK(crop_padding >= 0, "augmentation: 'crop_padding' must be >= 0, got ", crop_padding);
  KILN_CHECK(cutout >= 0, "augmentation: 'cutout' must be >= 0, got ", cutout);
  check_field_in("brightness", brightness, 0.0, 1.0);
  check_field_in("contrast", contrast, 0.0, 1.0);
  check_field_in("saturation", saturation, 0.0, 1.0);
}

nlohmann::json Augmentation::to_json() const {
  return {{"crop_padding", crop_padding}, {"horizontal_flip", horizontal_flip}, {"brightness", brightness},
          {"contrast", contrast},         {"saturation", saturation},           {"cutout", cutout}};
}

Augmentation Augmentation::from_json(const nlohmann::json& json) {
  KILN_CHECK(json.is_object(), "augmentation: expected a JSON object, got ", json.type_name());
  Augmentation augmentation;
  for (const auto& [name, value] : json.items()) {
    if (name == "crop_padding" || name == "cutout") {
      KILN_CHECK(value.is_number_integer(), "augmentation: field '", name, "' must be an integer, got ",
                 value.dump());
      (name == "cutout" ? augmentation.cutout : augmentation.crop_padding) = value.get<std::int64_t>();
    } else if (name == "horizontal_flip") {
      KILN_CHECK(value.is_boolean(), "augmentation: field '", name, "' must be true or false, got ",
                 value.dump());
      augmentation.horizontal_flip = value.get<bool>();
    } else if (name == "brightness" || name == "contrast" || name == "saturation") {
      KILN_CHECK(value.is_number(), "augmentation: field '", name, "' must be a number, got ", value.dump());
      float& strength = name == "brightness" ? augmentation.brightness
                        : name == "contrast" ? augmentation.contrast
                                             : augmentation.saturation;
      strength = value.get<float>();
    } else {
      fail("augmentation: unknown field '", name,
           "' (known: crop_padding, horizontal_flip, brightness, contrast, saturation, cutout)");
    }
  }
  augmentation.validate();
  return augmentation;
}

void augment(Tensor& chw, const Augmentation& augmentation, const Preprocessing& preprocessing,
             const kernels::PhiloxState& state) {
  augmentation.validate();
  KILN_CHECK(chw.dtype() == DType::Float32 && chw.dim() == 3 && chw.is_contiguous(),
             "augment: expected a contiguous float32 [C, H, W] image, got ", chw.describe());
  KILN_CHECK(chw.size(0) == preprocessing.channels &&
                 static_cast<std::int64_t>(preprocessing.mean.size()) == chw.size(0) &&
                 preprocessing.std.size() == preprocessing.mean.size(),
             "augment: image ", chw.describe(), " does not match the preprocessing's ",
             preprocessing.channels, " channels");
  const std::int64_t channels = chw.size(0), height = chw.size(1), width = chw.size(2),
                     plane = height * width;
  float* data = chw.data<float>();

  if (augmentation.brightness > 0 || augmentation.contrast > 0 || augmentation.saturation > 0) {
    // Normalized -> [0, 1] pixels, jitter, and back.
    std::vector<float> pixels(static_cast<std::size_t>(channels * plane));
    for (std::int64_t i = 0; i < channels * plane; ++i) {
      const auto c = static_cast<std::size_t>(i / plane);
      pixels[static_cast<std::size_t>(i)] = data[i] * preprocessing.std[c] + preprocessing.mean[c];
    }
    jitter_colour(pixels, channels, plane, augmentation, state);
    for (std::int64_t i = 0; i < channels * plane; ++i) {
      const auto c = static_cast<std::size_t>(i / plane);
      data[i] = (pixels[static_cast<std::size_t>(i)] - preprocessing.mean[c]) / preprocessing.std[c];
    }
  }

  if (augmentation.crop_padding > 0) {
    // The window's top-left corner in padded coordinates is (row_offset, column_offset) in [0, 2 * padding],
    // so out[y][x] = in[y + row_shift][x + column_shift] with shifts in [-padding, padding], zero outside.
    const std::int64_t padding = augmentation.crop_padding;
    const std::int64_t row_shift = uniform_index(state, kCropRowDraw, 2 * padding + 1) - padding;
    const std::int64_t column_shift = uniform_index(state, kCropColumnDraw, 2 * padding + 1) - padding;
    const std::vector<float> source(data, data + channels * plane);
    for (std::int64_t c = 0; c < channels; ++c) {
      for (std::int64_t y = 0; y < height; ++y) {
        for (std::int64_t x = 0; x < width; ++x) {
          const std::int64_t from_y = y + row_shift, from_x = x + column_shift;
          const bool inside = from_y >= 0 && from_y < height && from_x >= 0 && from_x < width;
          data[(c * height + y) * width + x] =
              inside ? source[static_cast<std::size_t>((c * height + from_y) * width + from_x)] : 0.0f;
        }
      }
    }
  }

  if (augmentation.horizontal_flip && kernels::philox_uniform<float>(state, kFlipDraw) < 0.5f) {
    for (std::int64_t row = 0; row < channels * height; ++row)
      std::reverse(data + row * width, data + (row + 1) * width);
  }

  if (augmentation.cutout > 0) {
    const std::int64_t side = augmentation.cutout;
    const std::int64_t top = uniform_index(state, kCutoutRowDraw, height) - side / 2;
    const std::int64_t left = uniform_index(state, kCutoutColumnDraw, width) - side / 2;
    for (std::int64_t c = 0; c < channels; ++c) {
      for (std::int64_t y = std::max<std::int64_t>(top, 0); y < std::min(top + side, height); ++y) {
        for (std::int64_t x = std::max<std::int64_t>(left, 0); x < std::min(left + side, width); ++x) {
          data[(c * height + y) * width + x] = 0.0f;
        }
      }
    }
  }
}

}  // namespace kiln::data
