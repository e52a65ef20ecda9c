// Per-label decision thresholds for a multi-label model, chosen on the validation set.
//
// A sigmoid output's natural cut is 0.5, but a label that is rare, or that the model scores timidly, is
// better served by its own threshold. For each label, choose_thresholds tries every cut between the
// validation probabilities and keeps the one with the highest F1 for that label:
//
//   - the candidates are the distinct probabilities s_1 > s_2 > ... > s_m of the label on the validation
//     samples; cut k predicts the label for the samples with p >= s_k;
//   - the threshold stored for cut k is the midpoint (s_k + s_{k+1}) / 2, which predicts exactly the same
//     validation samples but does not sit on one of them (for the last cut, s_m itself);
//   - ties in F1 go to the smallest threshold (the cut predicting the label most often), as scikit-learn's
//     argmax over precision_recall_curve's ascending thresholds would;
//   - a label with no positive validation sample has F1 0 at every cut: it keeps kDefaultThreshold, and
//     ThresholdChoice::tuned says so.
//
// Without a validation set (a run with only a test split must not tune on its test images), every label
// keeps kDefaultThreshold.
#pragma once

#include <cstdint>
#include <nlohmann/json_fwd.hpp>  // declarations only; the full json.hpp costs each includer ~2 s
#include <optional>
#include <string>
#include <vector>

namespace kiln::train {

inline constexpr double kDefaultThreshold = 0.5;

struct ThresholdChoice {
  std::vector<double> thresholds;  // [L]
  std::vector<bool> tuned;         // [L] false: the label kept kDefaultThreshold (no validation positive)
  std::string chosen_on;           // "validation" or "default" (no validation set: all kDefaultThreshold)

  // {"values": [...], "tuned": [...], "chosen_on": "..."}, as the checkpoint stores it.
  nlohmann::json to_json() const;
  // Reads to_json's form; throws kiln::Error (naming `where`) unless it holds `labels` thresholds in [0, 1].
  static ThresholdChoice from_json(const nlohmann::json& json, std::size_t labels, const std::string& where);
  // kDefaultThreshold for each of `labels` labels, chosen_on "default".
  static ThresholdChoice defaults(std::size_t labels);
};

// The threshold with the best F1 for one label (see above), or nothing when no sample is positive.
std::optional<double> best_f1_threshold(const std::vector<double>& scores,
                                        const std::vector<bool>& positives);

// Thresholds for every label from validation probabilities and truth, [samples * labels] row-major.
ThresholdChoice choose_thresholds(const std::vector<double>& probabilities, const std::vector<bool>& truth,
                                  std::size_t labels);

}  // namespace kiln::train
