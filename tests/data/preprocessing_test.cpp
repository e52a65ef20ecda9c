// Tests for data/preprocessing.hpp: apply() by hand on tiny images, both resize policies, channel
// conversion, the JSON form, and preprocessing_for's measurements.
#include "data/preprocessing.hpp"

#include <doctest/doctest.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "core/error.hpp"
#include "data/resample.hpp"
#include "tests/data/image_writer.hpp"

namespace data_preprocessing_test {

using kiln::Error;
using kiln::Tensor;
using kiln::data::Image;
using kiln::data::Preprocessing;
using kiln::data::ResizePolicy;
using kiln::test::TemporaryFolder;

namespace {

// A preprocessing that leaves values as pixel / 255, so resize results read directly.
Preprocessing unnormalized(std::int64_t channels, std::int64_t height, std::int64_t width,
                           ResizePolicy resize = ResizePolicy::Stretch) {
  return {channels,
          height,
          width,
          resize,
          std::vector<float>(static_cast<std::size_t>(channels), 0.0f),
          std::vector<float>(static_cast<std::size_t>(channels), 1.0f)};
}

// The values of apply() times 255: back in pixel units.
std::vector<float> in_pixels(const Tensor& tensor) {
  std::vector<float> values = tensor.to_vector<float>();
  for (float& value : values) value *= 255.0f;
  return values;
}

void check_close(const std::vector<float>& actual, const std::vector<float>& expected,
                 float tolerance = 1e-3f) {
  REQUIRE(actual.size() == expected.size());
  for (std::size_t i = 0; i < actual.size(); ++i) {
    CAPTURE(i);
    CHECK(actual[i] == doctest::Approx(expected[i]).epsilon(tolerance));
  }
}

}  // namespace

TEST_CASE("data/preprocessing: apply normalizes a 2x2 RGB image per channel, HWC -> CHW") {
  // Pixels (row, column): (0,0) = (255, 0, 51), (0,1) = (0, 255, 102), (1,0) = (51, 51, 51), (1,1) = (255,
  // 255, 255)
  const Image image{2, 2, 3, {255, 0, 51, 0, 255, 102, 51, 51, 51, 255, 255, 255}};
  const Preprocessing preprocessing{3, 2, 2, ResizePolicy::Stretch, {0.5f, 0.5f, 0.2f}, {0.5f, 0.25f, 0.4f}};
  const Tensor out = preprocessing.apply(image);
  CHECK(out.shape() == kiln::Shape{3, 2, 2});
  CHECK(out.dtype() == kiln::DType::Float32);
  // (pixel / 255 - mean) / std, channel by channel: red (1, 0, 0.2, 1) -> (1, -1, -0.6, 1);
  // green (0, 1, 0.2, 1) -> (-2, 2, -1.2, 2); blue (0.2, 0.4, 0.2, 1) -> (0, 0.5, 0, 2).
  check_close(out.to_vector<float>(), {1, -1, -0.6f, 1, -2, 2, -1.2f, 2, 0, 0.5f, 0, 2}, 1e-5f);
}

TEST_CASE("data/preprocessing: stretch resize is bilinear when enlarging and averages when shrinking") {
  SUBCASE("same size passes pixels unchanged") {
    const Image image = kiln::test::pattern_image(3, 5, 3);
    const std::vector<float> out = in_pixels(unnormalized(3, 3, 5).apply(image));
    for (std::int64_t c = 0; c < 3; ++c) {
      for (std::int64_t y = 0; y < 3; ++y) {
        for (std::int64_t x = 0; x < 5; ++x) {
          CHECK(out[static_cast<std::size_t>((c * 3 + y) * 5 + x)] ==
                doctest::Approx(image.at(y, x, c)).epsilon(1e-6));
        }
      }
    }
  }
  SUBCASE("1x2 -> 1x4: half-pixel centres, edges clamped") {
    // Output centres at source x = 0.25, 0.75, 1.25, 1.75; pixel centres at 0.5 and 1.5.
    const Image image{1, 2, 1, {0, 100}};
    check_close(in_pixels(unnormalized(1, 1, 4).apply(image)), {0, 25, 75, 100});
  }
  SUBCASE("2x2 -> 4x4 is separable") {
    const Image image{2, 2, 1, {0, 100, 200, 40}};
    // Rows are weighted (1, 0), (.75, .25), (.25, .75), (0, 1), and so are columns.
    const std::vector<float> weights_first{1, 0.75f, 0.25f, 0};
    std::vector<float> expected;
    for (int y = 0; y < 4; ++y) {
      for (int x = 0; x < 4; ++x) {
        const float top = weights_first[x] * 0 + (1 - weights_first[x]) * 100;
        const float bottom = weights_first[x] * 200 + (1 - weights_first[x]) * 40;
        expected.push_back(weights_first[y] * top + (1 - weights_first[y]) * bottom);
      }
    }
    check_close(in_pixels(unnormalized(1, 4, 4).apply(image)), expected);
  }
  SUBCASE("1x4 -> 1x2: a triangle two pixels wide") {
    // Output 0 is centred at 1.0: pixels 0, 1, 2 weigh 0.75, 0.75, 0.25 (sum 1.75); output 1 mirrors it.
    const Image image{1, 4, 1, {0, 40, 80, 120}};
    check_close(
        in_pixels(unnormalized(1, 1, 2).apply(image)),
        {(0.75f * 0 + 0.75f * 40 + 0.25f * 80) / 1.75f, (0.25f * 40 + 0.75f * 80 + 0.75f * 120) / 1.75f});
  }
  SUBCASE("a uniform image stays uniform at any size and policy") {
    const Image image = kiln::test::solid_image(7, 3, 1, 77);
    for (const ResizePolicy policy : {ResizePolicy::Stretch, ResizePolicy::ShorterSideThenCenterCrop}) {
      for (const float value : in_pixels(unnormalized(1, 5, 4, policy).apply(image))) {
        CHECK(value == doctest::Approx(77).epsilon(1e-5));
      }
    }
  }
}

TEST_CASE("data/resample: shrink_to_shorter_side keeps the aspect ratio and averages, rounded to 8 bits") {
  // 1x4 -> shorter side 1 is already there: unchanged. 2x8 -> 1x4: each output pixel the triangle average
  // of the source pixels under it, rounded to the nearest 8-bit value.
  const Image row{1, 4, 1, {0, 40, 80, 120}};
  CHECK(kiln::data::shrink_to_shorter_side(row, 1).pixels == row.pixels);
  const Image two_rows{2, 8, 1, {0, 40, 80, 120, 160, 200, 240, 255, 0, 40, 80, 120, 160, 200, 240, 255}};
  const Image shrunk = kiln::data::shrink_to_shorter_side(two_rows, 1);
  CHECK(shrunk.height == 1);
  CHECK(shrunk.width == 4);
  const std::vector<float> exact =
      kiln::data::resample_bilinear(two_rows, kiln::data::whole_image(two_rows), 1, 4);
  for (std::size_t i = 0; i < exact.size(); ++i) CHECK(shrunk.pixels[i] == std::lround(exact[i]));
  // 10x15 with shorter side 4: 4x6 (15 * 0.4); a uniform image stays uniform.
  const Image uniform = kiln::test::solid_image(10, 15, 3, 77);
  const Image small = kiln::data::shrink_to_shorter_side(uniform, 4);
  CHECK(small.height == 4);
  CHECK(small.width == 6);
  CHECK(small.channels == 3);
  for (const std::uint8_t value : small.pixels) CHECK(value == 77);
}

TEST_CASE("data/preprocessing: shorter side then centre crop keeps the middle at the aspect ratio") {
  SUBCASE("wide image: the middle columns") {
    const Image image{2, 4, 1, {10, 20, 30, 40, 50, 60, 70, 80}};
    check_close(in_pixels(unnormalized(1, 2, 2, ResizePolicy::ShorterSideThenCenterCrop).apply(image)),
                {20, 30, 60, 70});
    // Stretch instead squeezes all four columns into two.
    CHECK(in_pixels(unnormalized(1, 2, 2).apply(image))[0] != doctest::Approx(20));
  }
  SUBCASE("tall image: the middle rows") {
    const Image image{4, 1, 1, {10, 20, 30, 40}};
    check_close(in_pixels(unnormalized(1, 2, 1, ResizePolicy::ShorterSideThenCenterCrop).apply(image)),
                {20, 30});
  }
  SUBCASE("4x8 -> 2x2: shrink the shorter side to 2, keep the middle 4x4 of the source") {
    // Columns 2..5 hold 100, the rest 0.
    Image image{4, 8, 1, {}};
    for (int y = 0; y < 4; ++y) {
      for (int x = 0; x < 8; ++x) image.pixels.push_back(x >= 2 && x < 6 ? 100 : 0);
    }
    // The kept window is columns [2, 6). Output column 0 is centred at source 3.0 with a triangle of
    // radius 2: pixels 1, 2, 3, 4 weigh 0.25, 0.75, 0.75, 0.25, so the border pixel 1 (a 0) still counts,
    // as it would if the image were shrunk first and cropped after.
    const float edge = (0.25f * 0 + 0.75f * 100 + 0.75f * 100 + 0.25f * 100) / 2.0f;
    check_close(in_pixels(unnormalized(1, 2, 2, ResizePolicy::ShorterSideThenCenterCrop).apply(image)),
                {edge, edge, edge, edge});
  }
}

TEST_CASE("data/preprocessing: an image at the model's size keeps its pixels exactly, under either policy") {
  Image image{3, 5, 3, {}};
  for (int i = 0; i < 3 * 5 * 3; ++i) image.pixels.push_back(static_cast<std::uint8_t>(i * 37 % 256));
  for (const ResizePolicy resize : {ResizePolicy::Stretch, ResizePolicy::ShorterSideThenCenterCrop}) {
    const std::vector<float> out = unnormalized(3, 3, 5, resize).apply(image).to_vector<float>();
    REQUIRE(out.size() == image.pixels.size());
    for (std::int64_t c = 0; c < 3; ++c) {
      for (std::int64_t p = 0; p < 15; ++p) {  // CHW out, HWC in; pixel / 255 exactly as the passes give it
        CAPTURE(c);
        CAPTURE(p);
        CHECK(out[static_cast<std::size_t>(c * 15 + p)] ==
              static_cast<float>(image.pixels[static_cast<std::size_t>(p * 3 + c)]) / 255.0f);
      }
    }
  }
}

TEST_CASE("data/preprocessing: apply resamples the policy's window, or the one it is given") {
  const Image image = kiln::test::pattern_image(6, 10, 3, 4);
  for (const ResizePolicy resize : {ResizePolicy::Stretch, ResizePolicy::ShorterSideThenCenterCrop}) {
    const Preprocessing preprocessing = unnormalized(3, 4, 4, resize);
    CHECK(preprocessing.apply(image, preprocessing.window(image)).to_vector<float>() ==
          preprocessing.apply(image).to_vector<float>());
  }
  const kiln::data::SourceWindow centre = unnormalized(1, 2, 2, ResizePolicy::ShorterSideThenCenterCrop)
                                              .window(Image{2, 4, 1, {10, 20, 30, 40, 50, 60, 70, 80}});
  CHECK(centre.left == 1);
  CHECK(centre.width == 2);
  // A window of whole pixels at the output's size takes those pixels as they are: columns 1 and 2 of rows 0
  // and 1 of a 3x4 grey image.
  const Image grey{3, 4, 1, {10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110, 120}};
  check_close(in_pixels(unnormalized(1, 2, 2).apply(grey, {.top = 0, .left = 1, .height = 2, .width = 2})),
              {20, 30, 60, 70});
}

TEST_CASE("data/preprocessing: grey -> RGB copies the channel, RGB -> grey takes the luminance") {
  const Image grey{1, 2, 1, {51, 204}};
  const Preprocessing rgb{3, 1, 2, ResizePolicy::Stretch, {0, 0.2f, 0.4f}, {1, 1, 0.5f}};
  // Each channel sees 0.2 and 0.8, then its own normalization.
  check_close(rgb.apply(grey).to_vector<float>(), {0.2f, 0.8f, 0, 0.6f, -0.4f, 0.8f}, 1e-5f);

  const Image colour{1, 1, 3, {100, 200, 50}};
  // 0.299 * 100 + 0.587 * 200 + 0.114 * 50 = 153
  check_close(in_pixels(unnormalized(1, 1, 1).apply(colour)), {153});
}

TEST_CASE("data/preprocessing: apply rejects an invalid preprocessing or image") {
  const Image image = kiln::test::solid_image(2, 2, 3, 1);
  Preprocessing bad = unnormalized(3, 2, 2);
  bad.std[1] = 0;
  CHECK_THROWS_WITH_AS(bad.apply(image), doctest::Contains("every 'std' value must be positive"), Error);
  const Image rgba = kiln::test::solid_image(2, 2, 4, 1);
  CHECK_THROWS_WITH_AS(unnormalized(3, 2, 2).apply(rgba), doctest::Contains("1 or 3 channels, got 4"), Error);
}

TEST_CASE("data/preprocessing: JSON round trip and errors naming the field") {
  const Preprocessing original{
      3, 32, 24, ResizePolicy::ShorterSideThenCenterCrop, {0.49f, 0.48f, 0.45f}, {0.25f, 0.24f, 0.26f}};
  const nlohmann::json json = original.to_json();
  CHECK(json.at("resize") == "shorter_side_then_center_crop");
  CHECK(json.at("height") == 32);
  CHECK(Preprocessing::from_json(json) == original);
  CHECK(Preprocessing::from_json(nlohmann::json::parse(json.dump())) == original);

  nlohmann::json missing = json;
  missing.erase("std");
  CHECK_THROWS_WITH_AS(Preprocessing::from_json(missing),
                       doctest::Contains("preprocessing: missing field 'std'"), Error);
  nlohmann::json short_mean = json;
  short_mean["mean"] = {0.5};
  CHECK_THROWS_WITH_AS(Preprocessing::from_json(short_mean),
                       doctest::Contains("'mean' needs one value per channel (3)"), Error);
  nlohmann::json bad_resize = json;
  bad_resize["resize"] = "squash";
  CHECK_THROWS_WITH_AS(Preprocessing::from_json(bad_resize), doctest::Contains("field 'resize'"), Error);
  nlohmann::json bad_height = json;
  bad_height["height"] = "tall";
  CHECK_THROWS_WITH_AS(Preprocessing::from_json(bad_height),
                       doctest::Contains("field 'height' must be an integer"), Error);
  CHECK_THROWS_WITH_AS(Preprocessing::from_json(nlohmann::json::array()),
                       doctest::Contains("expected a JSON object"), Error);
}

TEST_CASE("data/preprocessing: preprocessing_for measures size, channels, mean and std") {
  const TemporaryFolder root;
  using kiln::test::solid_image;
  using kiln::test::write_image;
  // Three 4x6 grey images (0, 255 and 255) and one 8x8 (0): the common size is 4x6; pixel values are
  // 0 on 24 + 64 = 88 pixels and 1 on 48, so mean = 48/136 and std = sqrt(mean (1 - mean)).
  write_image(root / "a" / "0.png", solid_image(4, 6, 1, 0));
  write_image(root / "a" / "1.png", solid_image(4, 6, 1, 255));
  write_image(root / "b" / "2.png", solid_image(4, 6, 1, 255));
  write_image(root / "b" / "3.png", solid_image(8, 8, 1, 0));
  const double mean = 48.0 / 136.0, std = std::sqrt(mean * (1 - mean));

  SUBCASE("all grey") {
    for (const int threads : {1, 3}) {
      const Preprocessing p =
          kiln::data::preprocessing_for(kiln::data::ImageFolder::scan(root.path()), {.threads = threads});
      CHECK(p.channels == 1);
      CHECK(p.height == 4);
      CHECK(p.width == 6);
      CHECK(p.resize == ResizePolicy::Stretch);
      REQUIRE(p.mean.size() == 1);
      CHECK(p.mean[0] == doctest::Approx(mean));
      CHECK(p.std[0] == doctest::Approx(std));
    }
  }
  SUBCASE("one colour image makes it RGB; grey pixels count in every channel") {
    // A 2x2 image of (255, 0, 0): red gets 4 more ones, green and blue 4 more zeros.
    const Image red{2, 2, 3, {255, 0, 0, 255, 0, 0, 255, 0, 0, 255, 0, 0}};
    write_image(root / "b" / "4.png", red);
    const Preprocessing p = kiln::data::preprocessing_for(kiln::data::ImageFolder::scan(root.path()));
    CHECK(p.channels == 3);
    const double red_mean = 52.0 / 140.0, other_mean = 48.0 / 140.0;
    CHECK(p.mean[0] == doctest::Approx(red_mean));
    CHECK(p.mean[1] == doctest::Approx(other_mean));
    CHECK(p.mean[2] == doctest::Approx(other_mean));
    CHECK(p.std[0] == doctest::Approx(std::sqrt(red_mean * (1 - red_mean))));
  }
  SUBCASE("options fix the size; a sample of the images is seeded") {
    const auto folder = kiln::data::ImageFolder::scan(root.path());
    const Preprocessing fixed = kiln::data::preprocessing_for(folder, {.height = 5, .width = 7});
    CHECK(fixed.height == 5);
    CHECK(fixed.width == 7);
    const Preprocessing sample = kiln::data::preprocessing_for(folder, {.max_images = 2, .seed = 9});
    CHECK(sample == kiln::data::preprocessing_for(folder, {.max_images = 2, .seed = 9, .threads = 1}));
  }
  SUBCASE("a most common size longer than max_side is shrunk to it, its aspect ratio kept") {
    const auto folder = kiln::data::ImageFolder::scan(root.path());
    kiln::data::SurveyedSize most_common;
    const Preprocessing shrunk = kiln::data::preprocessing_for(folder, {.max_side = 3}, &most_common);
    CHECK(shrunk.height == 2);
    CHECK(shrunk.width == 3);
    CHECK(most_common.height == 4);
    CHECK(most_common.width == 6);
    const Preprocessing unlimited = kiln::data::preprocessing_for(folder, {.max_side = 0});
    CHECK(unlimited.height == 4);
    CHECK(unlimited.width == 6);
    // A size given in the options is taken as it is.
    const Preprocessing fixed =
        kiln::data::preprocessing_for(folder, {.height = 5, .width = 7, .max_side = 3});
    CHECK(fixed.height == 5);
    CHECK(fixed.width == 7);
  }
  SUBCASE("unreadable files are passed over") {
    kiln::test::write_bytes(root / "b" / "5.png", "garbage");
    const Preprocessing p = kiln::data::preprocessing_for(kiln::data::ImageFolder::scan(root.path()));
    CHECK(p.mean[0] == doctest::Approx(mean));
  }
}

TEST_CASE("data/preprocessing: default_input_size shrinks a size longer than the limit, aspect ratio kept") {
  using kiln::data::default_input_size;
  using Size = std::pair<std::int64_t, std::int64_t>;
  CHECK(default_input_size(2000, 3000, 128) == Size{85, 128});  // a camera photo, landscape
  CHECK(default_input_size(3000, 2000, 128) == Size{128, 85});  // and portrait
  CHECK(default_input_size(256, 256, 128) == Size{128, 128});
  CHECK(default_input_size(32, 32, 128) == Size{32, 32});  // CIFAR's stays as it is
  CHECK(default_input_size(128, 100, 128) == Size{128, 100});
  CHECK(default_input_size(129, 100, 128) == Size{128, 99});     // 99.2, to the nearest pixel
  CHECK(default_input_size(1000, 1, 128) == Size{128, 1});       // never below one pixel
  CHECK(default_input_size(2000, 3000, 0) == Size{2000, 3000});  // 0: no limit
}

}  // namespace data_preprocessing_test
