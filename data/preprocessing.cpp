#include "data/preprocessing.hpp"

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <string>

#include "core/error.hpp"
#include "data/resample.hpp"

namespace kiln::data {

namespace {

const nlohmann::json& field(const nlohmann::json& json, const char* name) {
  KILN_CHECK(json.is_object(), "preprocessing: expected a JSON object, got ", json.type_name());
  KILN_CHECK(json.contains(name), "preprocessing: missing field '", name, "'");
  return json.at(name);
}

std::int64_t integer_field(const nlohmann::json& json, const char* name) {
  const nlohmann::json& value = field(json, name);
  KILN_CHECK(value.is_number_integer(), "preprocessing: field '", name, "' must be an integer, got ",
             value.dump());
  return value.get<std::int64_t>();
}

std::vector<float> numbers_field(const nlohmann::json& json, const char* name) {
  const nlohmann::json& value = field(json, name);
  KILN_CHECK(value.is_array(), "preprocessing: field '", name, "' must be an array of numbers, got ",
             value.dump());
  std::vector<float> numbers;
  for (const nlohmann::json& element : value) {
    KILN_CHECK(element.is_number(), "preprocessing: field '", name, "' must hold numbers, got ",
               value.dump());
    numbers.push_back(element.get<float>());
  }
  return numbers;
}

ResizePolicy resize_field(const nlohmann::json& json) {
  const nlohmann::json& value = field(json, "resize");
  for (const ResizePolicy policy : {ResizePolicy::Stretch, ResizePolicy::ShorterSideThenCenterCrop}) {
    if (value == resize_policy_name(policy)) return policy;
  }
  fail("preprocessing: field 'resize' must be \"stretch\" or \"shorter_side_then_center_crop\", got ",
       value.dump());
}

}  // namespace

std::string_view resize_policy_name(ResizePolicy policy) {
  switch (policy) {
    case ResizePolicy::Stretch:
      return "stretch";
    case ResizePolicy::ShorterSideThenCenterCrop:
      return "shorter_side_then_center_crop";
  }
  return "unknown";
}

void Preprocessing::validate() const {
  KILN_CHECK(channels == 1 || channels == 3, "preprocessing: channels must be 1 or 3, got ", channels);
  KILN_CHECK(height > 0 && width > 0, "preprocessing: height and width must be positive, got ", height, "x",
             width);
  KILN_CHECK(static_cast<std::int64_t>(mean.size()) == channels,
             "preprocessing: 'mean' needs one value per channel (", channels, "), got ", mean.size());
  KILN_CHECK(static_cast<std::int64_t>(std.size()) == channels,
             "preprocessing: 'std' needs one value per channel (", channels, "), got ", std.size());
  for (const float deviation : std) {
    KILN_CHECK(deviation > 0, "preprocessing: every 'std' value must be positive, got ", deviation);
  }
}

SourceWindow Preprocessing::window(const Image& image) const {
  return resize == ResizePolicy::Stretch ? whole_image(image) : centre_crop_window(image, height, width);
}

Tensor Preprocessing::apply(const Image& image) const { return apply(image, window(image)); }

Tensor Preprocessing::apply(const Image& image, const SourceWindow& window) const {
  validate();
  KILN_CHECK(image.channels == 1 || image.channels == 3,
             "preprocessing: images must have 1 or 3 channels, got ", image.channels);
  KILN_CHECK(image.height > 0 && image.width > 0 &&
                 image.pixels.size() == static_cast<std::size_t>(image.height * image.width * image.channels),
             "preprocessing: image of ", image.height, "x", image.width, "x", image.channels, " holds ",
             image.pixels.size(), " bytes");

  // Step 1: resize. [height, width, image.channels], values 0 .. 255.
  const std::vector<float> resized = resample_bilinear(image, window, height, width);

  // Steps 2 and 3: channels and normalization, HWC -> CHW.
  Tensor result = Tensor::empty({channels, height, width});
  float* out = result.data<float>();
  const std::int64_t plane = height * width;
  for (std::int64_t c = 0; c < channels; ++c) {
    const float channel_mean = mean[static_cast<std::size_t>(c)],
                channel_std = std[static_cast<std::size_t>(c)];
    for (std::int64_t p = 0; p < plane; ++p) {
      const float* pixel = &resized[static_cast<std::size_t>(p * image.channels)];
      float value;
      if (image.channels == channels) {
        value = pixel[c];
      } else if (image.channels == 1) {
        value = pixel[0];  // grey into every colour channel
      } else {
        value = luma(pixel[0], pixel[1], pixel[2]);
      }
      out[c * plane + p] = (value / 255.0f - channel_mean) / channel_std;
    }
  }
  return result;
}

nlohmann::json Preprocessing::to_json() const {
  return {{"channels", channels}, {"height", height},
          {"width", width},       {"resize", std::string(resize_policy_name(resize))},
          {"mean", mean},         {"std", std}};
}

Preprocessing Preprocessing::from_json(const nlohmann::json& json) {
  Preprocessing preprocessing;
  preprocessing.channels = integer_field(json, "channels");
  preprocessing.height = integer_field(json, "height");
  preprocessing.width = integer_field(json, "width");
  preprocessing.resize = resize_field(json);
  preprocessing.mean = numbers_field(json, "mean");
  preprocessing.std = numbers_field(json, "std");
  preprocessing.validate();
  return preprocessing;
}

Image Preprocessing::as_seen(const Image& image) const {
  const std::vector<float> values = apply(image).to_vector<float>();
  Image seen{height, width, channels, {}};
  const std::int64_t plane = height * width;
  seen.pixels.resize(static_cast<std::size_t>(plane * channels));
  for (std::int64_t c = 0; c < channels; ++c) {
    const auto k = static_cast<std::size_t>(c);
    for (std::int64_t p = 0; p < plane; ++p) {
      const double v = values[static_cast<std::size_t>(c * plane + p)] * std[k] + mean[k];
      seen.pixels[static_cast<std::size_t>(p * channels + c)] =
          static_cast<std::uint8_t>(std::lround(std::clamp(v, 0.0, 1.0) * 255.0));
    }
  }
  return seen;
}

}  // namespace kiln::data
