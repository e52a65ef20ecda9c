// Tests for data/data_report.hpp on a small folder made for the purpose, in which every number is known:
//
//   train/cat/a.png   8x8 RGB            train/dog/d.png       8x8 gray
//   train/cat/b.png   a copy of a.png    train/dog/broken.jpg  not an image
//   train/cat/c.png   16x12 RGB          train/dog/notes.txt   ignored (no image extension)
//   test/cat/e.png    a copy of c.png    test/dog/f.png        8x8 RGBA
#include "data/data_report.hpp"

#include <doctest/doctest.h>

#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <string_view>

#include "core/error.hpp"
#include "data/content_hash.hpp"
#include "tests/data/image_writer.hpp"

namespace data_data_report_test {

using kiln::Error;
using kiln::data::DataReport;
using kiln::data::DataReportOptions;
using kiln::data::make_data_report;
using kiln::data::SplitReport;
using kiln::test::TemporaryFolder;
namespace fs = std::filesystem;

namespace {

void make_small_folder(const TemporaryFolder& root) {
  using kiln::test::pattern_image;
  using kiln::test::write_image;
  write_image(root / "train/cat/a.png", pattern_image(8, 8, 3, 1));
  fs::copy_file(root / "train/cat/a.png", root / "train/cat/b.png");
  write_image(root / "train/cat/c.png", pattern_image(12, 16, 3, 2));  // height 12, width 16
  write_image(root / "train/dog/d.png", pattern_image(8, 8, 1, 3));
  kiln::test::write_bytes(root / "train/dog/broken.jpg", "this is not a JPEG");
  kiln::test::write_bytes(root / "train/dog/notes.txt", "labelled by hand");
  fs::create_directories(root / "test/cat");
  fs::copy_file(root / "train/cat/c.png", root / "test/cat/e.png");
  write_image(root / "test/dog/f.png", pattern_image(8, 8, 4, 4));
}

DataReportOptions options(int threads, bool decode = false) {
  DataReportOptions chosen;
  chosen.threads = threads;
  chosen.decode = decode;
  return chosen;
}

const SplitReport& split_named(const DataReport& report, const std::string& name) {
  for (const SplitReport& split : report.splits) {
    if (split.name == name) return split;
  }
  FAIL("no split " << name);
  throw std::logic_error("unreachable");
}

}  // namespace

TEST_CASE("data/data_report: fnv1a64 gives the published check values") {
  CHECK(kiln::data::fnv1a64({}) == 0xcbf29ce484222325ull);
  const std::string_view a = "a", foobar = "foobar";
  CHECK(kiln::data::fnv1a64({reinterpret_cast<const std::uint8_t*>(a.data()), a.size()}) ==
        0xaf63dc4c8601ec8cull);
  CHECK(kiln::data::fnv1a64({reinterpret_cast<const std::uint8_t*>(foobar.data()), foobar.size()}) ==
        0x85944171f73967e8ull);
}

TEST_CASE(
    "data/data_report: counts, sizes, channels, unreadable files, duplicates and overlap of a small folder") {
  const TemporaryFolder root;
  make_small_folder(root);
  const DataReport report = make_data_report(root.path(), options(0));
  REQUIRE(report.splits.size() == 2);
  CHECK(report.splits[0].name == "train");
  CHECK(report.splits[1].name == "test");

  const SplitReport& train = split_named(report, "train");
  CHECK(train.images == 5);
  CHECK(train.ignored_files == 1);
  CHECK(train.ignored_extensions == std::map<std::string, std::int64_t>{{".txt", 1}});
  REQUIRE(train.classes.size() == 2);
  CHECK(train.classes[0].name == "cat");
  CHECK(train.classes[0].images == 3);
  CHECK(train.classes[1].name == "dog");
  CHECK(train.classes[1].images == 2);  // the unreadable file still counts as a file of the class
  REQUIRE(train.imbalance_ratio.has_value());
  CHECK(*train.imbalance_ratio == doctest::Approx(1.5));
  CHECK(train.largest_class == 0);
  CHECK(train.smallest_class == 1);

  REQUIRE(train.sizes.size() == 2);
  CHECK(train.sizes[0].width == 8);  // the most common first
  CHECK(train.sizes[0].height == 8);
  CHECK(train.sizes[0].images == 3);
  CHECK(train.sizes[1].width == 16);
  CHECK(train.sizes[1].height == 12);
  CHECK(train.sizes[1].images == 1);
  CHECK(train.smallest_size->width == 8);
  CHECK(train.largest_size->width == 16);
  CHECK(train.largest_size->height == 12);
  CHECK(train.channels == std::array<std::int64_t, 4>{1, 0, 3, 0});  // d.png gray, a b c RGB

  REQUIRE(train.unreadable.size() == 1);
  CHECK(train.unreadable[0].path.filename() == "broken.jpg");
  CHECK(train.unreadable[0].reason.find("not an image (stb_image: ") == 0);

  REQUIRE(train.duplicates.size() == 1);
  REQUIRE(train.duplicates[0].files.size() == 2);
  CHECK(train.duplicates[0].files[0].filename() == "a.png");
  CHECK(train.duplicates[0].files[1].filename() == "b.png");
  CHECK_FALSE(train.duplicates[0].crosses_classes());

  const SplitReport& test = split_named(report, "test");
  CHECK(test.images == 2);
  CHECK(*test.imbalance_ratio == doctest::Approx(1.0));
  CHECK(test.channels == std::array<std::int64_t, 4>{0, 0, 1, 1});  // e.png RGB, f.png RGBA
  CHECK(test.unreadable.empty());
  CHECK(test.duplicates.empty());

  REQUIRE(report.overlaps.size() == 1);
  CHECK(report.overlaps[0].first == "train");
  CHECK(report.overlaps[0].second == "test");
  REQUIRE(report.overlaps[0].shared.size() == 1);
  CHECK(report.overlaps[0].files_in_second() == 1);
  CHECK(report.overlaps[0].shared[0].in_first == std::vector<fs::path>{root / "train/cat/c.png"});
  CHECK(report.overlaps[0].shared[0].in_second == std::vector<fs::path>{root / "test/cat/e.png"});
}

TEST_CASE("data/data_report: text and JSON say the same numbers") {
  const TemporaryFolder root;
  make_small_folder(root);
  const DataReport report = make_data_report(root.path(), options(0));

  const nlohmann::json json = kiln::data::data_report_to_json(report);
  const nlohmann::json& train = json.at("splits").at(0);
  CHECK(train.at("name") == "train");
  CHECK(train.at("images") == 5);
  CHECK(train.at("classes").at(0).at("share").get<double>() == doctest::Approx(0.6));
  CHECK(train.at("imbalance_ratio").get<double>() == doctest::Approx(1.5));
  CHECK(train.at("sizes").at("most_common") == nlohmann::json{{"width", 8}, {"height", 8}, {"images", 3}});
  CHECK(train.at("sizes").at("distinct") == 2);
  CHECK(train.at("channels") == nlohmann::json{{"gray", 1}, {"gray_alpha", 0}, {"rgb", 3}, {"rgba", 0}});
  CHECK(train.at("unreadable").size() == 1);
  CHECK(train.at("duplicates").at(0).at("files").size() == 2);
  CHECK(json.at("overlaps").at(0).at("files_in_second") == 1);
  CHECK(json.at("overlaps").at(0).at("shared").at(0).at("test").at(0) == (root / "test/cat/e.png").string());

  const std::string text = kiln::data::data_report_text(report);
  CAPTURE(text);
  CHECK(text.find("5 images in 2 classes") != std::string::npos);
  CHECK(text.find("    cat         3   60.0%") != std::string::npos);
  CHECK(text.find("imbalance   1.50 (largest / smallest class: 'cat' 3 / 'dog' 2)") != std::string::npos);
  CHECK(text.find("min 8x8, max 16x12, most common 8x8 (3 of 4), 2 distinct sizes") != std::string::npos);
  CHECK(text.find("channels    gray 1, RGB 3") != std::string::npos);
  CHECK(text.find("train/dog/broken.jpg: not an image (stb_image: ") != std::string::npos);
  CHECK(text.find("1 group of identical files (1 extra copy)") != std::string::npos);
  CHECK(text.find("train/cat/a.png = train/cat/b.png") != std::string::npos);
  CHECK(text.find("1 file without an image extension") != std::string::npos);
  CHECK(text.find("1 test file has a copy in train") != std::string::npos);
  CHECK(text.find("test/cat/e.png = train/cat/c.png") != std::string::npos);
  CHECK(text.find("channels    RGB 1, RGBA 1") != std::string::npos);
  // With no room to list, the text says how many are left to the JSON.
  const std::string short_text = kiln::data::data_report_text(report, 0);
  CHECK(short_text.find("broken.jpg") == std::string::npos);
  CHECK(short_text.find("... and 1 more (see --json)") != std::string::npos);
}

TEST_CASE("data/data_report: threads give the same report, and progress ends at the total") {
  const TemporaryFolder root;
  make_small_folder(root);
  std::int64_t last_done = -1, last_total = -1;
  DataReportOptions threaded = options(3);
  threaded.progress = [&](std::int64_t done, std::int64_t total) {
    CHECK(done >= last_done);
    last_done = done;
    last_total = total;
  };
  const nlohmann::json serial = kiln::data::data_report_to_json(make_data_report(root.path(), options(0)));
  CHECK(kiln::data::data_report_to_json(make_data_report(root.path(), threaded)) == serial);
  CHECK(last_done == 7);
  CHECK(last_total == 7);
}

TEST_CASE("data/data_report: a duplicate across classes is flagged, a one-tree folder is the split 'all'") {
  const TemporaryFolder root;
  kiln::test::write_image(root / "bird/x.png", kiln::test::pattern_image(4, 4, 3, 7));
  fs::create_directories(root / "plane");
  fs::copy_file(root / "bird/x.png", root / "plane/y.png");
  fs::create_directories(root / "empty");
  const DataReport report = make_data_report(root.path(), options(0));
  REQUIRE(report.splits.size() == 1);
  CHECK(report.splits[0].name == "all");
  CHECK(report.overlaps.empty());
  REQUIRE(report.splits[0].duplicates.size() == 1);
  CHECK(report.splits[0].duplicates[0].crosses_classes());
  CHECK(report.splits[0].duplicates[0].classes == std::vector<std::string>{"bird", "plane"});
  // An empty class leaves the ratio undefined rather than failing.
  CHECK_FALSE(report.splits[0].imbalance_ratio.has_value());
  CHECK(report.splits[0].classes[report.splits[0].smallest_class].name == "empty");
  const std::string text = kiln::data::data_report_text(report);
  CHECK(text.find("(different classes!)") != std::string::npos);
  CHECK(text.find("- (class 'empty' has no images)") != std::string::npos);
  CHECK(kiln::data::data_report_to_json(report).at("splits").at(0).at("imbalance_ratio").is_null());
}

TEST_CASE("data/data_report: the header check passes a truncated PNG, --decode catches it") {
  const TemporaryFolder root;
  kiln::test::write_image(root / "a/whole.png", kiln::test::pattern_image(16, 16, 3, 1));
  kiln::test::write_image(root / "b/cut.png", kiln::test::pattern_image(16, 16, 3, 2));
  const auto size = fs::file_size(root / "b/cut.png");
  fs::resize_file(root / "b/cut.png", size / 2);  // the header survives, the pixel data does not

  const DataReport header_only = make_data_report(root.path(), options(0));
  CHECK(header_only.splits[0].unreadable.empty());
  CHECK(header_only.splits[0].sizes.at(0).images == 2);

  const DataReport decoded = make_data_report(root.path(), options(0, true));
  REQUIRE(decoded.splits[0].unreadable.size() == 1);
  CHECK(decoded.splits[0].unreadable[0].path.filename() == "cut.png");
  CHECK(decoded.splits[0].unreadable[0].reason.find("not an image") == 0);  // no path prefix
}

TEST_CASE("data/data_report: errors name the folder") {
  const TemporaryFolder root;
  CHECK_THROWS_WITH_AS(make_data_report(root / "missing"),
                       doctest::Contains("missing: data folder does not exist"), Error);
  CHECK_THROWS_WITH_AS(make_data_report(root.path()), doctest::Contains("no class folders"), Error);
}

}  // namespace data_data_report_test
