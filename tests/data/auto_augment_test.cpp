// Tests for data/auto_augment.hpp: both strength tables' ends, each operation against what it must do to a
// small image worked out by hand, and, through augment(), TrivialAugment's and RandAugment's draws: every
// operation and level about equally often, the same state the same image, the other operations' draws
// untouched, and RandAugment's operations applied in turn.
#include "data/auto_augment.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "core/generator.hpp"
#include "data/augment.hpp"
#include "data/image.hpp"

namespace data_auto_augment_test {

using kiln::data::apply_augment_operation;
using kiln::data::augment_magnitude;
using kiln::data::AugmentChoice;
using kiln::data::AugmentOperation;
using kiln::data::kAugmentLevels;
using kiln::data::kAugmentOperations;
using kiln::data::StrengthTable;

namespace {

constexpr float kFill = 0.25f;

// [channels, height, width] with distinct values in (0, 1): pixel (c, y, x) = (1 + c * H * W + y * W + x) /
// (C * H * W + 2).
std::vector<float> distinct_image(std::int64_t channels, std::int64_t height, std::int64_t width) {
  std::vector<float> pixels;
  const auto count = static_cast<float>(channels * height * width + 2);
  for (std::int64_t i = 0; i < channels * height * width; ++i)
    pixels.push_back(static_cast<float>(i + 1) / count);
  return pixels;
}

std::vector<float> applied(std::vector<float> pixels, std::int64_t channels, std::int64_t height,
                           std::int64_t width, AugmentChoice choice,
                           StrengthTable table = StrengthTable::Wide) {
  apply_augment_operation(pixels, channels, height, width, choice, table,
                          std::vector<float>(static_cast<std::size_t>(channels), kFill));
  return pixels;
}

float at(const std::vector<float>& pixels, std::int64_t height, std::int64_t width, std::int64_t c,
         std::int64_t y, std::int64_t x) {
  return pixels[static_cast<std::size_t>((c * height + y) * width + x)];
}

}  // namespace

TEST_CASE("trivial augment: the strengths run over torchvision's TrivialAugmentWide table") {
  const auto magnitude = [](AugmentOperation operation, int level, bool negative = false) {
    return augment_magnitude({operation, level, negative}, StrengthTable::Wide, 32, 32);
  };
  for (const AugmentOperation operation :
       {AugmentOperation::ShearX, AugmentOperation::ShearY, AugmentOperation::Brightness,
        AugmentOperation::Color, AugmentOperation::Contrast, AugmentOperation::Sharpness}) {
    CHECK(magnitude(operation, 0) == 0.0);
    CHECK(magnitude(operation, 30) == doctest::Approx(0.99));
    CHECK(magnitude(operation, 30, true) == doctest::Approx(-0.99));
    CHECK(magnitude(operation, 10) == doctest::Approx(0.33));
  }
  CHECK(magnitude(AugmentOperation::TranslateX, 30) == doctest::Approx(32.0));
  CHECK(magnitude(AugmentOperation::TranslateY, 15, true) == doctest::Approx(-16.0));
  CHECK(magnitude(AugmentOperation::Rotate, 30) == doctest::Approx(135.0));
  CHECK(magnitude(AugmentOperation::Rotate, 20, true) == doctest::Approx(-90.0));
  // Posterize keeps 8 bits at level 0 down to 2 at level 30, by a sixth of the range a bit; no sign.
  CHECK(magnitude(AugmentOperation::Posterize, 0) == 8.0);
  CHECK(magnitude(AugmentOperation::Posterize, 2) == 8.0);
  CHECK(magnitude(AugmentOperation::Posterize, 3) == 7.0);
  CHECK(magnitude(AugmentOperation::Posterize, 30, true) == 2.0);
  // Solarize's threshold falls from 1 (only white inverts) to 0 (everything does); no sign.
  CHECK(magnitude(AugmentOperation::Solarize, 0) == 1.0);
  CHECK(magnitude(AugmentOperation::Solarize, 30, true) == 0.0);
  for (const AugmentOperation operation :
       {AugmentOperation::Identity, AugmentOperation::AutoContrast, AugmentOperation::Equalize}) {
    CHECK(magnitude(operation, 17, true) == 0.0);
  }
  CHECK_THROWS_AS(magnitude(AugmentOperation::Rotate, kAugmentLevels), kiln::Error);
  CHECK_THROWS_AS(magnitude(AugmentOperation::Rotate, -1), kiln::Error);
}

TEST_CASE(
    "trivial augment: identity, and level 0 of the shears, shifts, rotation and factors, change nothing") {
  const std::vector<float> image = distinct_image(3, 5, 7);
  CHECK(applied(image, 3, 5, 7, {AugmentOperation::Identity, 30, true}) == image);
  for (const AugmentOperation operation :
       {AugmentOperation::ShearX, AugmentOperation::ShearY, AugmentOperation::TranslateX,
        AugmentOperation::TranslateY, AugmentOperation::Rotate, AugmentOperation::Brightness,
        AugmentOperation::Color, AugmentOperation::Contrast, AugmentOperation::Sharpness}) {
    INFO(kiln::data::augment_operation_name(operation));
    const std::vector<float> result = applied(image, 3, 5, 7, {operation, 0, true});
    REQUIRE(result.size() == image.size());
    for (std::size_t i = 0; i < image.size(); ++i)
      CHECK(result[i] == doctest::Approx(image[i]).epsilon(1e-6));
  }
}

TEST_CASE("trivial augment: a translation moves the content by whole pixels and fills what it uncovers") {
  const std::int64_t H = 4, W = 6;
  const std::vector<float> image = distinct_image(2, H, W);
  // Level 3: 3.2 pixels, truncated to 3; negative moves left (up).
  const std::vector<float> right = applied(image, 2, H, W, {AugmentOperation::TranslateX, 3, false});
  const std::vector<float> up = applied(image, 2, H, W, {AugmentOperation::TranslateY, 3, true});
  for (std::int64_t c = 0; c < 2; ++c) {
    for (std::int64_t y = 0; y < H; ++y) {
      for (std::int64_t x = 0; x < W; ++x) {
        CHECK(at(right, H, W, c, y, x) == (x >= 3 ? at(image, H, W, c, y, x - 3) : kFill));
        CHECK(at(up, H, W, c, y, x) == (y + 3 < H ? at(image, H, W, c, y + 3, x) : kFill));
      }
    }
  }
  // 32 pixels (level 30) leave nothing of an image narrower than that.
  for (const float value : applied(image, 2, H, W, {AugmentOperation::TranslateX, 30, false}))
    CHECK(value == kFill);
}

TEST_CASE("trivial augment: 90 degrees is a quarter turn counterclockwise; 180 a half turn") {
  const std::int64_t N = 5;
  const std::vector<float> image = distinct_image(3, N, N);
  // Level 20 of 30: 90 degrees.
  const std::vector<float> quarter = applied(image, 3, N, N, {AugmentOperation::Rotate, 20, false});
  const std::vector<float> back = applied(image, 3, N, N, {AugmentOperation::Rotate, 20, true});
  for (std::int64_t c = 0; c < 3; ++c) {
    for (std::int64_t y = 0; y < N; ++y) {
      for (std::int64_t x = 0; x < N; ++x) {
        // Counterclockwise: the top-right corner comes to the top left; clockwise: the bottom-left.
        CHECK(at(quarter, N, N, c, y, x) == at(image, N, N, c, x, N - 1 - y));
        CHECK(at(back, N, N, c, y, x) == at(image, N, N, c, N - 1 - x, y));
      }
    }
  }
  // 135 degrees of a square: its corners come from outside it.
  const std::vector<float> turned = applied(image, 3, N, N, {AugmentOperation::Rotate, 30, false});
  CHECK(at(turned, N, N, 0, 0, 0) == kFill);
  CHECK(at(turned, N, N, 2, N - 1, N - 1) == kFill);
  CHECK(at(turned, N, N, 1, N / 2, N / 2) == at(image, N, N, 1, N / 2, N / 2));  // the centre stays
}

TEST_CASE("trivial augment: a shear slides each row (column) by its distance from the top (left) edge") {
  const std::int64_t H = 6, W = 8;
  const std::vector<float> image = distinct_image(1, H, W);
  const double s = 0.99;  // level 30
  const std::vector<float> sheared_x = applied(image, 1, H, W, {AugmentOperation::ShearX, 30, false});
  const std::vector<float> sheared_y = applied(image, 1, H, W, {AugmentOperation::ShearY, 30, true});
  for (std::int64_t y = 0; y < H; ++y) {
    for (std::int64_t x = 0; x < W; ++x) {
      // Pixel centres: (x + 1/2, y + 1/2) takes the source under (x + 1/2 + s (y + 1/2), y + 1/2).
      const auto from_x = static_cast<std::int64_t>(std::floor(x + 0.5 + s * (y + 0.5)));
      CHECK(at(sheared_x, H, W, 0, y, x) == (from_x < W ? at(image, H, W, 0, y, from_x) : kFill));
      const auto from_y = static_cast<std::int64_t>(std::floor(y + 0.5 - s * (x + 0.5)));
      CHECK(at(sheared_y, H, W, 0, y, x) == (from_y >= 0 ? at(image, H, W, 0, from_y, x) : kFill));
    }
  }
  // The top row slides by less than half a pixel: it stays.
  for (std::int64_t x = 0; x < W; ++x) CHECK(at(sheared_x, H, W, 0, 0, x) == at(image, H, W, 0, 0, x));
}

TEST_CASE("trivial augment: brightness, color and contrast blend with black, the grey pixel, the mean grey") {
  const std::int64_t H = 2, W = 3, plane = H * W;
  const std::vector<float> image = distinct_image(3, H, W);
  const double f = 1.0 + 0.99 * 12 / 30;  // level 12, positive
  const std::vector<float> brighter = applied(image, 3, H, W, {AugmentOperation::Brightness, 12, false});
  const std::vector<float> colourful = applied(image, 3, H, W, {AugmentOperation::Color, 12, false});
  const std::vector<float> flatter = applied(image, 3, H, W, {AugmentOperation::Contrast, 30, true});
  double mean_grey = 0;
  for (std::int64_t p = 0; p < plane; ++p)
    mean_grey +=
        kiln::data::luma(image[p], image[plane + p], image[2 * plane + p]) / static_cast<double>(plane);
  const double g = 1.0 - 0.99;  // level 30, negative: nearly all grey
  for (std::int64_t c = 0; c < 3; ++c) {
    for (std::int64_t p = 0; p < plane; ++p) {
      const auto i = static_cast<std::size_t>(c * plane + p);
      const double x = image[i];
      const double grey = kiln::data::luma(image[p], image[plane + p], image[2 * plane + p]);
      CHECK(brighter[i] == doctest::Approx(std::min(1.0, f * x)).epsilon(1e-6));
      CHECK(colourful[i] == doctest::Approx(std::clamp(grey + f * (x - grey), 0.0, 1.0)).epsilon(1e-6));
      CHECK(flatter[i] == doctest::Approx(mean_grey + g * (x - mean_grey)).epsilon(1e-6));
    }
  }
  // A grey image has no colour to change.
  const std::vector<float> grey_image = distinct_image(1, H, W);
  CHECK(applied(grey_image, 1, H, W, {AugmentOperation::Color, 30, false}) == grey_image);
}

TEST_CASE("trivial augment: sharpness pushes each interior pixel away from its 3x3 smoothing; borders stay") {
  const std::int64_t H = 4, W = 5;
  std::vector<float> image(static_cast<std::size_t>(H * W), 0.5f);
  image[static_cast<std::size_t>(1 * W + 2)] = 0.6f;  // one brighter pixel inside
  const double f = 1.0 + 0.99 * 10 / 30;
  const std::vector<float> sharper = applied(image, 1, H, W, {AugmentOperation::Sharpness, 10, false});
  for (std::int64_t y = 0; y < H; ++y) {
    for (std::int64_t x = 0; x < W; ++x) {
      const double original = at(image, H, W, 0, y, x);
      double expected = original;
      if (y > 0 && y < H - 1 && x > 0 && x < W - 1) {
        // [1 1 1; 1 5 1; 1 1 1] / 13: the pixel itself five times, each neighbour once.
        double sum = 5 * original;
        for (std::int64_t dy = -1; dy <= 1; ++dy)
          for (std::int64_t dx = -1; dx <= 1; ++dx)
            if (dy != 0 || dx != 0) sum += at(image, H, W, 0, y + dy, x + dx);
        const double smooth = sum / 13;
        expected = smooth + f * (original - smooth);
      }
      CHECK(at(sharper, H, W, 0, y, x) == doctest::Approx(expected).epsilon(1e-6));
    }
  }
  CHECK(at(sharper, H, W, 0, 1, 2) > 0.6f);  // the bright pixel brighter
  CHECK(at(sharper, H, W, 0, 1, 1) < 0.5f);  // its neighbours darker
}

TEST_CASE("trivial augment: posterize keeps the top bits of each 8-bit value; solarize inverts the bright") {
  const std::vector<float> values{0.0f, 63.0f / 255, 64.0f / 255, 200.0f / 255, 1.0f, 100.4f / 255};
  const std::vector<float> two_bits = applied(values, 1, 1, 6, {AugmentOperation::Posterize, 30, true});
  const std::vector<float> expected_two{0.0f, 0.0f, 64.0f / 255, 192.0f / 255, 192.0f / 255, 64.0f / 255};
  CHECK(two_bits == expected_two);
  // Level 15: 8 - round(3) = 5 bits, multiples of 8.
  const std::vector<float> five_bits = applied(values, 1, 1, 6, {AugmentOperation::Posterize, 15, false});
  for (const float value : five_bits) CHECK(std::lround(value * 255) % 8 == 0);
  CHECK(five_bits[3] == 200.0f / 255);
  CHECK(five_bits[5] == 96.0f / 255);  // 100.4 rounds to 100, whose top five bits are 96

  // Level 10: the threshold is 2/3.
  const std::vector<float> solarized = applied(values, 1, 1, 6, {AugmentOperation::Solarize, 10, true});
  for (std::size_t i = 0; i < values.size(); ++i)
    CHECK(solarized[i] == (values[i] >= 2.0f / 3 ? 1.0f - values[i] : values[i]));
  // Level 0 inverts only white.
  const std::vector<float> only_white = applied(values, 1, 1, 6, {AugmentOperation::Solarize, 0, false});
  CHECK(only_white[4] == 0.0f);
  CHECK(only_white[3] == values[3]);
}

TEST_CASE("trivial augment: autocontrast stretches each channel to [0, 1]; a flat channel stays") {
  std::vector<float> image{0.2f, 0.4f, 0.6f, /* the second channel, flat: */ 0.3f, 0.3f, 0.3f};
  const std::vector<float> stretched = applied(image, 2, 1, 3, {AugmentOperation::AutoContrast, 7, true});
  CHECK(stretched[0] == 0.0f);
  CHECK(stretched[1] == doctest::Approx(0.5f));
  CHECK(stretched[2] == 1.0f);
  CHECK(stretched[3] == 0.3f);
  CHECK(stretched[5] == 0.3f);
}

TEST_CASE("trivial augment: equalize spreads each channel's 8-bit levels by their counts, as PIL does") {
  // 600 pixels: 300 at level 10, 200 at level 100, 100 at level 250. The pixels not at the highest level
  // present: 500; step = 500 / 255 = 1 (rounded down); level v maps to (the pixels below v + 0) / 1,
  // clamped to 255: 10 -> 0, 100 -> min(300, 255) = 255, 250 -> 255.
  std::vector<float> image;
  for (int i = 0; i < 300; ++i) image.push_back(10.0f / 255);
  for (int i = 0; i < 200; ++i) image.push_back(100.0f / 255);
  for (int i = 0; i < 100; ++i) image.push_back(250.0f / 255);
  const std::vector<float> equalized = applied(image, 1, 1, 600, {AugmentOperation::Equalize, 0, false});
  CHECK(equalized[0] == 0.0f);
  CHECK(equalized[300] == 1.0f);
  CHECK(equalized[599] == 1.0f);

  // 1,100 pixels: 510 at level 0, 510 at 128, 80 at 255: step = 1020 / 255 = 4; 0 -> (0 + 2) / 4 = 0,
  // 128 -> (510 + 2) / 4 = 128, 255 -> (1020 + 2) / 4 = 255.
  std::vector<float> second;
  for (int i = 0; i < 510; ++i) second.push_back(0.0f);
  for (int i = 0; i < 510; ++i) second.push_back(128.0f / 255);
  for (int i = 0; i < 80; ++i) second.push_back(1.0f);
  const std::vector<float> spread = applied(second, 1, 1, 1100, {AugmentOperation::Equalize, 0, false});
  CHECK(spread[0] == 0.0f);
  CHECK(spread[510] == 128.0f / 255);
  CHECK(spread[1099] == 1.0f);

  // One level, or too few pixels below the top one for a step, is left as it was.
  const std::vector<float> flat(50, 0.4f);
  CHECK(applied(flat, 1, 5, 10, {AugmentOperation::Equalize, 0, false}) == flat);
  const std::vector<float> few = distinct_image(1, 4, 4);
  CHECK(applied(few, 1, 4, 4, {AugmentOperation::Equalize, 0, false}) == few);
}

TEST_CASE("trivial augment: through augment(), every operation and level about equally often, reproducibly") {
  using kiln::data::Augmentation;
  const kiln::data::Preprocessing preprocessing{
      3, 8, 8, kiln::data::ResizePolicy::Stretch, {0.5f, 0.4f, 0.3f}, {0.2f, 0.25f, 0.3f}};
  const Augmentation trivial{.trivial_augment = true};
  CHECK(trivial.any());
  CHECK(kiln::data::draws_per_sample(trivial) == kiln::data::kAugmentationDraws);
  kiln::Generator generator(4);
  const kiln::Tensor image = kiln::Tensor::randn({3, 8, 8}, kiln::DType::Float32, &generator);
  // Each sample's draws 14 (the operation) and 15 (level and sign), as augment.cpp reads them.
  std::map<int, int> operations;
  std::set<int> levels;
  int negative = 0, changed = 0;
  const int samples = 2800;
  for (int sample = 0; sample < samples; ++sample) {
    const kiln::kernels::PhiloxState state{.seed = 9, .stream = static_cast<std::uint64_t>(sample)};
    const int operation = std::min<int>(kAugmentOperations - 1,
                                        static_cast<int>(kiln::kernels::philox_uniform<float>(state, 14) *
                                                         static_cast<float>(kAugmentOperations)));
    const int level_and_sign = std::min<int>(
        2 * kAugmentLevels - 1, static_cast<int>(kiln::kernels::philox_uniform<float>(state, 15) *
                                                 static_cast<float>(2 * kAugmentLevels)));
    ++operations[operation];
    levels.insert(level_and_sign % kAugmentLevels);
    negative += level_and_sign >= kAugmentLevels;

    kiln::Tensor once = image.clone(), twice = image.clone();
    kiln::data::augment(once, trivial, preprocessing, state);
    kiln::data::augment(twice, trivial, preprocessing, state);
    CHECK(once.to_vector<float>() == twice.to_vector<float>());
    changed += once.to_vector<float>() != image.to_vector<float>();
  }
  REQUIRE(operations.size() == kAugmentOperations);
  for (const auto& [operation, count] : operations)
    CHECK(std::abs(count - samples / kAugmentOperations) < 60);
  CHECK(levels.size() == kAugmentLevels);
  CHECK(std::abs(negative - samples / 2) < 120);
  CHECK(changed > samples / 2);  // identity and level 0 leave some alone; most change
}

TEST_CASE("trivial augment: a run that adds it draws its other operations as before, and JSON keeps it") {
  using kiln::data::Augmentation;
  const kiln::data::Preprocessing preprocessing{1, 6, 6, kiln::data::ResizePolicy::Stretch, {0.5f}, {0.25f}};
  const Augmentation flips{.horizontal_flip = true, .vertical_flip = true, .rotate90 = true};
  Augmentation with_trivial = flips;
  with_trivial.trivial_augment = true;
  CHECK(kiln::data::draws_per_sample(flips) == kiln::data::draws_per_sample(with_trivial));
  // The identity operation (draw 14 below 1/14) leaves the flips' and turns' result as it was.
  kiln::Generator generator(2);
  const kiln::Tensor image = kiln::Tensor::randn({1, 6, 6}, kiln::DType::Float32, &generator);
  int identities = 0;
  for (std::uint64_t sample = 0; sample < 200; ++sample) {
    const kiln::kernels::PhiloxState state{.seed = 3, .stream = sample};
    if (kiln::kernels::philox_uniform<float>(state, 14) * kAugmentOperations >= 1.0f) continue;
    ++identities;
    kiln::Tensor plain = image.clone(), trivial = image.clone();
    kiln::data::augment(plain, flips, preprocessing, state);
    kiln::data::augment(trivial, with_trivial, preprocessing, state);
    const std::vector<float> a = plain.to_vector<float>(), b = trivial.to_vector<float>();
    for (std::size_t i = 0; i < a.size(); ++i) CHECK(b[i] == doctest::Approx(a[i]).epsilon(1e-6));
  }
  CHECK(identities > 5);

  CHECK(Augmentation::from_json(with_trivial.to_json()) == with_trivial);
  CHECK(Augmentation::from_json(nlohmann::json{{"crop_padding", 2}}).trivial_augment == false);
  CHECK_THROWS_WITH_AS(Augmentation::from_json(nlohmann::json{{"trivial_augment", 1}}),
                       doctest::Contains("'trivial_augment' must be true or false"), kiln::Error);
}

TEST_CASE("rand augment: the standard table's milder strengths, its shifts relative to the image") {
  const auto magnitude = [](AugmentOperation operation, int level, bool negative = false) {
    return augment_magnitude({operation, level, negative}, StrengthTable::Standard, 32,
                             64);  // 32 high, 64 wide
  };
  CHECK(magnitude(AugmentOperation::ShearX, 30) == doctest::Approx(0.3));
  CHECK(magnitude(AugmentOperation::ShearY, 9, true) == doctest::Approx(-0.09));
  CHECK(magnitude(AugmentOperation::TranslateX, 30) == doctest::Approx(150.0 / 331.0 * 64));
  CHECK(magnitude(AugmentOperation::TranslateY, 30, true) == doctest::Approx(-150.0 / 331.0 * 32));
  CHECK(magnitude(AugmentOperation::Rotate, 9) == doctest::Approx(9.0));
  CHECK(magnitude(AugmentOperation::Rotate, 30) == doctest::Approx(30.0));
  for (const AugmentOperation operation : {AugmentOperation::Brightness, AugmentOperation::Color,
                                           AugmentOperation::Contrast, AugmentOperation::Sharpness})
    CHECK(magnitude(operation, 30, true) == doctest::Approx(-0.9));
  // Posterize keeps 8 bits down to 4, by a quarter of the range a bit: 9 of 30 (1.2 rounded) keeps 7.
  CHECK(magnitude(AugmentOperation::Posterize, 0) == 8.0);
  CHECK(magnitude(AugmentOperation::Posterize, 9) == 7.0);
  CHECK(magnitude(AugmentOperation::Posterize, 30) == 4.0);
  CHECK(magnitude(AugmentOperation::Solarize, 9, true) == doctest::Approx(0.7));
  CHECK(magnitude(AugmentOperation::Equalize, 9, true) == 0.0);
  // The wide table's shifts do not depend on the image's size; the standard table's do.
  CHECK(augment_magnitude({AugmentOperation::TranslateX, 30, false}, StrengthTable::Wide, 8, 500) == 32.0);
  CHECK(augment_magnitude({AugmentOperation::TranslateX, 30, false}, StrengthTable::Standard, 8, 331) ==
        doctest::Approx(150.0));
}

TEST_CASE("rand augment: through augment(), N operations in turn at the magnitude, each drawn and signed") {
  using kiln::data::Augmentation;
  const kiln::data::Preprocessing preprocessing{
      3, 8, 8, kiln::data::ResizePolicy::Stretch, {0.5f, 0.4f, 0.3f}, {0.2f, 0.25f, 0.3f}};
  const Augmentation rand{.rand_augment_ops = 2, .rand_augment_magnitude = 12};
  CHECK(rand.any());
  CHECK(kiln::data::draws_per_sample(rand) == kiln::data::kRandAugmentDraws);
  CHECK(kiln::data::kRandAugmentDraws == 24);
  kiln::Generator generator(6);
  const kiln::Tensor image = kiln::Tensor::randn({3, 8, 8}, kiln::DType::Float32, &generator);
  std::map<int, int> first_operations, second_operations;
  int negative = 0;
  const int samples = 1400;
  for (int sample = 0; sample < samples; ++sample) {
    const kiln::kernels::PhiloxState state{.seed = 5, .stream = static_cast<std::uint64_t>(sample)};
    // Operation i's draws are 16 + 2i (which) and 17 + 2i (the sign, negative below one half).
    AugmentChoice choices[2];
    for (int i = 0; i < 2; ++i) {
      const float which = kiln::kernels::philox_uniform<float>(state, 16 + 2 * i);
      choices[i] = {static_cast<AugmentOperation>(
                        std::min<int>(kAugmentOperations - 1, static_cast<int>(which * kAugmentOperations))),
                    12, kiln::kernels::philox_uniform<float>(state, 17 + 2 * i) < 0.5f};
      negative += choices[i].negative;
    }
    ++first_operations[static_cast<int>(choices[0].operation)];
    ++second_operations[static_cast<int>(choices[1].operation)];

    // The same two operations, one after the other, in [0, 1] pixels, the mean colour as the fill.
    std::vector<float> pixels = image.to_vector<float>();
    for (std::size_t i = 0; i < pixels.size(); ++i)
      pixels[i] = pixels[i] * preprocessing.std[i / 64] + preprocessing.mean[i / 64];
    for (const AugmentChoice& choice : choices)
      apply_augment_operation(pixels, 3, 8, 8, choice, StrengthTable::Standard, preprocessing.mean);
    kiln::Tensor augmented = image.clone();
    kiln::data::augment(augmented, rand, preprocessing, state);
    const std::vector<float> result = augmented.to_vector<float>();
    for (std::size_t i = 0; i < pixels.size(); ++i) {
      const float expected = (pixels[i] - preprocessing.mean[i / 64]) / preprocessing.std[i / 64];
      REQUIRE(result[i] == doctest::Approx(expected).epsilon(1e-5));
    }
  }
  REQUIRE(first_operations.size() == kAugmentOperations);
  REQUIRE(second_operations.size() == kAugmentOperations);
  for (const auto& [operation, count] : first_operations)
    CHECK(std::abs(count - samples / kAugmentOperations) < 45);
  CHECK(std::abs(negative - samples) < 110);  // of 2 * samples signs
}

TEST_CASE("rand augment: its draws come after the others', its fields are checked, and it excludes trivial") {
  using kiln::data::Augmentation;
  CHECK(kiln::data::draws_per_sample({.crop_padding = 4, .horizontal_flip = true}) == 8);
  CHECK(kiln::data::draws_per_sample({.trivial_augment = true}) == kiln::data::kAugmentationDraws);
  CHECK(kiln::data::draws_per_sample({.rotate90 = true, .rand_augment_ops = 1}) ==
        kiln::data::kRandAugmentDraws);
  // Zero operations is off, whatever the magnitude.
  CHECK_FALSE(Augmentation{.rand_augment_magnitude = 30}.any());
  CHECK_THROWS_WITH_AS(Augmentation{.rand_augment_ops = 5}.validate(),
                       doctest::Contains("'rand_augment_ops' must be in [0, 4], got 5"), kiln::Error);
  CHECK_THROWS_WITH_AS((Augmentation{.rand_augment_ops = 2, .rand_augment_magnitude = 31}.validate()),
                       doctest::Contains("'rand_augment_magnitude' must be in [0, 30], got 31"), kiln::Error);
  CHECK_THROWS_WITH_AS((Augmentation{.trivial_augment = true, .rand_augment_ops = 2}.validate()),
                       doctest::Contains("choose one"), kiln::Error);
  const Augmentation rand{.horizontal_flip = true, .rand_augment_ops = 3, .rand_augment_magnitude = 14};
  CHECK(Augmentation::from_json(rand.to_json()) == rand);
  CHECK(Augmentation::from_json(nlohmann::json{{"rand_augment_ops", 2}}).rand_augment_magnitude == 9);
  CHECK_THROWS_WITH_AS(Augmentation::from_json(nlohmann::json{{"rand_augment_ops", 1.5}}),
                       doctest::Contains("'rand_augment_ops' must be an integer"), kiln::Error);
}

}  // namespace data_auto_augment_test
