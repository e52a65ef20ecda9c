#include "train/multi_label_metrics.hpp"

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <numeric>
#include <sstream>

#include "core/error.hpp"
#include "train/report_format.hpp"

namespace kiln::train {
namespace {

// One label's row of MultiLabelReport::to_json.
nlohmann::json label_json(const std::string& name, const LabelMetrics& metrics, double threshold) {
  nlohmann::json row = score_row_json(name, metrics.precision, metrics.recall, metrics.f1, metrics.support);
  row["average_precision"] = optional_to_json(metrics.average_precision);
  row["threshold"] = threshold;
  return row;
}

}  // namespace

double label_probability(double logit) {
  if (logit >= 0) return 1.0 / (1.0 + std::exp(-logit));
  const double e = std::exp(logit);
  return e / (1.0 + e);
}

std::vector<ScoreCut> score_cuts(const std::vector<double>& scores, const std::vector<bool>& positives) {
  KILN_CHECK(scores.size() == positives.size(), "multi-label metrics: ", scores.size(), " scores for ",
             positives.size(), " targets");
  std::vector<std::size_t> order(scores.size());
  std::iota(order.begin(), order.end(), std::size_t{0});
  std::sort(order.begin(), order.end(), [&](std::size_t a, std::size_t b) { return scores[a] > scores[b]; });
  std::vector<ScoreCut> cuts;
  for (std::size_t i = 0; i < order.size(); ++i) {
    const double score = scores[order[i]];
    // Equal scores cross a threshold together: they extend the last cut rather than making a new one.
    if (cuts.empty() || cuts.back().score != score) {
      cuts.push_back(cuts.empty() ? ScoreCut{score, 0, 0}
                                  : ScoreCut{score, cuts.back().true_positives, cuts.back().predicted});
    }
    cuts.back().true_positives += positives[order[i]] ? 1 : 0;
    cuts.back().predicted += 1;
  }
  return cuts;
}

std::optional<double> average_precision(const std::vector<double>& scores,
                                        const std::vector<bool>& positives) {
  const std::vector<ScoreCut> cuts = score_cuts(scores, positives);
  const double total_positives = cuts.empty() ? 0 : cuts.back().true_positives;  // the last cut takes all
  if (total_positives == 0) return std::nullopt;
  double ap = 0, previous_recall = 0;
  for (const ScoreCut& cut : cuts) {
    const double recall = cut.true_positives / total_positives;
    ap += (recall - previous_recall) * cut.true_positives / cut.predicted;  // (R_n - R_{n-1}) P_n
    previous_recall = recall;
  }
  return ap;
}

MultiLabelMetrics::MultiLabelMetrics(std::int64_t labels) : labels_(labels) {
  KILN_CHECK(labels >= 1, "multi-label metrics: need at least one label, got ", labels);
}

void MultiLabelMetrics::add(const Tensor& logits, const Tensor& targets, double loss_sum) {
  KILN_CHECK(logits.dim() == 2 && logits.size(1) == labels_ && is_floating(logits.dtype()),
             "multi-label metrics: logits ", logits.describe(), " are not float [N, ", labels_, "]");
  KILN_CHECK(targets.shape() == logits.shape() && is_floating(targets.dtype()),
             "multi-label metrics: targets ", targets.describe(), " do not match logits ", logits.describe());
  const std::vector<double> values = logits.to_vector<double>(), wanted = targets.to_vector<double>();
  for (const double target : wanted) {
    KILN_CHECK(target == 0 || target == 1, "multi-label metrics: a target is ", target, ", not 0 or 1");
  }
  for (std::size_t i = 0; i < values.size(); ++i) {
    probabilities_.push_back(label_probability(values[i]));
    truth_.push_back(wanted[i] == 1);
  }
  loss_sum_ += loss_sum;
}

MultiLabelReport MultiLabelMetrics::report(const std::vector<double>& thresholds) const {
  const auto width = static_cast<std::size_t>(labels_);
  KILN_CHECK(thresholds.size() == width, "multi-label metrics: ", thresholds.size(), " thresholds for ",
             labels_, " labels");
  MultiLabelReport report;
  report.labels = labels_;
  report.samples = samples();
  report.thresholds = thresholds;
  const auto samples_count = static_cast<std::size_t>(report.samples);
  report.loss = ratio(loss_sum_, static_cast<double>(samples_count * width));

  // Per label: the counts at the threshold, and AP from the label's column of probabilities.
  std::vector<double> tp(width, 0), fp(width, 0), fn(width, 0);
  std::int64_t exact = 0, wrong_pairs = 0;
  for (std::size_t i = 0; i < samples_count; ++i) {
    bool all_right = true;
    for (std::size_t l = 0; l < width; ++l) {
      const bool predicted = probabilities_[i * width + l] >= thresholds[l], actual = truth_[i * width + l];
      tp[l] += predicted && actual ? 1 : 0;
      fp[l] += predicted && !actual ? 1 : 0;
      fn[l] += !predicted && actual ? 1 : 0;
      if (predicted != actual) {
        all_right = false;
        ++wrong_pairs;
      }
    }
    exact += all_right ? 1 : 0;
  }
  report.exact_match = ratio(static_cast<double>(exact), static_cast<double>(samples_count));
  report.hamming_loss = ratio(static_cast<double>(wrong_pairs), static_cast<double>(samples_count * width));

  double ap_sum = 0;
  int labels_with_ap = 0;
  for (std::size_t l = 0; l < width; ++l) {
    LabelMetrics metrics;
    metrics.precision = ratio(tp[l], tp[l] + fp[l]);
    metrics.recall = ratio(tp[l], tp[l] + fn[l]);
    metrics.f1 = ratio(2 * tp[l], 2 * tp[l] + fp[l] + fn[l]);
    metrics.support = static_cast<std::int64_t>(tp[l] + fn[l]);
    std::vector<double> scores(samples_count);
    std::vector<bool> positives(samples_count);
    for (std::size_t i = 0; i < samples_count; ++i) {
      scores[i] = probabilities_[i * width + l];
      positives[i] = truth_[i * width + l];
    }
    metrics.average_precision = average_precision(scores, positives);
    if (metrics.average_precision) {
      ap_sum += *metrics.average_precision;
      ++labels_with_ap;
    }
    report.macro_precision += metrics.precision / static_cast<double>(width);
    report.macro_recall += metrics.recall / static_cast<double>(width);
    report.macro_f1 += metrics.f1 / static_cast<double>(width);
    report.per_label.push_back(metrics);
  }
  if (labels_with_ap > 0) report.mean_average_precision = ap_sum / labels_with_ap;
  const double all_tp = std::accumulate(tp.begin(), tp.end(), 0.0),
               all_fp = std::accumulate(fp.begin(), fp.end(), 0.0),
               all_fn = std::accumulate(fn.begin(), fn.end(), 0.0);
  report.micro_precision = ratio(all_tp, all_tp + all_fp);
  report.micro_recall = ratio(all_tp, all_tp + all_fn);
  report.micro_f1 = ratio(2 * all_tp, 2 * all_tp + all_fp + all_fn);
  return report;
}

nlohmann::json MultiLabelReport::to_json(const std::vector<std::string>& label_names) const {
  const std::vector<std::string> names = names_for(label_names, labels);
  nlohmann::json per_label_json = nlohmann::json::array();
  for (std::size_t l = 0; l < per_label.size(); ++l)
    per_label_json.push_back(label_json(names[l], per_label[l], thresholds[l]));
  return {{"task", "multi_label"},
          {"samples", samples},
          {"loss", loss},
          {"mean_average_precision", optional_to_json(mean_average_precision)},
          {"exact_match", exact_match},
          {"hamming_loss", hamming_loss},
          {"macro", {{"precision", macro_precision}, {"recall", macro_recall}, {"f1", macro_f1}}},
          {"micro", {{"precision", micro_precision}, {"recall", micro_recall}, {"f1", micro_f1}}},
          {"per_label", per_label_json}};
}

std::string MultiLabelReport::table(const std::vector<std::string>& label_names) const {
  const std::vector<std::string> names = names_for(label_names, labels);
  constexpr std::size_t kNumberWidth = 10, kThresholdWidth = 11;
  const std::size_t name_width = name_column_width(names, {"macro avg", "micro avg", "label"});

  std::ostringstream out;
  out << pad_right("label", name_width);
  for (const char* heading : {"precision", "recall", "f1", "support", "AP"})
    out << pad_left(heading, kNumberWidth);
  out << pad_left("threshold", kThresholdWidth) << '\n';
  // ap and threshold are text: "-" for an undefined AP, blank where the column does not apply.
  const auto row = [&](const std::string& label, double precision, double recall, double f1,
                       std::int64_t support, const std::string& ap, const std::string& threshold) {
    std::string line = pad_right(abbreviate(label, name_width), name_width) +
                       pad_left(fixed(precision), kNumberWidth) + pad_left(fixed(recall), kNumberWidth) +
                       pad_left(fixed(f1), kNumberWidth) + pad_left(std::to_string(support), kNumberWidth) +
                       pad_left(ap, kNumberWidth) + pad_left(threshold, kThresholdWidth);
    line.erase(line.find_last_not_of(' ') + 1);  // no trailing blanks where the columns are empty
    out << line << '\n';
  };
  std::int64_t positives = 0;
  for (std::size_t l = 0; l < per_label.size(); ++l) {
    const LabelMetrics& m = per_label[l];
    row(names[l], m.precision, m.recall, m.f1, m.support, fixed_or_dash(m.average_precision),
        fixed(thresholds[l], 3));
    positives += m.support;
  }
  // The averages' support is every (image, label) pair that applies; the macro row's AP is the mAP.
  row("macro avg", macro_precision, macro_recall, macro_f1, positives, fixed_or_dash(mean_average_precision),
      "");
  row("micro avg", micro_precision, micro_recall, micro_f1, positives, "", "");
  out << "\nmAP " << fixed_or_dash(mean_average_precision) << "   exact match " << fixed(exact_match)
      << "   Hamming loss " << fixed(hamming_loss) << "   loss " << fixed(loss) << "   samples " << samples
      << '\n';
  return out.str();
}

}  // namespace kiln::train
