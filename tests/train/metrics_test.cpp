// Tests for ClassificationMetrics (train/metrics.hpp) against a 3-class example worked by hand, ROC-AUC
// on a two-class case with ties, the zero-division conventions for classes without samples, and the JSON
// and table renderings.
#include "train/metrics.hpp"

#include <doctest/doctest.h>

#include <cmath>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/error.hpp"

namespace train_metrics_test {

using kiln::Shape;
using kiln::Tensor;
using namespace kiln::train;

namespace {

Tensor logits_of(const std::vector<std::vector<double>>& rows) {
  std::vector<double> flat;
  for (const auto& row : rows) flat.insert(flat.end(), row.begin(), row.end());
  return Tensor::from_vector(
             flat, Shape{static_cast<std::int64_t>(rows.size()), static_cast<std::int64_t>(rows[0].size())})
      .to(kiln::DType::Float32);
}

Tensor labels_of(const std::vector<std::int64_t>& labels) {
  return Tensor::from_vector(labels, Shape{static_cast<std::int64_t>(labels.size())});
}

// Six samples of three classes (cat, dog, bird), fed in two batches:
//   logits        true  predicted  rank of the true class
//   [2, 1, 0]     cat   cat        0
//   [3, 0, 1]     cat   cat        0
//   [0, 2, 1]     dog   dog        0
//   [1, 0, 2]     dog   bird       2
//   [0, 1, 3]     bird  bird       0
//   [2, 0, 1]     bird  cat        1
// Confusion (rows true): cat [2 0 0], dog [0 1 1], bird [1 0 1].
//   cat:  TP 2, FP 1, FN 0 -> precision 2/3, recall 1,   F1 4/5
//   dog:  TP 1, FP 0, FN 1 -> precision 1,   recall 1/2, F1 2/3
//   bird: TP 1, FP 1, FN 1 -> precision 1/2, recall 1/2, F1 1/2
// Accuracy 4/6; top-2 5/6; top-3 6/6. Loss sums 1.2 + 1.8 over 6 samples: 0.5.
MetricsReport three_class_report() {
  ClassificationMetrics metrics(3);
  metrics.add(logits_of({{2, 1, 0}, {3, 0, 1}, {0, 2, 1}}), labels_of({0, 0, 1}), 1.2);
  metrics.add(logits_of({{1, 0, 2}, {0, 1, 3}, {2, 0, 1}}), labels_of({1, 2, 2}), 1.8);
  CHECK(metrics.samples() == 6);
  return metrics.report();
}

const std::vector<std::string> kNames = {"cat", "dog", "bird"};

}  // namespace

TEST_CASE("metrics: confusion matrix, per-class and macro scores of a hand-worked 3-class example") {
  const MetricsReport report = three_class_report();
  CHECK(report.samples == 6);
  CHECK(report.loss == doctest::Approx(0.5));
  CHECK(report.confusion == std::vector<std::vector<std::int64_t>>{{2, 0, 0}, {0, 1, 1}, {1, 0, 1}});
  REQUIRE(report.per_class.size() == 3);
  CHECK(report.per_class[0].precision == doctest::Approx(2.0 / 3));
  CHECK(report.per_class[0].recall == doctest::Approx(1.0));
  CHECK(report.per_class[0].f1 == doctest::Approx(0.8));
  CHECK(report.per_class[1].precision == doctest::Approx(1.0));
  CHECK(report.per_class[1].recall == doctest::Approx(0.5));
  CHECK(report.per_class[1].f1 == doctest::Approx(2.0 / 3));
  CHECK(report.per_class[2].precision == doctest::Approx(0.5));
  CHECK(report.per_class[2].recall == doctest::Approx(0.5));
  CHECK(report.per_class[2].f1 == doctest::Approx(0.5));
  CHECK(report.per_class[0].support == 2);
  CHECK(report.per_class[1].support == 2);
  CHECK(report.per_class[2].support == 2);
  CHECK(report.macro_precision == doctest::Approx((2.0 / 3 + 1 + 0.5) / 3));  // 13/18
  CHECK(report.macro_recall == doctest::Approx(2.0 / 3));
  CHECK(report.macro_f1 == doctest::Approx((0.8 + 2.0 / 3 + 0.5) / 3));  // 59/90
}

TEST_CASE("metrics: accuracy and top-k with k up to min(5, classes)") {
  const MetricsReport report = three_class_report();
  CHECK(report.accuracy == doctest::Approx(4.0 / 6));
  CHECK(report.top5_k == 3);
  REQUIRE(report.top_k_accuracy.size() == 3);
  CHECK(report.top_k_accuracy[0] == doctest::Approx(4.0 / 6));
  CHECK(report.top_k_accuracy[1] == doctest::Approx(5.0 / 6));
  CHECK(report.top_k_accuracy[2] == doctest::Approx(1.0));
  CHECK(report.top5 == doctest::Approx(1.0));

  // With seven classes k stops at 5. The first sample's true class (4) ranks 5th, below four higher
  // logits; the second's (3) ranks 4th among equal logits, after classes 0..2 (argmax's tie order).
  ClassificationMetrics seven(7);
  seven.add(logits_of({{9, 8, 7, 6, 2, 1, 0}, {0, 0, 0, 0, 0, 0, 0}}), labels_of({4, 3}));
  const MetricsReport wide = seven.report();
  CHECK(wide.top5_k == 5);
  CHECK(wide.top_k_accuracy == std::vector<double>{0, 0, 0, 0.5, 1.0});
}

TEST_CASE("metrics: ties rank like argmax, so top-1 equals accuracy") {
  // Logits [1, 1, 0]: argmax is class 0 (the first maximum). For true class 1 that is a top-1 miss and
  // a top-2 hit; for true class 0 a top-1 hit.
  ClassificationMetrics metrics(3);
  metrics.add(logits_of({{1, 1, 0}, {1, 1, 0}}), labels_of({1, 0}));
  const MetricsReport report = metrics.report();
  CHECK(report.confusion == std::vector<std::vector<std::int64_t>>{{1, 0, 0}, {1, 0, 0}, {0, 0, 0}});
  CHECK(report.accuracy == doctest::Approx(0.5));
  CHECK(report.top_k_accuracy[0] == report.accuracy);
  CHECK(report.top_k_accuracy[1] == doctest::Approx(1.0));
}

TEST_CASE("metrics: ROC-AUC counts pairs, ties as one half") {
  // Two classes, logits [0, s]: the probability of class 1 is sigmoid(s), increasing in s.
  // Positives (class 1) s = 2, 1, 0; negatives s = 1, 0, -1. Pairs won by the positive:
  //   s=2 beats all three (3); s=1 ties 1, beats 0 and -1 (2.5); s=0 loses to 1, ties 0, beats -1 (1.5).
  // AUC = 7 / 9. Class 0's AUC, on 1 - sigmoid(s) with the roles swapped, is the same 7 / 9.
  ClassificationMetrics metrics(2);
  metrics.add(logits_of({{0, 2}, {0, 1}, {0, 0}, {0, 1}, {0, 0}, {0, -1}}), labels_of({1, 1, 1, 0, 0, 0}));
  const MetricsReport report = metrics.report();
  REQUIRE(report.per_class[1].auc.has_value());
  CHECK(*report.per_class[1].auc == doctest::Approx(7.0 / 9));
  CHECK(*report.per_class[0].auc == doctest::Approx(7.0 / 9));
  REQUIRE(report.macro_auc.has_value());
  CHECK(*report.macro_auc == doctest::Approx(7.0 / 9));
  CHECK(report.top5_k == 2);

  // Perfectly separated: 1; perfectly reversed: 0; all scores equal: 1/2.
  ClassificationMetrics separated(2), reversed(2), flat(2);
  separated.add(logits_of({{0, 3}, {0, 2}, {0, -1}}), labels_of({1, 1, 0}));
  reversed.add(logits_of({{0, -3}, {0, 2}}), labels_of({1, 0}));
  flat.add(logits_of({{0, 0}, {0, 0}, {0, 0}}), labels_of({1, 0, 0}));
  CHECK(*separated.report().per_class[1].auc == doctest::Approx(1.0));
  CHECK(*reversed.report().per_class[1].auc == doctest::Approx(0.0));
  CHECK(*flat.report().per_class[1].auc == doctest::Approx(0.5));
}

TEST_CASE("metrics: a class with no samples reports zeros, no AUC, and stays out of the macro averages") {
  // Class 2 is neither present nor predicted. Classes 0 and 1 are each right once, wrong once:
  //   0: TP 1, FP 1, FN 1 -> 1/2, 1/2, 1/2; the same for 1. Macro over classes 0 and 1: 1/2.
  ClassificationMetrics metrics(3);
  metrics.add(logits_of({{2, 0, -5}, {1, 2, -5}, {0, 3, -5}, {4, 1, -5}}), labels_of({0, 0, 1, 1}));
  const MetricsReport report = metrics.report();
  CHECK(report.per_class[2].support == 0);
  CHECK(report.per_class[2].precision == 0);
  CHECK(report.per_class[2].recall == 0);
  CHECK(report.per_class[2].f1 == 0);
  CHECK_FALSE(report.per_class[2].auc.has_value());  // no positives
  CHECK(report.per_class[0].auc.has_value());
  CHECK(report.macro_precision == doctest::Approx(0.5));
  CHECK(report.macro_recall == doctest::Approx(0.5));
  CHECK(report.macro_f1 == doctest::Approx(0.5));
  const nlohmann::json json = report.to_json({"a", "b", "c"});
  CHECK(json["per_class"][2]["auc"].is_null());
  CHECK_FALSE(json["macro"]["auc"].is_null());

  // A class predicted but absent has recall 0/0 -> 0 and precision 0/1 -> 0, and does count: macro
  // recall over {0: 1, 1: 0, 2: 0} is 1/3.
  ClassificationMetrics predicted_only(3);
  predicted_only.add(logits_of({{5, 0, 0}, {0, 0, 5}}), labels_of({0, 1}));
  const MetricsReport other = predicted_only.report();
  CHECK(other.per_class[2].recall == 0);
  CHECK(other.per_class[2].precision == 0);
  CHECK(other.macro_recall == doctest::Approx(1.0 / 3));

  // No samples at all: zeros everywhere, nothing NaN.
  const MetricsReport nothing = ClassificationMetrics(3).report();
  CHECK(nothing.samples == 0);
  CHECK(nothing.accuracy == 0);
  CHECK(nothing.loss == 0);
  CHECK(nothing.macro_f1 == 0);
  CHECK_FALSE(nothing.macro_auc.has_value());
  CHECK(nothing.to_json({}).dump().find("NaN") == std::string::npos);
}

TEST_CASE("metrics: JSON fields") {
  const nlohmann::json json = three_class_report().to_json(kNames);
  CHECK(json["samples"] == 6);
  CHECK(json["loss"].get<double>() == doctest::Approx(0.5));
  CHECK(json["accuracy"].get<double>() == doctest::Approx(4.0 / 6));
  CHECK(json["top5"].get<double>() == doctest::Approx(1.0));
  CHECK(json["top5_k"] == 3);
  CHECK(json["top_k_accuracy"].size() == 3);
  CHECK(json["macro"]["recall"].get<double>() == doctest::Approx(2.0 / 3));
  CHECK(json["macro"]["auc"].is_number());
  REQUIRE(json["per_class"].size() == 3);
  CHECK(json["per_class"][1]["name"] == "dog");
  CHECK(json["per_class"][1]["precision"].get<double>() == doctest::Approx(1.0));
  CHECK(json["per_class"][1]["support"] == 2);
  CHECK(json["per_class"][1]["auc"].is_number());
  CHECK(json["confusion_matrix"] == nlohmann::json::array({{2, 0, 0}, {0, 1, 1}, {1, 0, 1}}));
  CHECK(three_class_report().to_json({})["per_class"][2]["name"] == "2");  // unnamed classes go by index
  CHECK_THROWS_WITH_AS(three_class_report().to_json({"cat"}),
                       doctest::Contains("1 class names for 3 classes"), kiln::Error);
}

TEST_CASE("metrics: the table shows class names, scores and the confusion matrix") {
  const std::string table = three_class_report().table({"cat", "dog", "a_very_long_class_name_indeed"});
  MESSAGE("\n" << table);
  CHECK(table.find("cat") != std::string::npos);
  CHECK(table.find("dog") != std::string::npos);
  CHECK(table.find("macro avg") != std::string::npos);
  CHECK(table.find("0.6667") != std::string::npos);  // cat precision, dog F1, accuracy
  CHECK(table.find("0.8000") != std::string::npos);  // cat F1
  CHECK(table.find("accuracy 0.6667") != std::string::npos);
  CHECK(table.find("top-3 1.0000") != std::string::npos);
  CHECK(table.find("loss 0.5000") != std::string::npos);
  CHECK(table.find("confusion matrix") != std::string::npos);
  CHECK(table.find("a_very_long_class_name_.") != std::string::npos);  // row label cut to 24 columns
  CHECK(table.find(" a_ver.") != std::string::npos);                   // column heading cut to 6
  CHECK(table.find("a_very_long_class_name_indeed") == std::string::npos);
  // The third row of the confusion matrix: 1 0 1.
  CHECK(table.find("      1      0      1\n") != std::string::npos);
}

TEST_CASE("metrics: bad inputs are named") {
  ClassificationMetrics metrics(3);
  CHECK_THROWS_WITH_AS(metrics.add(logits_of({{1, 2}}), labels_of({0})),
                       doctest::Contains("are not float [N, 3]"), kiln::Error);
  CHECK_THROWS_WITH_AS(metrics.add(logits_of({{1, 2, 3}}), labels_of({3})),
                       doctest::Contains("label 3 of sample 0 is outside [0, 3)"), kiln::Error);
  CHECK_THROWS_WITH_AS(metrics.add(logits_of({{1, 2, 3}}), labels_of({0, 1})),
                       doctest::Contains("are not int64[1]"), kiln::Error);
  CHECK_THROWS_WITH_AS(metrics.add(logits_of({{1, NAN, 3}}), labels_of({0})),
                       doctest::Contains("not all finite"), kiln::Error);
  CHECK(metrics.samples() == 0);
  CHECK_THROWS_WITH_AS(ClassificationMetrics(0), doctest::Contains("at least one class"), kiln::Error);
}

}  // namespace train_metrics_test
