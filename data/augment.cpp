#include "data/augment.hpp"

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "data/auto_augment.hpp"
#include "data/image.hpp"

namespace kiln::data {

namespace {

// The draw index of each random choice: the operations kiln started with, then those added after them
// (draws_per_sample gives a sample only the first when none of the later is on).
enum Draw : std::uint64_t {
  kBrightnessDraw,
  kContrastDraw,
  kSaturationDraw,
  kCropRowDraw,
  kCropColumnDraw,
  kFlipDraw,
  kCutoutRowDraw,
  kCutoutColumnDraw,
  kFirstLaterDraw,
  kCropScaleDraw = kFirstLaterDraw,
  kCropAspectDraw,
  kCropTopDraw,
  kCropLeftDraw,
  kVerticalFlipDraw,
  kRotationDraw,
  kTrivialOperationDraw,
  kTrivialLevelDraw,  // the level and the sign: an index in [0, 2 * kAugmentLevels), negative from the middle
};
static_assert(kFirstLaterDraw % 4 == 0, "the first operations' draws fill whole Philox blocks");
static_assert(kTrivialLevelDraw < kAugmentationDraws);

// RandAugment's operation i: which one, and its sign.
Draw rand_operation_draw(std::int64_t i) { return static_cast<Draw>(kAugmentationDraws + 2 * i); }
Draw rand_sign_draw(std::int64_t i) { return static_cast<Draw>(kAugmentationDraws + 2 * i + 1); }

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

// `data` [channels, size, size] turned by `quarter_turns` quarter turns counterclockwise: the top-right
// corner goes to the top left for one, to the bottom left for two, to the bottom right for three.
void rotate_planes(float* data, std::int64_t channels, std::int64_t size, std::int64_t quarter_turns) {
  if (quarter_turns == 0) return;
  const std::int64_t last = size - 1;
  std::vector<float> plane(static_cast<std::size_t>(size * size));
  for (std::int64_t c = 0; c < channels; ++c) {
    float* out = data + c * size * size;
    std::copy_n(out, size * size, plane.begin());
    for (std::int64_t y = 0; y < size; ++y) {
      for (std::int64_t x = 0; x < size; ++x) {
        const std::int64_t from_y = quarter_turns == 1 ? x : quarter_turns == 2 ? last - y : last - x;
        const std::int64_t from_x = quarter_turns == 1 ? last - y : quarter_turns == 2 ? last - x : y;
        out[y * size + x] = plane[static_cast<std::size_t>(from_y * size + from_x)];
      }
    }
  }
}

// Normalized values [C, plane] -> [0, 1] pixels, and back: the colour operations' units.
std::vector<float> to_pixels(const float* data, std::int64_t channels, std::int64_t plane,
                             const Preprocessing& preprocessing) {
  std::vector<float> pixels(static_cast<std::size_t>(channels * plane));
  for (std::int64_t i = 0; i < channels * plane; ++i) {
    const auto c = static_cast<std::size_t>(i / plane);
    pixels[static_cast<std::size_t>(i)] = data[i] * preprocessing.std[c] + preprocessing.mean[c];
  }
  return pixels;
}

void from_pixels(const std::vector<float>& pixels, std::int64_t channels, std::int64_t plane,
                 const Preprocessing& preprocessing, float* data) {
  for (std::int64_t i = 0; i < channels * plane; ++i) {
    const auto c = static_cast<std::size_t>(i / plane);
    data[i] = (pixels[static_cast<std::size_t>(i)] - preprocessing.mean[c]) / preprocessing.std[c];
  }
}

// The automatic policy's operations for one sample, in the order they apply, and its strength table:
// TrivialAugment's one or RandAugment's rand_augment_ops (validate() lets one policy on at a time); none
// when neither is on.
struct PolicyDraws {
  std::vector<AugmentChoice> choices;
  StrengthTable table = StrengthTable::Wide;
};

PolicyDraws policy_draws(const Augmentation& augmentation, const kernels::PhiloxState& state) {
  PolicyDraws policy;
  if (augmentation.trivial_augment) {
    const std::int64_t level_and_sign = uniform_index(state, kTrivialLevelDraw, 2 * kAugmentLevels);
    policy.choices.push_back({.operation = static_cast<AugmentOperation>(
                                  uniform_index(state, kTrivialOperationDraw, kAugmentOperations)),
                              .level = static_cast<int>(level_and_sign % kAugmentLevels),
                              .negative = level_and_sign >= kAugmentLevels});
  }
  if (augmentation.rand_augment_ops > 0) policy.table = StrengthTable::Standard;
  for (std::int64_t i = 0; i < augmentation.rand_augment_ops; ++i) {
    policy.choices.push_back({.operation = static_cast<AugmentOperation>(
                                  uniform_index(state, rand_operation_draw(i), kAugmentOperations)),
                              .level = static_cast<int>(augmentation.rand_augment_magnitude),
                              .negative = kernels::philox_uniform<float>(state, rand_sign_draw(i)) < 0.5f});
  }
  return policy;
}

void check_field_in(const char* name, double value, double low, double high) {
  KILN_CHECK(value >= low && value <= high, "augmentation: '", name, "' must be in [", low, ", ", high,
             "], got ", value);
}

}  // namespace

bool Augmentation::any() const {
  return crop_padding > 0 || horizontal_flip || brightness > 0 || contrast > 0 || saturation > 0 ||
         cutout > 0 || vertical_flip || rotate90 || resized_crop() || trivial_augment || rand_augment_ops > 0;
}

void Augmentation::validate() const {
  KILN_CHECK(crop_padding >= 0, "augmentation: 'crop_padding' must be >= 0, got ", crop_padding);
  KILN_CHECK(cutout >= 0, "augmentation: 'cutout' must be >= 0, got ", cutout);
  check_field_in("brightness", brightness, 0.0, 1.0);
  check_field_in("contrast", contrast, 0.0, 1.0);
  check_field_in("saturation", saturation, 0.0, 1.0);
  KILN_CHECK(min_crop_scale > 0 && min_crop_scale <= 1,
             "augmentation: 'min_crop_scale' must be in (0, 1] (1: no resized crop), got ", min_crop_scale);
  check_field_in("rand_augment_ops", static_cast<double>(rand_augment_ops), 0, kMaxRandAugmentOps);
  check_field_in("rand_augment_magnitude", static_cast<double>(rand_augment_magnitude), 0,
                 kAugmentLevels - 1);
  KILN_CHECK(!trivial_augment || rand_augment_ops == 0,
             "augmentation: TrivialAugment and RandAugment are two policies over the same operations; choose "
             "one (trivial_augment or rand_augment_ops)");
}

void Augmentation::validate_for(const Preprocessing& preprocessing) const {
  validate();
  KILN_CHECK(
      !rotate90 || preprocessing.height == preprocessing.width,
      "augmentation: 'rotate90' turns the image by quarter turns, which needs a square input; the input "
      "is ",
      preprocessing.height, "x", preprocessing.width, " (--image-size N makes it N x N)");
}

nlohmann::json Augmentation::to_json() const {
  return {{"crop_padding", crop_padding},
          {"horizontal_flip", horizontal_flip},
          {"brightness", brightness},
          {"contrast", contrast},
          {"saturation", saturation},
          {"cutout", cutout},
          {"vertical_flip", vertical_flip},
          {"rotate90", rotate90},
          {"min_crop_scale", min_crop_scale},
          {"trivial_augment", trivial_augment},
          {"rand_augment_ops", rand_augment_ops},
          {"rand_augment_magnitude", rand_augment_magnitude}};
}

std::uint64_t draws_per_sample(const Augmentation& augmentation) {
  const bool later = augmentation.resized_crop() || augmentation.vertical_flip || augmentation.rotate90 ||
                     augmentation.trivial_augment;
  if (augmentation.rand_augment_ops > 0) return kRandAugmentDraws;
  return later ? kAugmentationDraws : kFirstLaterDraw;
}

SourceWindow resized_crop_window(const SourceWindow& window, const Augmentation& augmentation,
                                 const kernels::PhiloxState& state) {
  augmentation.validate();
  if (!augmentation.resized_crop()) return window;
  const auto uniform = [&](Draw draw) { return kernels::philox_uniform<double>(state, draw); };
  // The area fraction, and the factor on the window's width-to-height ratio (log-uniform, so 3/4 and 4/3
  // are equally likely).
  const double scale =
      augmentation.min_crop_scale + (1.0 - augmentation.min_crop_scale) * uniform(kCropScaleDraw);
  const double ratio = std::exp(std::log(3.0 / 4.0) + std::log(16.0 / 9.0) * uniform(kCropAspectDraw));
  SourceWindow crop;
  crop.width = std::min(window.width, window.width * std::sqrt(scale * ratio));
  crop.height = std::min(window.height, window.height * std::sqrt(scale / ratio));
  crop.top = window.top + (window.height - crop.height) * uniform(kCropTopDraw);
  crop.left = window.left + (window.width - crop.width) * uniform(kCropLeftDraw);
  return crop;
}

Augmentation Augmentation::from_json(const nlohmann::json& json) {
  KILN_CHECK(json.is_object(), "augmentation: expected a JSON object, got ", json.type_name());
  Augmentation augmentation;
  for (const auto& [name, value] : json.items()) {
    if (name == "crop_padding" || name == "cutout" || name == "rand_augment_ops" ||
        name == "rand_augment_magnitude") {
      KILN_CHECK(value.is_number_integer(), "augmentation: field '", name, "' must be an integer, got ",
                 value.dump());
      std::int64_t& number = name == "cutout"             ? augmentation.cutout
                             : name == "crop_padding"     ? augmentation.crop_padding
                             : name == "rand_augment_ops" ? augmentation.rand_augment_ops
                                                          : augmentation.rand_augment_magnitude;
      number = value.get<std::int64_t>();
    } else if (name == "horizontal_flip" || name == "vertical_flip" || name == "rotate90" ||
               name == "trivial_augment") {
      KILN_CHECK(value.is_boolean(), "augmentation: field '", name, "' must be true or false, got ",
                 value.dump());
      bool& on = name == "horizontal_flip" ? augmentation.horizontal_flip
                 : name == "vertical_flip" ? augmentation.vertical_flip
                 : name == "rotate90"      ? augmentation.rotate90
                                           : augmentation.trivial_augment;
      on = value.get<bool>();
    } else if (name == "brightness" || name == "contrast" || name == "saturation" ||
               name == "min_crop_scale") {
      KILN_CHECK(value.is_number(), "augmentation: field '", name, "' must be a number, got ", value.dump());
      float& number = name == "brightness"   ? augmentation.brightness
                      : name == "contrast"   ? augmentation.contrast
                      : name == "saturation" ? augmentation.saturation
                                             : augmentation.min_crop_scale;
      number = value.get<float>();
    } else {
      fail(
          "augmentation: unknown field '", name,
          "' (known: crop_padding, horizontal_flip, brightness, contrast, saturation, cutout, vertical_flip, "
          "rotate90, min_crop_scale, trivial_augment, rand_augment_ops, rand_augment_magnitude)");
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
    std::vector<float> pixels = to_pixels(data, channels, plane, preprocessing);
    jitter_colour(pixels, channels, plane, augmentation, state);
    from_pixels(pixels, channels, plane, preprocessing, data);
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

  if (augmentation.vertical_flip && kernels::philox_uniform<float>(state, kVerticalFlipDraw) < 0.5f) {
    for (std::int64_t c = 0; c < channels; ++c) {
      float* plane_start = data + c * plane;
      for (std::int64_t y = 0; y < height / 2; ++y)
        std::swap_ranges(plane_start + y * width, plane_start + (y + 1) * width,
                         plane_start + (height - 1 - y) * width);
    }
  }

  if (augmentation.rotate90) {
    KILN_CHECK(height == width, "augment: 'rotate90' needs a square image, got ", height, "x", width);
    rotate_planes(data, channels, height, uniform_index(state, kRotationDraw, 4));
  }

  if (const PolicyDraws policy = policy_draws(augmentation, state); !policy.choices.empty()) {
    // In [0, 1] pixels, where the mean colour is what normalization makes zero.
    std::vector<float> pixels = to_pixels(data, channels, plane, preprocessing);
    for (const AugmentChoice& choice : policy.choices)
      apply_augment_operation(pixels, channels, height, width, choice, policy.table, preprocessing.mean);
    from_pixels(pixels, channels, plane, preprocessing, data);
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
