#include "train/multi_label_thresholds.hpp"

#include <cmath>
#include <nlohmann/json.hpp>

#include "core/error.hpp"
#include "train/multi_label_metrics.hpp"

namespace kiln::train {

nlohmann::json ThresholdChoice::to_json() const {
  return {{"values", thresholds}, {"tuned", tuned}, {"chosen_on", chosen_on}};
}

ThresholdChoice ThresholdChoice::from_json(const nlohmann::json& json, std::size_t labels,
                                           const std::string& where) {
  ThresholdChoice choice;
  try {
    choice.thresholds = json.at("values").get<std::vector<double>>();
    choice.tuned = json.at("tuned").get<std::vector<bool>>();
    choice.chosen_on = json.at("chosen_on").get<std::string>();
  } catch (const nlohmann::json::exception& error) {
    fail(where, ": malformed thresholds (", error.what(), ")");
  }
  KILN_CHECK(choice.thresholds.size() == labels && choice.tuned.size() == labels, where, ": ",
             choice.thresholds.size(), " thresholds for ", labels, " labels");
  for (const double threshold : choice.thresholds) {
    KILN_CHECK(std::isfinite(threshold) && threshold >= 0 && threshold <= 1, where, ": threshold ", threshold,
               " is not in [0, 1]");
  }
  return choice;
}

ThresholdChoice ThresholdChoice::defaults(std::size_t labels) {
  return {std::vector<double>(labels, kDefaultThreshold), std::vector<bool>(labels, false), "default"};
}

std::optional<double> best_f1_threshold(const std::vector<double>& scores,
                                        const std::vector<bool>& positives) {
  const std::vector<ScoreCut> cuts = score_cuts(scores, positives);              // s_1 > s_2 > ... > s_m
  const double total_positives = cuts.empty() ? 0 : cuts.back().true_positives;  // the last cut takes all
  if (total_positives == 0) return std::nullopt;
  std::size_t best = 0;
  double best_f1 = -1;
  for (std::size_t k = 0; k < cuts.size(); ++k) {
    // 2 TP / (2 TP + FP + FN) with FP = predicted - TP and FN = positives - TP.
    const double f1 = 2 * cuts[k].true_positives / (cuts[k].predicted + total_positives);
    if (f1 >= best_f1) {  // >=: a later cut has a smaller threshold, and ties go to the smallest
      best_f1 = f1;
      best = k;
    }
  }
  if (best + 1 == cuts.size()) return cuts[best].score;  // nothing below the last cut
  const double midpoint = (cuts[best].score + cuts[best + 1].score) / 2;
  // The midpoint must still leave s_{k+1} below it; rounding can only fail that for adjacent doubles.
  return midpoint > cuts[best + 1].score ? midpoint : cuts[best].score;
}

ThresholdChoice choose_thresholds(const std::vector<double>& probabilities, const std::vector<bool>& truth,
                                  std::size_t labels) {
  KILN_CHECK(labels > 0 && probabilities.size() == truth.size() && probabilities.size() % labels == 0,
             "choose_thresholds: ", probabilities.size(), " probabilities and ", truth.size(),
             " targets for ", labels, " labels");
  const std::size_t samples = probabilities.size() / labels;
  ThresholdChoice choice = ThresholdChoice::defaults(labels);
  choice.chosen_on = "validation";
  for (std::size_t l = 0; l < labels; ++l) {
    std::vector<double> scores(samples);
    std::vector<bool> positives(samples);
    for (std::size_t i = 0; i < samples; ++i) {
      scores[i] = probabilities[i * labels + l];
      positives[i] = truth[i * labels + l];
    }
    if (const std::optional<double> threshold = best_f1_threshold(scores, positives)) {
      choice.thresholds[l] = *threshold;
      choice.tuned[l] = true;
    }
  }
  return choice;
}

}  // namespace kiln::train
