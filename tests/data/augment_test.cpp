// Tests for data/augment.hpp: determinism from the Philox state, each operation checked exactly, and the
// resized crop's windows.
#include "data/augment.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <set>
#include <utility>

#include "core/error.hpp"

namespace data_augment_test {

using kiln::Error;
using kiln::Tensor;
using kiln::data::augment;
using kiln::data::Augmentation;
using kiln::data::Preprocessing;
using kiln::data::resized_crop_window;
using kiln::data::ResizePolicy;
using kiln::kernels::PhiloxState;

namespace {

// A preprocessing of `channels` channels whose normalization is the identity on [0, 1] pixel values.
Preprocessing identity(std::int64_t channels, std::int64_t size) {
  return {channels,
          size,
          size,
          ResizePolicy::Stretch,
          std::vector<float>(static_cast<std::size_t>(channels), 0.0f),
          std::vector<float>(static_cast<std::size_t>(channels), 1.0f)};
}

// [channels, size, size] holding 1, 2, 3, ... (all distinct and non-zero), times `scale`.
Tensor counting_image(std::int64_t channels, std::int64_t size, float scale = 1.0f) {
  std::vector<float> values;
  for (std::int64_t i = 0; i < channels * size * size; ++i)
    values.push_back(scale * static_cast<float>(i + 1));
  return Tensor::from_vector(values, {channels, size, size});
}

std::vector<float> augmented(const Tensor& image, const Augmentation& augmentation,
                             const Preprocessing& preprocessing, const PhiloxState& state) {
  Tensor copy = image.clone();
  augment(copy, augmentation, preprocessing, state);
  return copy.to_vector<float>();
}

// Draw 5 decides the flip (see augment.cpp's draw table).
bool flips(const PhiloxState& state) { return kiln::kernels::philox_uniform<float>(state, 5) < 0.5f; }

}  // namespace

TEST_CASE("data/augment: the same state gives the same output, another state another") {
  const Augmentation everything{.crop_padding = 2,
                                .horizontal_flip = true,
                                .brightness = 0.4f,
                                .contrast = 0.4f,
                                .saturation = 0.4f,
                                .cutout = 3};
  const Preprocessing preprocessing{3, 8, 8, ResizePolicy::Stretch, {0.4f, 0.5f, 0.6f}, {0.2f, 0.25f, 0.3f}};
  const Tensor image = counting_image(3, 8, 1.0f / 200.0f);
  const std::vector<float> first = augmented(image, everything, preprocessing, {11, 3, 7});
  CHECK(first == augmented(image, everything, preprocessing, {11, 3, 7}));
  CHECK(first != augmented(image, everything, preprocessing, {11, 3, 9}));
  CHECK(first != augmented(image, everything, preprocessing, {12, 3, 7}));
  CHECK(first != image.to_vector<float>());
}

TEST_CASE("data/augment: nothing switched on leaves the image exactly as it was") {
  const Augmentation nothing;
  CHECK_FALSE(nothing.any());
  CHECK(Augmentation{.cutout = 1}.any());
  const Tensor image = counting_image(3, 4);
  CHECK(augmented(image, nothing, identity(3, 4), {1, 2, 3}) == image.to_vector<float>());
}

TEST_CASE("data/augment: flip reverses every row exactly, about half the time") {
  const Tensor image = counting_image(2, 5);
  const std::vector<float> original = image.to_vector<float>();
  int flipped = 0;
  for (std::uint64_t offset = 0; offset < 200; offset += 2) {
    const PhiloxState state{5, 0, offset};
    const std::vector<float> out = augmented(image, {.horizontal_flip = true}, identity(2, 5), state);
    if (flips(state)) {
      ++flipped;
      for (std::size_t row = 0; row < 10; ++row) {
        for (std::size_t x = 0; x < 5; ++x) CHECK(out[row * 5 + x] == original[row * 5 + (4 - x)]);
      }
    } else {
      CHECK(out == original);
    }
  }
  CHECK(flipped > 30);
  CHECK(flipped < 70);
}

TEST_CASE("data/augment: random crop shifts the content by at most the padding, filling with zero") {
  // Zero in normalized units is the mean colour: with mean 0.5 the padding reads as grey once undone.
  const std::int64_t size = 6, padding = 2;
  const Tensor image = counting_image(2, size);
  const std::vector<float> in = image.to_vector<float>();
  std::set<std::pair<std::int64_t, std::int64_t>> shifts_seen;
  for (std::uint64_t offset = 0; offset < 400; offset += 2) {
    const std::vector<float> out =
        augmented(image, {.crop_padding = padding}, identity(2, size), {8, 0, offset});
    // Find the shift that explains the output: out[y][x] = in[y + dy][x + dx], zero outside.
    int matches = 0;
    for (std::int64_t dy = -padding; dy <= padding; ++dy) {
      for (std::int64_t dx = -padding; dx <= padding; ++dx) {
        bool all = true;
        for (std::int64_t c = 0; c < 2; ++c) {
          for (std::int64_t y = 0; y < size; ++y) {
            for (std::int64_t x = 0; x < size; ++x) {
              const std::int64_t sy = y + dy, sx = x + dx;
              const float expected = sy >= 0 && sy < size && sx >= 0 && sx < size
                                         ? in[static_cast<std::size_t>((c * size + sy) * size + sx)]
                                         : 0.0f;
              all = all && out[static_cast<std::size_t>((c * size + y) * size + x)] == expected;
            }
          }
        }
        if (all) {
          ++matches;
          shifts_seen.insert({dy, dx});
        }
      }
    }
    CHECK(matches == 1);
  }
  CHECK(shifts_seen.size() == 25);  // every shift in [-2, 2]^2 turns up in 200 draws
}

TEST_CASE("data/augment: cutout zeroes a square around a random pixel, clipped at the border") {
  const std::int64_t size = 8, side = 4;
  const Tensor ones = Tensor::ones({3, size, size});
  std::set<std::int64_t> heights_seen;
  for (std::uint64_t offset = 0; offset < 200; offset += 2) {
    const std::vector<float> out = augmented(ones, {.cutout = side}, identity(3, size), {4, 1, offset});
    // The zeros of channel 0 span rows [top, bottom] and columns [left, right] and fill that rectangle.
    std::int64_t top = size, bottom = -1, left = size, right = -1, zeros = 0;
    for (std::int64_t y = 0; y < size; ++y) {
      for (std::int64_t x = 0; x < size; ++x) {
        if (out[static_cast<std::size_t>(y * size + x)] != 0.0f) continue;
        ++zeros;
        top = std::min(top, y), bottom = std::max(bottom, y), left = std::min(left, x),
        right = std::max(right, x);
      }
    }
    const std::int64_t height = bottom - top + 1, width = right - left + 1;
    CHECK(zeros == height * width);
    // Centred on a pixel inside, a side-4 square keeps at least 2 rows and columns and at most 4.
    CHECK(height >= 2);
    CHECK(height <= side);
    CHECK(width >= 2);
    CHECK(width <= side);
    heights_seen.insert(height);
    // Every channel has the same hole; everything else is untouched.
    for (std::int64_t c = 1; c < 3; ++c) {
      for (std::int64_t p = 0; p < size * size; ++p) {
        CHECK(out[static_cast<std::size_t>(c * size * size + p)] == out[static_cast<std::size_t>(p)]);
      }
    }
  }
  CHECK(heights_seen == std::set<std::int64_t>{2, 3, 4});
}

TEST_CASE("data/augment: colour jitter uses one factor per image, in pixel units") {
  SUBCASE("brightness multiplies every pixel by the same factor in [1 - s, 1 + s]") {
    // Normalized with mean 0.5, std 0.25: pixel x is stored as (x - 0.5) / 0.25.
    const Preprocessing preprocessing{
        3, 3, 3, ResizePolicy::Stretch, {0.5f, 0.5f, 0.5f}, {0.25f, 0.25f, 0.25f}};
    const Tensor pixels = counting_image(3, 3, 0.02f);  // 0.02 .. 0.54, below 1 / 1.5 so nothing clips
    std::vector<float> normalized = pixels.to_vector<float>();
    for (float& value : normalized) value = (value - 0.5f) / 0.25f;
    const Tensor image = Tensor::from_vector(normalized, {3, 3, 3});
    std::set<float> factors;
    for (std::uint64_t offset = 0; offset < 20; offset += 2) {
      std::vector<float> out = augmented(image, {.brightness = 0.5f}, preprocessing, {3, 0, offset});
      const std::vector<float> in = pixels.to_vector<float>();
      const float factor = (out[0] * 0.25f + 0.5f) / in[0];
      CHECK(factor >= 0.5f);
      CHECK(factor <= 1.5f);
      for (std::size_t i = 0; i < in.size(); ++i)
        CHECK(out[i] * 0.25f + 0.5f == doctest::Approx(factor * in[i]));
      factors.insert(factor);
    }
    CHECK(factors.size() > 5);
  }
  SUBCASE("contrast scales about the mean luminance, which it keeps") {
    // A grey image (its luminance is its value) with pixels in [0.3, 0.7], so nothing clips.
    std::vector<float> values;
    for (int i = 0; i < 16; ++i) values.push_back(0.3f + 0.4f * static_cast<float>(i % 7) / 6.0f);
    const Tensor grey = Tensor::from_vector(values, {1, 4, 4});
    const std::vector<float> in = grey.to_vector<float>();
    double total = 0;
    for (const float value : in) total += value;
    const auto mean = static_cast<float>(total / static_cast<double>(in.size()));
    const std::vector<float> out = augmented(grey, {.contrast = 0.5f}, identity(1, 4), {6, 0, 0});
    const float k = (out[0] - mean) / (in[0] - mean);
    CHECK(k >= 0.5f);
    CHECK(k <= 1.5f);
    CHECK(k != doctest::Approx(1.0f));
    double out_total = 0;
    for (std::size_t i = 0; i < in.size(); ++i) {
      CHECK(out[i] == doctest::Approx(mean + k * (in[i] - mean)));
      out_total += out[i];
    }
    CHECK(out_total / static_cast<double>(in.size()) == doctest::Approx(mean));
  }
  SUBCASE("saturation leaves grey pixels and each pixel's luminance alone, and grey images untouched") {
    // Pixel 0 is grey (0.4, 0.4, 0.4); pixel 1 is coloured (0.6, 0.3, 0.2).
    const Tensor image =
        Tensor::from_vector(std::vector<float>{0.4f, 0.6f, 0.4f, 0.3f, 0.4f, 0.2f}, {3, 1, 2});
    const std::vector<float> out = augmented(image, {.saturation = 0.8f}, identity(3, 1), {2, 0, 0});
    for (const std::size_t c : {0u, 1u, 2u}) CHECK(out[c * 2] == doctest::Approx(0.4f));
    const float luminance_in = 0.299f * 0.6f + 0.587f * 0.3f + 0.114f * 0.2f;
    CHECK(0.299f * out[1] + 0.587f * out[3] + 0.114f * out[5] == doctest::Approx(luminance_in));
    CHECK(out[1] != doctest::Approx(0.6f));
    const Tensor grey = Tensor::from_vector(std::vector<float>{0.2f, 0.7f}, {1, 1, 2});
    CHECK(augmented(grey, {.saturation = 0.8f}, identity(1, 1), {2, 0, 0}) == grey.to_vector<float>());
  }
  SUBCASE("results are clamped to [0, 1] pixels") {
    const Tensor bright = Tensor::full({1, 2, 2}, 0.9);
    for (std::uint64_t offset = 0; offset < 40; offset += 2) {
      for (const float value : augmented(bright, {.brightness = 1.0f}, identity(1, 2), {1, 0, offset})) {
        CHECK(value <= 1.0f);
        CHECK(value >= 0.0f);
      }
    }
  }
}

TEST_CASE("data/augment: vertical flip reverses the rows of every channel exactly, about half the time") {
  const std::int64_t height = 5, width = 3;
  std::vector<float> counting(2 * height * width);
  for (std::size_t i = 0; i < counting.size(); ++i) counting[i] = static_cast<float>(i + 1);
  const Tensor image = Tensor::from_vector(counting, {2, height, width});
  const std::vector<float> in = image.to_vector<float>();
  const Preprocessing preprocessing{2, height, width, ResizePolicy::Stretch, {0.0f, 0.0f}, {1.0f, 1.0f}};
  int flipped = 0;
  for (std::uint64_t offset = 0; offset < 400; offset += 4) {
    const std::vector<float> out = augmented(image, {.vertical_flip = true}, preprocessing, {5, 0, offset});
    if (out == in) continue;
    ++flipped;
    for (std::int64_t c = 0; c < 2; ++c) {
      for (std::int64_t y = 0; y < height; ++y) {
        for (std::int64_t x = 0; x < width; ++x) {
          CHECK(out[static_cast<std::size_t>((c * height + y) * width + x)] ==
                in[static_cast<std::size_t>((c * height + (height - 1 - y)) * width + x)]);
        }
      }
    }
  }
  CHECK(flipped > 30);
  CHECK(flipped < 70);
}

TEST_CASE("data/augment: rotation turns square images by 0, 90, 180 and 270 degrees, each about a quarter") {
  // One quarter turn counterclockwise, written out: the top row becomes the left column, read upwards.
  //   1 2 3      3 6 9
  //   4 5 6  ->  2 5 8
  //   7 8 9      1 4 7
  const std::vector<float> in{1, 2, 3, 4, 5, 6, 7, 8, 9};
  const std::vector<std::vector<float>> turns{{1, 2, 3, 4, 5, 6, 7, 8, 9},
                                              {3, 6, 9, 2, 5, 8, 1, 4, 7},
                                              {9, 8, 7, 6, 5, 4, 3, 2, 1},
                                              {7, 4, 1, 8, 5, 2, 9, 6, 3}};
  const Tensor image = Tensor::from_vector(in, {1, 3, 3});
  std::vector<int> seen(4, 0);
  for (std::uint64_t offset = 0; offset < 800; offset += 4) {
    const std::vector<float> out = augmented(image, {.rotate90 = true}, identity(1, 3), {7, 2, offset});
    const auto turn = std::find(turns.begin(), turns.end(), out);
    REQUIRE(turn != turns.end());
    ++seen[static_cast<std::size_t>(turn - turns.begin())];
  }
  for (const int count : seen) {
    CHECK(count > 25);  // 200 draws, 50 expected each
    CHECK(count < 75);
  }
  // Every channel turns alike.
  const Tensor two = Tensor::from_vector(
      std::vector<float>{1, 2, 3, 4, 5, 6, 7, 8, 9, 1, 2, 3, 4, 5, 6, 7, 8, 9}, {2, 3, 3});
  for (std::uint64_t offset = 0; offset < 40; offset += 4) {
    const std::vector<float> out = augmented(two, {.rotate90 = true}, identity(2, 3), {7, 2, offset});
    CHECK(std::vector<float>(out.begin(), out.begin() + 9) == std::vector<float>(out.begin() + 9, out.end()));
  }
}

TEST_CASE("data/augment: both flips and rotation reach all eight symmetries of a square") {
  const Tensor image = counting_image(1, 3);
  std::set<std::vector<float>> outputs;
  for (std::uint64_t offset = 0; offset < 800; offset += 4) {
    outputs.insert(augmented(image, {.horizontal_flip = true, .vertical_flip = true, .rotate90 = true},
                             identity(1, 3), {3, 1, offset}));
  }
  CHECK(outputs.size() == 8);
}

TEST_CASE("data/augment: rotation refuses a non-square input, by name") {
  const Preprocessing wide{3, 4, 6, ResizePolicy::Stretch, {0.5f, 0.5f, 0.5f}, {0.25f, 0.25f, 0.25f}};
  CHECK_THROWS_WITH_AS(Augmentation{.rotate90 = true}.validate_for(wide),
                       doctest::Contains("needs a square input; the input is 4x6"), Error);
  CHECK_NOTHROW(Augmentation{.vertical_flip = true}.validate_for(wide));
  CHECK_NOTHROW(Augmentation{.rotate90 = true}.validate_for(identity(3, 4)));
  Tensor image = Tensor::zeros({3, 4, 6});
  CHECK_THROWS_WITH_AS(augment(image, {.rotate90 = true}, wide, {}),
                       doctest::Contains("'rotate90' needs a square image, got 4x6"), Error);
}

TEST_CASE("data/augment: the resized crop's window lies inside the preprocessing's, scaled and reshaped") {
  const kiln::data::SourceWindow window{.top = 10, .left = 20, .height = 60, .width = 90};
  SUBCASE("off (min_crop_scale 1) it is the window itself") {
    const kiln::data::SourceWindow same = resized_crop_window(window, {.horizontal_flip = true}, {1, 2, 3});
    CHECK(same.top == window.top);
    CHECK(same.left == window.left);
    CHECK(same.height == window.height);
    CHECK(same.width == window.width);
  }
  SUBCASE("on, its area a fraction in [min, 1] and its shape the window's within a factor of 4/3") {
    const Augmentation augmentation{.min_crop_scale = 0.25f};
    std::set<double> tops, scales;
    double smallest = 1, largest = 0;
    for (std::uint64_t offset = 0; offset < 2000; offset += 4) {
      const kiln::data::SourceWindow crop = resized_crop_window(window, augmentation, {9, 4, offset});
      CHECK(crop.top >= window.top);
      CHECK(crop.left >= window.left);
      CHECK(crop.top + crop.height <= window.top + window.height + 1e-9);
      CHECK(crop.left + crop.width <= window.left + window.width + 1e-9);
      const double scale = crop.height * crop.width / (window.height * window.width);
      const double shape = (crop.width / crop.height) / (window.width / window.height);
      CHECK(scale <= 1.0 + 1e-12);
      const bool clamped = crop.height == window.height || crop.width == window.width;
      if (!clamped) {
        // Unclamped, the draw's own area and shape; a clamped side cuts the area, never below 3/4 of it.
        CHECK(scale >= 0.25 - 1e-12);
        CHECK(shape >= 0.75 - 1e-9);
        CHECK(shape <= 4.0 / 3.0 + 1e-9);
      } else {
        CHECK(scale >= 0.25 * std::sqrt(0.75) - 1e-12);
      }
      smallest = std::min(smallest, scale), largest = std::max(largest, scale);
      tops.insert(crop.top);
      scales.insert(scale);
    }
    CHECK(smallest < 0.3);  // the range is used, not one corner of it
    CHECK(largest > 0.9);
    CHECK(tops.size() > 400);
  }
  SUBCASE("the same state gives the same window, another state another") {
    const Augmentation augmentation{.min_crop_scale = 0.5f};
    const auto a = resized_crop_window(window, augmentation, {4, 4, 8});
    const auto b = resized_crop_window(window, augmentation, {4, 4, 8});
    const auto c = resized_crop_window(window, augmentation, {4, 4, 12});
    CHECK((a.top == b.top && a.left == b.left && a.height == b.height && a.width == b.width));
    CHECK_FALSE((a.top == c.top && a.left == c.left && a.height == c.height && a.width == c.width));
  }
}

TEST_CASE("data/augment: a run of the first operations alone draws two blocks a sample, as it always did") {
  using kiln::data::draws_per_sample;
  const Augmentation first{.crop_padding = 4,
                           .horizontal_flip = true,
                           .brightness = 0.2f,
                           .contrast = 0.2f,
                           .saturation = 0.2f,
                           .cutout = 8};
  CHECK(draws_per_sample(Augmentation{}) == 8);
  CHECK(draws_per_sample(first) == 8);
  CHECK(draws_per_sample({.vertical_flip = true}) == kiln::data::kAugmentationDraws);
  CHECK(draws_per_sample({.rotate90 = true}) == kiln::data::kAugmentationDraws);
  CHECK(draws_per_sample({.min_crop_scale = 0.5f}) == kiln::data::kAugmentationDraws);
  // The first operations' draws do not move when a later one is switched on beside them: a horizontal flip
  // decided by draw 5 stays decided by it.
  const Tensor image = counting_image(1, 4);
  for (std::uint64_t offset = 0; offset < 80; offset += 4) {
    const PhiloxState state{2, 0, offset};
    const std::vector<float> alone = augmented(image, {.horizontal_flip = true}, identity(1, 4), state);
    CHECK((alone != image.to_vector<float>()) == flips(state));
  }
}

TEST_CASE("data/augment: JSON round trip, defaults for missing fields, errors naming the field") {
  const Augmentation original{.crop_padding = 4,
                              .horizontal_flip = true,
                              .brightness = 0.25f,
                              .contrast = 0.5f,
                              .saturation = 0.125f,
                              .cutout = 8,
                              .vertical_flip = true,
                              .rotate90 = true,
                              .min_crop_scale = 0.375f};
  CHECK(Augmentation::from_json(original.to_json()) == original);
  CHECK(Augmentation::from_json(nlohmann::json::parse(original.to_json().dump())) == original);
  CHECK(Augmentation::from_json(nlohmann::json::object()) == Augmentation{});
  CHECK(Augmentation::from_json({{"horizontal_flip", true}}) == Augmentation{.horizontal_flip = true});
  CHECK_THROWS_WITH_AS(Augmentation::from_json({{"flip", true}}), doctest::Contains("unknown field 'flip'"),
                       Error);
  CHECK_THROWS_WITH_AS(Augmentation::from_json({{"cutout", 1.5}}),
                       doctest::Contains("field 'cutout' must be an integer"), Error);
  CHECK_THROWS_WITH_AS(Augmentation::from_json({{"brightness", 2.0}}),
                       doctest::Contains("'brightness' must be in [0, 1]"), Error);
  CHECK_THROWS_WITH_AS(Augmentation::from_json({{"crop_padding", -1}}),
                       doctest::Contains("'crop_padding' must be >= 0"), Error);
  CHECK_THROWS_WITH_AS(Augmentation::from_json({{"min_crop_scale", 0.0}}),
                       doctest::Contains("'min_crop_scale' must be in (0, 1]"), Error);
  CHECK_THROWS_WITH_AS(Augmentation::from_json({{"min_crop_scale", 1.5}}),
                       doctest::Contains("'min_crop_scale' must be in (0, 1]"), Error);
  CHECK_THROWS_WITH_AS(Augmentation::from_json({{"rotate90", 1}}),
                       doctest::Contains("field 'rotate90' must be true or false"), Error);
  // A checkpoint written before the later operations existed has none of their fields: they are off.
  const Augmentation old_style = Augmentation::from_json({{"crop_padding", 4},
                                                          {"horizontal_flip", true},
                                                          {"brightness", 0},
                                                          {"contrast", 0},
                                                          {"saturation", 0},
                                                          {"cutout", 0}});
  CHECK(old_style == Augmentation{.crop_padding = 4, .horizontal_flip = true});
  CHECK_FALSE(old_style.resized_crop());
}

TEST_CASE("data/augment: rejects a tensor that is not the preprocessing's float32 [C, H, W]") {
  Tensor flat = Tensor::zeros({3, 16});
  CHECK_THROWS_WITH_AS(augment(flat, {.horizontal_flip = true}, identity(3, 4), {}),
                       doctest::Contains("expected a contiguous float32 [C, H, W] image"), Error);
  Tensor grey = Tensor::zeros({1, 4, 4});
  CHECK_THROWS_WITH_AS(augment(grey, {.horizontal_flip = true}, identity(3, 4), {}),
                       doctest::Contains("does not match the preprocessing's 3 channels"), Error);
}

}  // namespace data_augment_test
