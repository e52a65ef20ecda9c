// Multi-label metrics over a whole evaluation pass: feed each batch's logits and multi-hot targets to
// MultiLabelMetrics::add, then ask for a MultiLabelReport at the per-label decision thresholds.
//
// Definitions (L labels, N samples; p = sigmoid(logit) is the probability the model gives a label):
//   prediction      label l applies to a sample when p >= threshold[l]
//   per label       TP, FP, FN counted over the samples; precision TP / (TP + FP), recall TP / (TP + FN),
//                   F1 2 TP / (2 TP + FP + FN), support TP + FN (the samples the label applies to)
//   macro average   the unweighted mean over all L labels (scikit-learn's average='macro' on a label
//                   indicator matrix)
//   micro average   precision, recall and F1 of the TP, FP and FN summed over the labels
//   average         scikit-learn's average_precision_score, per label: with the samples ranked by p,
//   precision (AP)  AP = sum over the distinct values t of p, descending, of (R_n - R_{n-1}) P_n, where P_n
//                   and R_n are the precision and recall of predicting p >= t and R_0 = 0. Samples with
//                   equal p enter together (one step), so ties do not depend on the samples' order. It does
//                   not depend on the threshold.
//   mAP             the mean of the per-label APs that are defined
//   exact match     samples whose predicted label set is exactly the true set / N (subset accuracy)
//   Hamming loss    (sample, label) pairs predicted wrongly / (N L)
//
// Zero divisions follow scikit-learn's zero_division=0 (precision, recall, F1 are 0). AP is undefined for
// a label with no positive sample: it is reported as absent (null in JSON, "-" in the table), not NaN, and
// left out of the mAP.
#pragma once

#include <cstdint>
#include <nlohmann/json_fwd.hpp>  // declarations only; the full json.hpp costs each includer ~2 s
#include <optional>
#include <string>
#include <vector>

#include "core/tensor.hpp"

namespace kiln::train {

struct LabelMetrics {
  double precision = 0, recall = 0, f1 = 0;
  std::int64_t support = 0;
  std::optional<double> average_precision;  // absent when no sample has the label
};

struct MultiLabelReport {
  std::int64_t labels = 0, samples = 0;
  double loss = 0;                 // binary cross-entropy, mean over samples and labels
  std::vector<double> thresholds;  // [L] the decision thresholds the counts are taken at
  std::vector<LabelMetrics> per_label;
  double macro_precision = 0, macro_recall = 0, macro_f1 = 0;
  double micro_precision = 0, micro_recall = 0, micro_f1 = 0;
  std::optional<double> mean_average_precision;  // absent when no label has a defined AP
  double exact_match = 0, hamming_loss = 0;

  // `label_names` has one name per label, or is empty to name labels by index. Fields: task
  // ("multi_label"), samples, loss, mean_average_precision, exact_match, hamming_loss, macro {precision,
  // recall, f1}, micro {precision, recall, f1}, per_label [{name, precision, recall, f1, support,
  // average_precision, threshold}].
  nlohmann::json to_json(const std::vector<std::string>& label_names) const;
  // An aligned text table: per label precision, recall, F1, support, AP and threshold, the macro and
  // micro rows, then a line with mAP, exact match, Hamming loss and loss.
  std::string table(const std::vector<std::string>& label_names) const;
};

// sigmoid(logit) in double, without overflow for large |logit|: the probability every multi-label
// number (metrics, thresholds, predict) is computed from, so the same logit always gives the same p.
double label_probability(double logit);

// One point of a label's precision-recall curve: predicting the label for the samples with p >= score
// gives `predicted` predictions, `true_positives` of them right.
struct ScoreCut {
  double score;
  double true_positives, predicted;
};

// The cuts at each distinct score of `scores`, highest first; positives[i] says whether the label applies
// to sample i. Samples with equal scores enter the same cut, so the result does not depend on their order.
std::vector<ScoreCut> score_cuts(const std::vector<double>& scores, const std::vector<bool>& positives);

// scikit-learn's average_precision_score of one label (definition above): scores[i] is sample i's
// probability, positives[i] whether the label applies to it. Absent when no sample is positive.
std::optional<double> average_precision(const std::vector<double>& scores,
                                        const std::vector<bool>& positives);

class MultiLabelMetrics {
 public:
  explicit MultiLabelMetrics(std::int64_t labels);

  // logits: float [N, L] with L = labels (any view); targets: float [N, L] of 0 and 1. loss_sum is the
  // batch's summed (not mean) binary cross-entropy, so the report's loss is a true mean over uneven
  // batches.
  void add(const Tensor& logits, const Tensor& targets, double loss_sum = 0);

  std::int64_t labels() const { return labels_; }
  std::int64_t samples() const { return static_cast<std::int64_t>(truth_.size()) / labels_; }
  // [samples * labels], row-major [sample][label]: each sample's sigmoid probabilities and targets.
  const std::vector<double>& probabilities() const { return probabilities_; }
  const std::vector<bool>& truth() const { return truth_; }

  // The report at `thresholds` ([labels], each in [0, 1]).
  MultiLabelReport report(const std::vector<double>& thresholds) const;

 private:
  std::int64_t labels_;
  std::vector<double> probabilities_;
  std::vector<bool> truth_;
  double loss_sum_ = 0;
};

}  // namespace kiln::train
