// Tests for train/multi_label_metrics.hpp and train/multi_label_thresholds.hpp against small cases worked
// out by hand (the arithmetic is in the comments): average precision with and without tied scores, the
// per-label, macro and micro counts, exact match and Hamming loss at given thresholds, an undefined AP,
// and the F1-best threshold with its tie rule.
#include "train/multi_label_metrics.hpp"

#include <doctest/doctest.h>

#include <nlohmann/json.hpp>
#include <vector>

#include "core/error.hpp"
#include "train/multi_label_thresholds.hpp"

namespace train_multi_label_metrics_test {

namespace train = kiln::train;
using doctest::Approx, kiln::Tensor;
using train::average_precision, train::best_f1_threshold, train::MultiLabelMetrics, train::MultiLabelReport;

TEST_CASE("multi_label_metrics: average precision is scikit-learn's, ties entering together") {
  // Ranked 0.9 (pos), 0.8 (neg), 0.7 (pos), 0.6 (neg), 2 positives:
  //   0.9: P 1/1, R 1/2 -> + (1/2 - 0) * 1     = 1/2
  //   0.8: R stays 1/2  -> + 0
  //   0.7: P 2/3, R 1   -> + (1 - 1/2) * 2/3   = 1/3
  //   0.6: R stays 1    -> + 0                  AP = 5/6
  CHECK(*average_precision({0.9, 0.8, 0.7, 0.6}, {true, false, true, false}) == Approx(5.0 / 6.0));
  // The input order does not matter.
  CHECK(*average_precision({0.6, 0.7, 0.8, 0.9}, {false, true, false, true}) == Approx(5.0 / 6.0));

  // Tied scores are one step: 0.5 (pos), 0.5 (neg), 0.2 (pos):
  //   0.5: P 1/2, R 1/2 -> 1/4;   0.2: P 2/3, R 1 -> + 1/2 * 2/3 = 1/3;   AP = 7/12
  // (one at a time, the positive first, it would be 1/2 + 1/3 = 5/6; the negative first, 1/4 + 1/3).
  CHECK(*average_precision({0.5, 0.5, 0.2}, {true, false, true}) == Approx(7.0 / 12.0));
  CHECK(*average_precision({0.5, 0.5, 0.2}, {false, true, true}) == Approx(7.0 / 12.0));

  // Perfect ranking: AP 1. No positive: undefined.
  CHECK(*average_precision({0.2, 0.9}, {false, true}) == Approx(1.0));
  CHECK_FALSE(average_precision({0.2, 0.9}, {false, false}));
}

TEST_CASE("multi_label_metrics: per-label, macro, micro, exact match and Hamming loss by hand") {
  // 4 samples, 2 labels. p = sigmoid(logit); at threshold 0.5, a label is predicted when logit >= 0.
  //   sample  logits    p                predicted  truth
  //   0       ( 2, -2)  (0.881, 0.119)   (1, 0)     (1, 1)   label 1 missed
  //   1       (-1,  3)  (0.269, 0.953)   (0, 1)     (1, 1)   label 0 missed
  //   2       ( 1, .5)  (0.731, 0.622)   (1, 1)     (0, 1)   label 0 false alarm
  //   3       (-3, -3)  (0.047, 0.047)   (0, 0)     (0, 0)   exact
  const Tensor logits = Tensor::from_vector(std::vector<float>{2, -2, -1, 3, 1, 0.5f, -3, -3}, {4, 2});
  const Tensor targets = Tensor::from_vector(std::vector<float>{1, 1, 1, 1, 0, 1, 0, 0}, {4, 2});
  MultiLabelMetrics metrics(2);
  metrics.add(logits, targets, /*loss_sum=*/4.0);
  CHECK(metrics.samples() == 4);
  const MultiLabelReport report = metrics.report({0.5, 0.5});

  // Label 0: TP 1 (s0), FP 1 (s2), FN 1 (s1): P 1/2, R 1/2, F1 2/(2+1+1) = 1/2, support 2.
  CHECK(report.per_label[0].precision == Approx(0.5));
  CHECK(report.per_label[0].recall == Approx(0.5));
  CHECK(report.per_label[0].f1 == Approx(0.5));
  CHECK(report.per_label[0].support == 2);
  // Label 1: TP 2 (s1, s2), FP 0, FN 1 (s0): P 1, R 2/3, F1 4/(4+0+1) = 0.8, support 3.
  CHECK(report.per_label[1].precision == Approx(1.0));
  CHECK(report.per_label[1].recall == Approx(2.0 / 3.0));
  CHECK(report.per_label[1].f1 == Approx(0.8));
  CHECK(report.per_label[1].support == 3);
  // Macro: the means (1/2 + 1)/2, (1/2 + 2/3)/2, (1/2 + 0.8)/2.
  CHECK(report.macro_precision == Approx(0.75));
  CHECK(report.macro_recall == Approx(7.0 / 12.0));
  CHECK(report.macro_f1 == Approx(0.65));
  // Micro: TP 3, FP 1, FN 2: P 3/4, R 3/5, F1 6/(6+1+2) = 2/3.
  CHECK(report.micro_precision == Approx(0.75));
  CHECK(report.micro_recall == Approx(0.6));
  CHECK(report.micro_f1 == Approx(2.0 / 3.0));
  // Exact match: only sample 3, 1/4. Hamming loss: 3 wrong (sample, label) pairs of 8.
  CHECK(report.exact_match == Approx(0.25));
  CHECK(report.hamming_loss == Approx(0.375));
  CHECK(report.loss == Approx(0.5));  // 4.0 summed over 8 (sample, label) pairs
  // AP, label 0: 0.881 pos (P 1, R 1/2), 0.731 neg, 0.269 pos (P 2/3, R 1), 0.047 neg: 1/2 + 1/3 = 5/6.
  // AP, label 1: the three positives outrank the negative: 1. mAP (5/6 + 1) / 2 = 11/12.
  CHECK(*report.per_label[0].average_precision == Approx(5.0 / 6.0));
  CHECK(*report.per_label[1].average_precision == Approx(1.0));
  CHECK(*report.mean_average_precision == Approx(11.0 / 12.0));

  // Label 0 at threshold 0.8: only s0 (0.881) is predicted: TP 1, FP 0, FN 1: P 1, R 1/2, F1 2/3. AP
  // does not depend on the threshold.
  const MultiLabelReport stricter = metrics.report({0.8, 0.5});
  CHECK(stricter.per_label[0].precision == Approx(1.0));
  CHECK(stricter.per_label[0].f1 == Approx(2.0 / 3.0));
  CHECK(*stricter.per_label[0].average_precision == Approx(5.0 / 6.0));
  // A threshold is inclusive: p >= t. sigmoid(1) = 0.7310585786: at exactly that, sample 2 is predicted.
  CHECK(metrics.report({metrics.probabilities()[4], 0.5}).per_label[0].precision == Approx(0.5));

  const nlohmann::json json = report.to_json({"cat", "dog"});
  CHECK(json.at("task") == "multi_label");
  CHECK(json.at("per_label").at(1).at("name") == "dog");
  CHECK(json.at("per_label").at(1).at("threshold") == 0.5);
  CHECK(json.at("micro").at("recall").get<double>() == Approx(0.6));
  const std::string table = report.table({"cat", "dog"});
  CHECK(table.find("micro avg") != std::string::npos);
  CHECK(table.find("mAP 0.9167") != std::string::npos);

  CHECK_THROWS_WITH_AS(metrics.report({0.5}), doctest::Contains("1 thresholds for 2 labels"), kiln::Error);
  CHECK_THROWS_WITH_AS(
      metrics.add(logits, Tensor::from_vector(std::vector<float>{0.5f, 0, 0, 0, 0, 0, 0, 0}, {4, 2})),
      doctest::Contains("not 0 or 1"), kiln::Error);
}

TEST_CASE("multi_label_metrics: a label with no positive sample has no AP, shown absent, not NaN") {
  MultiLabelMetrics metrics(2);
  metrics.add(Tensor::from_vector(std::vector<float>{1, -1, -1, 2}, {2, 2}),
              Tensor::from_vector(std::vector<float>{1, 0, 0, 0}, {2, 2}));
  const MultiLabelReport report = metrics.report({0.5, 0.5});
  CHECK(*report.per_label[0].average_precision == Approx(1.0));
  CHECK_FALSE(report.per_label[1].average_precision);
  CHECK(*report.mean_average_precision == Approx(1.0));  // the defined APs only
  CHECK(report.per_label[1].support == 0);
  CHECK(report.per_label[1].precision == 0.0);  // one false alarm, no hit
  CHECK(report.to_json({}).at("per_label").at(1).at("average_precision").is_null());

  MultiLabelMetrics none(1);
  none.add(Tensor::from_vector(std::vector<float>{1}, {1, 1}),
           Tensor::from_vector(std::vector<float>{0}, {1, 1}));
  CHECK_FALSE(none.report({0.5}).mean_average_precision);
}

TEST_CASE("multi_label_thresholds: the F1-best cut, its midpoint, ties to the smallest threshold") {
  // Cuts of 0.9 (pos), 0.8 (neg), 0.7 (pos), 0.6 (pos), 0.2 (neg), 3 positives; F1 = 2 TP / (predicted + 3):
  //   >= 0.9: 2/4 = 0.5   >= 0.8: 2/5   >= 0.7: 4/6   >= 0.6: 6/7 = 0.857 (best)   >= 0.2: 6/8
  // Its threshold is the midpoint (0.6 + 0.2) / 2 = 0.4.
  CHECK(*best_f1_threshold({0.9, 0.8, 0.7, 0.6, 0.2}, {true, false, true, true, false}) == Approx(0.4));

  // 0.9 (pos), 0.8 (neg), 0.7 (neg), 0.6 (pos), 0.3 (neg), 2 positives:
  //   >= 0.9: 2/3   >= 0.8: 2/4   >= 0.7: 2/5   >= 0.6: 4/6 = 2/3 (ties the first)   >= 0.3: 4/7
  // The tie goes to the smaller threshold: (0.6 + 0.3) / 2 = 0.45, not (0.9 + 0.8) / 2.
  CHECK(*best_f1_threshold({0.9, 0.8, 0.7, 0.6, 0.3}, {true, false, false, true, false}) == Approx(0.45));

  // Every sample positive: the last cut (F1 1) has nothing below it, so its threshold is its score.
  CHECK(*best_f1_threshold({0.3, 0.2}, {true, true}) == Approx(0.2));
  CHECK_FALSE(best_f1_threshold({0.3, 0.2}, {false, false}));

  // choose_thresholds: label 0 as the first case above; label 1 has no positive and keeps 0.5.
  const std::vector<double> probabilities{0.9, 0.1, 0.8, 0.1, 0.7, 0.1, 0.6, 0.1, 0.2, 0.1};
  const std::vector<bool> truth{true, false, false, false, true, false, true, false, false, false};
  const train::ThresholdChoice choice = train::choose_thresholds(probabilities, truth, 2);
  CHECK(choice.thresholds[0] == Approx(0.4));
  CHECK(choice.thresholds[1] == train::kDefaultThreshold);
  CHECK(choice.tuned == std::vector<bool>{true, false});
  CHECK(choice.chosen_on == "validation");

  const auto round_trip = train::ThresholdChoice::from_json(choice.to_json(), 2, "test");
  CHECK(round_trip.thresholds == choice.thresholds);
  CHECK_THROWS_WITH_AS(train::ThresholdChoice::from_json(choice.to_json(), 3, "ckpt"),
                       doctest::Contains("ckpt: 2 thresholds for 3 labels"), kiln::Error);
}

}  // namespace train_multi_label_metrics_test
