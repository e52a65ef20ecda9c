// Tests for train/class_balance.hpp: the imbalance measure and its threshold, the auto weights formula,
// and the class weights file with each of its errors.
#include "train/class_balance.hpp"

#include <doctest/doctest.h>
#include <unistd.h>

#include <fstream>
#include <nlohmann/json.hpp>
#include <numeric>

#include "core/error.hpp"

namespace train_class_balance_test {

using kiln::Error;
using namespace kiln::train;
namespace fs = std::filesystem;

namespace {

// A folder held in memory only: class_balance looks at the labels, not the files.
kiln::data::ImageFolder folder_with(const std::vector<std::string>& classes, const std::vector<int>& counts) {
  std::vector<kiln::data::Sample> samples;
  for (std::size_t c = 0; c < classes.size(); ++c) {
    for (int i = 0; i < counts[c]; ++i) {
      samples.push_back({fs::path(classes[c]) / (std::to_string(i) + ".png"), static_cast<std::int64_t>(c)});
    }
  }
  return kiln::data::ImageFolder("root", classes, samples);
}

const std::vector<std::string> kPets{"cat", "dog", "guinea pig"};

}  // namespace

TEST_CASE("train/class_balance: counts, largest and smallest, ratio and the 1.5 threshold") {
  const ClassBalance balance = class_balance(folder_with({"ant", "bee", "cow"}, {40, 120, 30}));
  CHECK(balance.counts == std::vector<std::int64_t>{40, 120, 30});
  CHECK(balance.largest == 1);
  CHECK(balance.smallest == 2);
  CHECK(balance.ratio == doctest::Approx(4.0));
  CHECK(balance.imbalanced());
  CHECK(balance.summary() ==
        "largest 'bee' 120 images, smallest 'cow' 30 (ratio 4.00 > 1.5); per class: ant 40, bee 120, cow 30");
  const nlohmann::json json = balance.to_json();
  CHECK(json.at("counts").at("bee") == 120);
  CHECK(json.at("smallest") == nlohmann::json{{"name", "cow"}, {"images", 30}});
  CHECK(json.at("imbalanced") == true);
  CHECK(json.at("threshold") == kImbalanceWarningRatio);

  CHECK_FALSE(class_balance(folder_with({"a", "b"}, {30, 20})).imbalanced());  // exactly 1.5 passes
  CHECK(class_balance(folder_with({"a", "b"}, {31, 20})).imbalanced());
  const ClassBalance even = class_balance(folder_with({"a", "b"}, {5, 5}));
  CHECK(even.ratio == 1.0);
  CHECK(even.largest == 0);  // the first on ties
  CHECK(even.smallest == 0);
}

TEST_CASE("train/class_balance: the summary leaves out the per-class list beyond 12 classes") {
  std::vector<std::string> names;
  std::vector<int> counts;
  for (int c = 0; c < 13; ++c) {
    names.push_back(std::string(1, 'c').append(std::to_string(10 + c)));
    counts.push_back(10 + c);
  }
  const std::string summary = class_balance(folder_with(names, counts)).summary();
  CHECK(summary == "largest 'c22' 22 images, smallest 'c10' 10 (ratio 2.20 > 1.5)");
}

TEST_CASE("train/class_balance: auto weights are inverse frequency with mean 1") {
  const std::vector<double> two = auto_class_weights({900, 100});
  REQUIRE(two.size() == 2);
  CHECK(two[0] == doctest::Approx(0.2));
  CHECK(two[1] == doctest::Approx(1.8));
  CHECK(auto_class_weights({7, 7, 7}) == std::vector<double>{1.0, 1.0, 1.0});

  const std::vector<std::int64_t> counts{5, 10, 20, 40};
  const std::vector<double> weights = auto_class_weights(counts);
  CHECK(std::accumulate(weights.begin(), weights.end(), 0.0) / 4 == doctest::Approx(1.0));
  for (std::size_t c = 0; c < counts.size(); ++c) {
    // w_c = (1 / n_c) / mean_k (1 / n_k), with mean_k (1 / n_k) = (1/5 + 1/10 + 1/20 + 1/40) / 4 = 0.09375
    CHECK(weights[c] == doctest::Approx(1.0 / static_cast<double>(counts[c]) / 0.09375));
    // so every class carries the same total weight
    CHECK(weights[c] * static_cast<double>(counts[c]) == doctest::Approx(weights[0] * 5.0));
  }
  CHECK_THROWS_WITH_AS(auto_class_weights({3, 0}), doctest::Contains("class 1 has 0 images"), Error);
  CHECK_THROWS_AS(auto_class_weights({}), Error);
}

TEST_CASE("train/class_balance: a weights file with a header, comments, spaces and any order") {
  const std::string text =
      "class,weight\n"
      "# pets\n"
      "dog, 2.5\n"
      "\n"
      "guinea pig\t4   # a name with a space, a tab before the weight\n"
      "  cat ,1e-1\r\n";
  CHECK(parse_class_weights(text, kPets, "w.csv") == std::vector<double>{0.1, 2.5, 4.0});
}

TEST_CASE("train/class_balance: weights file errors name the file, the line and the class") {
  const auto error_of = [](const std::string& text) {
    try {
      parse_class_weights(text, kPets, "weights.csv");
    } catch (const Error& error) {
      return std::string(error.what());
    }
    return std::string("(no error)");
  };
  CHECK(error_of("cat,1\ndog,1\nhamster,2\nguinea pig,1\n") ==
        "weights.csv:3: unknown class 'hamster' (the classes are: cat, dog, guinea pig)");
  CHECK(error_of("cat,1\ndog,1\ncat,2\n") == "weights.csv:3: class 'cat' is given twice (first on line 1)");
  CHECK(error_of("cat,1\n") ==
        "weights.csv: no weight for classes 'dog', 'guinea pig' (every class needs one line "
        "\"class,weight\")");
  CHECK(error_of("cat,1\ndog,1\n") ==
        "weights.csv: no weight for class 'guinea pig' (every class needs one line \"class,weight\")");
  CHECK(error_of("cat,0\n") == "weights.csv:1: the weight of class 'cat' must be a number > 0, got '0'");
  CHECK(error_of("cat,-2\n").find("must be a number > 0, got '-2'") != std::string::npos);
  CHECK(error_of("cat,nan\n").find("must be a number > 0, got 'nan'") != std::string::npos);
  CHECK(error_of("cat,heavy\n").find("must be a number > 0, got 'heavy'") != std::string::npos);
  CHECK(error_of("cat,2x\n").find("got '2x'") != std::string::npos);
  CHECK(error_of("cat\n") == "weights.csv:1: expected \"class,weight\", got 'cat'");
  CHECK(error_of(",3\n") == "weights.csv:1: no class name before the weight in ',3'");
}

TEST_CASE("train/class_balance: read_class_weights_file and resolve_class_weights") {
  const fs::path file =
      fs::temp_directory_path() / ("kiln-class-weights-" + std::to_string(::getpid()) + ".csv");
  std::ofstream(file) << "cat,1\ndog,2\nguinea pig,3\n";
  CHECK(read_class_weights_file(file, kPets) == std::vector<double>{1, 2, 3});
  const ClassBalance balance = class_balance(folder_with(kPets, {10, 20, 40}));
  CHECK(resolve_class_weights(file.string(), balance) == std::vector<double>{1, 2, 3});
  CHECK(resolve_class_weights("", balance).empty());
  CHECK(resolve_class_weights("auto", balance) == auto_class_weights({10, 20, 40}));
  fs::remove(file);
  CHECK_THROWS_WITH_AS(read_class_weights_file(file, kPets),
                       doctest::Contains((file.string() + ": cannot open the class weights file").c_str()),
                       Error);
}

}  // namespace train_class_balance_test
