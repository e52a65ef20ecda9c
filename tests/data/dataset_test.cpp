// Tests for data/dataset.hpp and data/shuffle.hpp: scanning a class-folder tree, its errors, and the
// discovery of train / validation / test splits.
#include "data/dataset.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <set>

#include "core/error.hpp"
#include "data/shuffle.hpp"
#include "tests/data/image_writer.hpp"

namespace data_dataset_test {

using kiln::Error;
using kiln::data::DataSplits;
using kiln::data::discover_splits;
using kiln::data::ImageFolder;
using kiln::test::TemporaryFolder;
using kiln::test::write_bytes;

namespace {

// scan() looks only at names, so the files need not hold images.
void touch(const std::filesystem::path& path) { write_bytes(path, "x"); }

// root/<class>/<class>_<i>.png for each class and count.
void make_tree(const std::filesystem::path& root, const std::vector<std::pair<std::string, int>>& classes) {
  for (const auto& [name, count] : classes) {
    for (int i = 0; i < count; ++i) touch(root / name / (name + "_" + std::to_string(100 + i) + ".png"));
  }
}

std::set<std::filesystem::path> paths_of(const ImageFolder& folder) {
  std::set<std::filesystem::path> paths;
  for (const auto& sample : folder.samples()) paths.insert(sample.path);
  return paths;
}

}  // namespace

TEST_CASE("data/dataset: scan sorts classes and files, labels by folder, picks images by extension") {
  const TemporaryFolder root;
  touch(root / "zebra" / "b.PNG");
  touch(root / "zebra" / "a.jpeg");
  touch(root / "zebra" / "c.txt");             // not an image extension
  touch(root / "zebra" / "nested" / "d.png");  // nested folders are not part of the class
  touch(root / "ant" / "x.tga");
  touch(root / "ant" / "w.bmp");
  touch(root / "ant" / "v.JPG");
  touch(root / ".hidden" / "h.png");  // hidden folders are not classes
  touch(root / "README.png");         // files at the root are not classes

  const ImageFolder folder = ImageFolder::scan(root.path());
  CHECK(folder.root() == root.path());
  CHECK(folder.classes() == std::vector<std::string>{"ant", "zebra"});
  REQUIRE(folder.size() == 5);
  const std::vector<std::pair<std::string, std::int64_t>> expected{
      {"ant/v.JPG", 0}, {"ant/w.bmp", 0}, {"ant/x.tga", 0}, {"zebra/a.jpeg", 1}, {"zebra/b.PNG", 1}};
  for (std::size_t i = 0; i < expected.size(); ++i) {
    CHECK(folder.samples()[i].path == root / expected[i].first);
    CHECK(folder.samples()[i].label == expected[i].second);
  }
}

TEST_CASE("data/dataset: scan errors name the path and the problem") {
  const TemporaryFolder root;
  SUBCASE("missing root") {
    CHECK_THROWS_WITH_AS(
        ImageFolder::scan(root / "nowhere"),
        doctest::Contains(((root / "nowhere").string() + ": image folder does not exist").c_str()), Error);
  }
  SUBCASE("root is a file") {
    touch(root / "file.png");
    CHECK_THROWS_WITH_AS(ImageFolder::scan(root / "file.png"), doctest::Contains("is not a folder"), Error);
  }
  SUBCASE("no class folders") {
    touch(root / "loose.png");
    CHECK_THROWS_WITH_AS(ImageFolder::scan(root.path()),
                         doctest::Contains((root.path().string() + ": no class folders").c_str()), Error);
  }
  SUBCASE("a single class") {
    make_tree(root.path(), {{"cat", 2}});
    CHECK_THROWS_WITH_AS(ImageFolder::scan(root.path()),
                         doctest::Contains("needs at least two classes, found only 'cat'"), Error);
    // Evaluation takes one (a folder of one of a model's classes).
    const ImageFolder one = ImageFolder::scan(root.path(), ImageFolder::ClassesNeeded::One);
    CHECK(one.classes() == std::vector<std::string>{"cat"});
    CHECK(one.size() == 2);
  }
  SUBCASE("an empty class folder, and what it holds instead") {
    make_tree(root.path(), {{"cat", 2}});
    touch(root / "dog" / "notes.txt");
    touch(root / "dog" / "a.heic");
    touch(root / "dog" / "b.heic");
    CHECK_THROWS_WITH_AS(
        ImageFolder::scan(root.path()),
        ((root / "dog").string() +
         ": empty class folder (no .jpg .jpeg .png .bmp or .tga files; it holds 2 .heic, 1 .txt "
         "files, formats kiln does not read: convert them to JPEG or PNG)")
            .c_str(),
        Error);
  }
  SUBCASE("a class folder whose images are a level too deep, or one with nothing in it") {
    make_tree(root.path(), {{"cat", 2}});
    make_tree(root / "dog", {{"2019", 1}, {"2020", 1}});
    CHECK_THROWS_WITH_AS(
        ImageFolder::scan(root.path()),
        doctest::Contains("; it holds 2 folders (2019, 2020): a class's images go directly in "
                          "its folder)"),
        Error);
    std::filesystem::remove_all(root / "dog");
    std::filesystem::create_directories(root / "dog");
    CHECK_THROWS_WITH_AS(ImageFolder::scan(root.path()), doctest::Contains("files; it is empty)"), Error);
  }
}

TEST_CASE("data/dataset: subset keeps the order given and the classes") {
  const TemporaryFolder root;
  make_tree(root.path(), {{"a", 3}, {"b", 2}});
  const ImageFolder folder = ImageFolder::scan(root.path());
  const ImageFolder part = folder.subset({4, 0});
  CHECK(part.classes() == folder.classes());
  REQUIRE(part.size() == 2);
  CHECK(part.samples()[0].path == folder.samples()[4].path);
  CHECK(part.samples()[0].label == 1);
  CHECK(part.samples()[1].path == folder.samples()[0].path);
  CHECK_THROWS_WITH_AS(folder.subset({5}), doctest::Contains("subset index 5 is out of range for 5 samples"),
                       Error);
}

TEST_CASE("data/dataset: relabelled labels each sample by its class's place in the given classes") {
  const TemporaryFolder root;
  make_tree(root.path(), {{"cat", 2}, {"dog", 1}});
  const ImageFolder folder = ImageFolder::scan(root.path());
  // A model's classes, in its output order: the folder holds two of them.
  const std::vector<std::string> model_classes = {"bird", "dog", "airplane", "cat"};
  const ImageFolder relabelled = folder.relabelled(model_classes);
  CHECK(relabelled.classes() == model_classes);
  REQUIRE(relabelled.size() == folder.size());
  for (std::size_t i = 0; i < folder.size(); ++i) {
    CHECK(relabelled.samples()[i].path == folder.samples()[i].path);
    const std::string& name = folder.classes()[static_cast<std::size_t>(folder.samples()[i].label)];
    CHECK(model_classes[static_cast<std::size_t>(relabelled.samples()[i].label)] == name);
  }
  CHECK(relabelled.samples().front().label == 3);  // cat
  CHECK(relabelled.samples().back().label == 1);   // dog
  CHECK_THROWS_WITH_AS(folder.relabelled({"bird", "cat"}),
                       doctest::Contains("class 'dog' is not one of the 2 classes"), Error);
}

TEST_CASE("data/dataset: seeded_permutation is a permutation, fixed by its state") {
  const std::vector<std::size_t> order = kiln::data::seeded_permutation(100, {7, 0, 0});
  std::vector<std::size_t> sorted = order;
  std::sort(sorted.begin(), sorted.end());
  for (std::size_t i = 0; i < 100; ++i) CHECK(sorted[i] == i);
  CHECK(order == kiln::data::seeded_permutation(100, {7, 0, 0}));
  CHECK(order != kiln::data::seeded_permutation(100, {8, 0, 0}));
  CHECK(order != kiln::data::seeded_permutation(100, {7, 1, 0}));
  CHECK(kiln::data::seeded_permutation(0, {7, 0, 0}).empty());
}

TEST_CASE("data/dataset: discover_splits reads the train / val / test layout") {
  const TemporaryFolder root;
  make_tree(root / "train", {{"cat", 4}, {"dog", 5}});
  make_tree(root / "test", {{"cat", 1}, {"dog", 2}});

  SUBCASE("train and test, no validation") {
    const DataSplits splits = discover_splits(root.path(), 0.0, 1);
    CHECK(splits.train.root() == root / "train");
    CHECK(splits.train.size() == 9);
    REQUIRE(splits.test);
    CHECK(splits.test->size() == 3);
    CHECK(splits.test->classes() == splits.train.classes());
    CHECK_FALSE(splits.validation);
  }
  SUBCASE("without a val folder, val_split carves validation out of train") {
    const DataSplits splits = discover_splits(root.path(), 0.25, 1);
    REQUIRE(splits.validation);
    CHECK(splits.train.size() + splits.validation->size() == 9);
    CHECK(splits.validation->size() == 2);  // one of 4 cats, round(1.25) = 1 of 5 dogs
    CHECK(splits.test->size() == 3);
  }
  SUBCASE("a val folder is used as it is") {
    make_tree(root / "val", {{"cat", 1}, {"dog", 1}});
    const DataSplits splits = discover_splits(root.path(), 0.5, 1);
    REQUIRE(splits.validation);
    CHECK(splits.validation->root() == root / "val");
    CHECK(splits.validation->size() == 2);
    CHECK(splits.train.size() == 9);
  }
  SUBCASE("a split with a different class is an error naming the class") {
    make_tree(root / "val", {{"cat", 1}, {"cow", 1}});
    CHECK_THROWS_WITH_AS(discover_splits(root.path(), 0.0, 1),
                         doctest::Contains("class 'cow' is not a class of"), Error);
  }
  SUBCASE("a split missing a class is an error naming the class") {
    make_tree(root / "train", {{"eel", 1}});
    CHECK_THROWS_WITH_AS(discover_splits(root.path(), 0.0, 1),
                         doctest::Contains(((root / "test").string() + ": class 'eel' of").c_str()), Error);
    CHECK_THROWS_WITH_AS(discover_splits(root.path(), 0.0, 1), doctest::Contains("is missing"), Error);
  }
}

TEST_CASE("data/dataset: discover_splits on one class tree makes a seeded, stratified validation split") {
  const TemporaryFolder root;
  make_tree(root.path(), {{"a", 10}, {"b", 20}, {"c", 1}});
  const DataSplits splits = discover_splits(root.path(), 0.3, 42);
  REQUIRE(splits.validation);
  CHECK_FALSE(splits.test);
  const ImageFolder& train = splits.train;
  const ImageFolder& validation = *splits.validation;
  CHECK(train.classes() == validation.classes());

  // Per class: round(0.3 * 10) = 3 and round(0.3 * 20) = 6; a class of one image stays in train.
  std::vector<int> validation_count(3), train_count(3);
  for (const auto& sample : validation.samples()) ++validation_count[static_cast<std::size_t>(sample.label)];
  for (const auto& sample : train.samples()) ++train_count[static_cast<std::size_t>(sample.label)];
  CHECK(validation_count == std::vector<int>{3, 6, 0});
  CHECK(train_count == std::vector<int>{7, 14, 1});

  // Disjoint, and together the whole folder; each half keeps the folder order.
  const std::set<std::filesystem::path> train_paths = paths_of(train),
                                        validation_paths = paths_of(validation);
  CHECK(train_paths.size() == 22);
  CHECK(validation_paths.size() == 9);
  std::set<std::filesystem::path> both = train_paths;
  both.insert(validation_paths.begin(), validation_paths.end());
  CHECK(both == paths_of(ImageFolder::scan(root.path())));
  CHECK(std::is_sorted(validation.samples().begin(), validation.samples().end(),
                       [](const auto& x, const auto& y) { return x.path < y.path; }));

  // Labels still name the folder each file is in.
  for (const auto& sample : validation.samples()) {
    CHECK(sample.path.parent_path().filename() ==
          validation.classes()[static_cast<std::size_t>(sample.label)]);
  }

  // The same seed gives the same split; another seed another one.
  CHECK(paths_of(*discover_splits(root.path(), 0.3, 42).validation) == validation_paths);
  CHECK(paths_of(*discover_splits(root.path(), 0.3, 43).validation) != validation_paths);
  // val_split 0: no validation set.
  CHECK_FALSE(discover_splits(root.path(), 0.0, 42).validation);
}

TEST_CASE("data/dataset: discover_splits rejects a val_split outside 0 to 1 and a missing root") {
  const TemporaryFolder root;
  make_tree(root.path(), {{"a", 2}, {"b", 2}});
  CHECK_THROWS_WITH_AS(discover_splits(root.path(), 1.0, 0), doctest::Contains("val_split must be in [0, 1)"),
                       Error);
  CHECK_THROWS_WITH_AS(discover_splits(root.path(), -0.1, 0),
                       doctest::Contains("val_split must be in [0, 1)"), Error);
  CHECK_THROWS_WITH_AS(discover_splits(root / "nope", 0.1, 0),
                       doctest::Contains(((root / "nope").string()).c_str()), Error);
}

}  // namespace data_dataset_test
