// Tests for data/label_table.hpp: reading a labels file (quoting, comments, rows without labels), every
// error naming the file and the line, the vocabulary, the train.csv / val.csv / test.csv siblings and the
// seeded --val-split, and multi-hot targets coming out of the data loader.
#include "data/label_table.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "data/loader.hpp"
#include "data/preprocessing.hpp"
#include "tests/data/image_writer.hpp"

namespace data_label_table_test {

namespace data = kiln::data;
using data::discover_splits, data::ImageFolder, data::LabelTable, data::read_label_table;
using kiln::Error, kiln::test::TemporaryFolder, kiln::test::write_bytes;

namespace {

// The reader checks that each image exists and has an image extension, not that it decodes, so the
// files need not hold images.
void touch(const std::filesystem::path& path) { write_bytes(path, "x"); }

// root/img/<name> for each name, and root/<csv> holding `text`. Returns the labels file's path.
std::filesystem::path make_table(const TemporaryFolder& root, const std::vector<std::string>& images,
                                 const std::string& text, const std::string& csv = "labels.csv") {
  for (const std::string& name : images) touch(root / "img" / name);
  write_bytes(root / csv, text);
  return root / csv;
}

std::vector<std::string> filenames(const ImageFolder& folder) {
  std::vector<std::string> names;
  for (const auto& sample : folder.samples()) names.push_back(sample.path.filename().string());
  return names;
}

}  // namespace

TEST_CASE("data/label_table: rows keep the file's order; quotes, comments, blank lines and no-label rows") {
  TemporaryFolder root;
  touch(root / "elsewhere" / "abs.png");
  const std::string absolute = (root / "elsewhere" / "abs.png").string();
  const auto file = make_table(root, {"b.png", "a.jpg", "with, comma.png", "none.png"},
                               "# a comment line\n"
                               "img/b.png, pet ,animal\r\n"
                               "\n"
                               "   \n"
                               "\"img/with, comma.png\",\"say \"\"hi\"\"\"\n"
                               "img/a.jpg,vehicle\n"
                               "img/none.png\n"
                               "  # an indented comment\n" +
                                   absolute + ",animal\n");
  const LabelTable table = read_label_table(file);
  REQUIRE(table.rows.size() == 5);
  CHECK(table.rows[0].image == root / "img" / "b.png");
  CHECK(table.rows[0].labels == std::vector<std::string>{"pet", "animal"});  // spaces trimmed, order kept
  CHECK(table.rows[0].line == 2);
  CHECK(table.rows[1].image.filename() == "with, comma.png");
  CHECK(table.rows[1].labels == std::vector<std::string>{"say \"hi\""});
  CHECK(table.rows[1].line == 5);
  CHECK(table.rows[2].labels == std::vector<std::string>{"vehicle"});
  CHECK(table.rows[3].labels.empty());
  CHECK(table.rows[4].image == root / "elsewhere" / "abs.png");

  // The vocabulary is the sorted set; each sample lists its labels' indices, ascending.
  const std::vector<std::string> vocabulary = data::label_vocabulary(table);
  CHECK(vocabulary == std::vector<std::string>{"animal", "pet", "say \"hi\"", "vehicle"});
  const ImageFolder folder = data::multi_label_folder(table, vocabulary);
  CHECK(folder.multi_label());
  CHECK(folder.classes() == vocabulary);
  CHECK(folder.root() == file);
  CHECK(filenames(folder) ==
        std::vector<std::string>{"b.png", "with, comma.png", "a.jpg", "none.png", "abs.png"});
  CHECK(folder.samples()[0].labels == std::vector<std::int64_t>{0, 1});
  CHECK(folder.samples()[0].label == -1);
  CHECK(folder.samples()[3].labels.empty());
  CHECK(folder.subset({1, 0}).multi_label());
}

TEST_CASE("data/label_table: errors name the file, the line and the problem") {
  TemporaryFolder root;
  const auto throws_with = [&](const std::string& text, const std::string& message) {
    const auto file = make_table(root, {"a.png", "b.png"}, text);
    CHECK_THROWS_WITH_AS(read_label_table(file), doctest::Contains(message.c_str()), Error);
  };
  const std::string file = (root / "labels.csv").string();
  throws_with("img/a.png,x\n,y\n", file + ":2: empty image path");
  throws_with("img/a.png,x\n\nimg/missing.png,y\n", file + ":3: image 'img/missing.png' does not exist");
  throws_with("img/a.png,x\nimg/./a.png,y\n",
              file + ":2: image 'img/./a.png' is listed twice (first on line 1)");
  throws_with("img/a.png,x,y,x\n", file + ":1: label 'x' is listed twice");
  throws_with("img/a.png,x,\n", file + ":1: empty label (field 3");
  throws_with("img/a.png,x,,y\n", file + ":1: empty label (field 3");
  throws_with("\"img/a.png,x\n", file + ":1: a quoted field has no closing quote");
  throws_with("\"img/a.png\"junk,x\n", file + ":1: text after a quoted field's closing quote");
  throws_with("# only a comment\n\n", file + ": lists no images");
  touch(root / "notes.txt");
  throws_with("notes.txt,x\n", file + ":1: 'notes.txt' is not an image file");
  CHECK_THROWS_WITH_AS(read_label_table(root / "nope.csv"),
                       doctest::Contains("nope.csv: labels file does not exist"), Error);

  // Fewer than one distinct label overall.
  const auto no_labels = make_table(root, {"a.png"}, "img/a.png\nimg/b.png\n");
  CHECK_THROWS_WITH_AS(data::label_vocabulary(read_label_table(no_labels)),
                       doctest::Contains("labels.csv: no row names a label"), Error);
}

TEST_CASE("data/label_table: train.csv takes val.csv and test.csv beside it; their labels must be train's") {
  TemporaryFolder root;
  for (const char* name : {"1.png", "2.png", "3.png", "4.png", "5.png"}) touch(root / "img" / name);
  write_bytes(root / "train.csv", "img/1.png,cat\nimg/2.png,dog,cat\nimg/3.png,dog\n");
  write_bytes(root / "test.csv", "img/4.png,dog\n");
  write_bytes(root / "val.csv", "img/5.png\n");
  const data::DataSplits splits = discover_splits(root / "train.csv", 0.5, 1);  // val.csv wins over 0.5
  CHECK(splits.train.size() == 3);
  CHECK(splits.train.classes() == std::vector<std::string>{"cat", "dog"});
  REQUIRE(splits.test);
  REQUIRE(splits.validation);
  CHECK(splits.test->multi_label());
  CHECK(splits.test->classes() == splits.train.classes());
  CHECK(splits.test->samples()[0].labels == std::vector<std::int64_t>{1});
  CHECK(splits.validation->size() == 1);

  // Another name has no siblings: the one file is all the data.
  write_bytes(root / "all.csv", "img/1.png,cat\nimg/2.png,dog\n");
  const data::DataSplits alone = discover_splits(root / "all.csv", 0.0, 1);
  CHECK_FALSE(alone.test);
  CHECK_FALSE(alone.validation);

  write_bytes(root / "test.csv", "img/4.png,dog\nimg/5.png,bird\n");
  CHECK_THROWS_WITH_AS(discover_splits(root / "train.csv", 0.0, 1),
                       doctest::Contains("test.csv:2: label 'bird' is not a label of the training data"),
                       Error);
}

TEST_CASE("data/label_table: --val-split holds out a seeded fraction of the rows, in the file's order") {
  TemporaryFolder root;
  std::string text;
  std::vector<std::string> images;
  for (int i = 10; i < 30; ++i) {
    images.push_back(std::to_string(i) + ".png");
    text += "img/" + images.back() + (i % 2 ? ",odd" : ",even") + "\n";
  }
  const auto file = make_table(root, images, text);
  const data::DataSplits a = discover_splits(file, 0.25, 3), b = discover_splits(file, 0.25, 3);
  REQUIRE(a.validation);
  CHECK(a.validation->size() == 5);  // round(0.25 * 20)
  CHECK(a.train.size() == 15);
  CHECK(filenames(a.train) == filenames(b.train));  // the same seed, the same split
  CHECK(filenames(*a.validation) == filenames(*b.validation));
  CHECK(a.validation->multi_label());
  for (const ImageFolder* half : {&a.train, &*a.validation}) {
    const std::vector<std::string> names = filenames(*half);
    CHECK(std::is_sorted(names.begin(), names.end()));  // the file's order (here: by name)
  }
  const data::DataSplits other = discover_splits(file, 0.25, 4);
  CHECK(filenames(*other.validation) != filenames(*a.validation));
  CHECK_FALSE(discover_splits(file, 0.0, 3).validation);
}

TEST_CASE("data/label_table: the loader gives multi-hot float targets [B, L] beside the images") {
  TemporaryFolder root;
  for (int i = 0; i < 3; ++i)
    kiln::test::write_image(root / "img" / (std::to_string(i) + ".png"),
                            kiln::test::pattern_image(2, 2, 1, i));
  write_bytes(root / "labels.csv", "img/0.png,b\nimg/1.png,c,a\nimg/2.png\n");
  const ImageFolder folder = discover_splits(root / "labels.csv", 0.0, 0).train;  // labels a, b, c
  data::Preprocessing preprocessing;
  preprocessing.channels = 1;
  preprocessing.height = preprocessing.width = 2;
  preprocessing.mean = {0.0};
  preprocessing.std = {1.0};
  data::DataLoader loader(folder, preprocessing, {.batch_size = 2, .shuffle = false, .threads = 0});
  loader.start_epoch(0);
  std::optional<data::Batch> first = loader.next();
  REQUIRE(first);
  CHECK(first->targets.shape() == kiln::Shape{2, 3});
  CHECK(first->targets.to_vector<float>() == std::vector<float>{0, 1, 0, 1, 0, 1});
  std::optional<data::Batch> second = loader.next();
  REQUIRE(second);
  CHECK(second->targets.to_vector<float>() == std::vector<float>{0, 0, 0});  // no label applies
  CHECK_FALSE(loader.next());

  CHECK_THROWS_WITH_AS(data::DataLoader(folder, preprocessing, {.balanced_sampling = true}),
                       doctest::Contains("is multi-label; balanced sampling needs one class per image"),
                       Error);
}

}  // namespace data_label_table_test
