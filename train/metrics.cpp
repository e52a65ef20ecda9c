#include "train/metrics.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <numeric>
#include <sstream>

#include "core/error.hpp"
#include "train/report_format.hpp"

namespace kiln::train {
namespace {

constexpr std::int64_t kTopKMax = 5;

// One-vs-rest ROC-AUC of `positive_class` from each sample's probability of that class.
//
// Rank all samples by score, ascending, giving tied scores the mean of the ranks they span (mid-ranks).
// With R the sum of the positives' ranks, U = R - P (P + 1) / 2 counts the (positive, negative) pairs in
// which the positive scores higher, ties counting one half; AUC = U / (P * N).
std::optional<double> one_vs_rest_auc(const std::vector<double>& probabilities,
                                      const std::vector<std::int64_t>& labels, std::int64_t classes,
                                      std::int64_t positive_class) {
  struct Scored {
    double score;
    bool positive;
  };
  std::vector<Scored> samples;
  samples.reserve(labels.size());
  for (std::size_t i = 0; i < labels.size(); ++i) {
    samples.push_back(
        {probabilities[i * static_cast<std::size_t>(classes) + static_cast<std::size_t>(positive_class)],
         labels[i] == positive_class});
  }
  const auto positives = static_cast<double>(
      std::count_if(samples.begin(), samples.end(), [](const Scored& s) { return s.positive; }));
  const double negatives = static_cast<double>(samples.size()) - positives;
  if (positives == 0 || negatives == 0) return std::nullopt;

  std::sort(samples.begin(), samples.end(),
            [](const Scored& a, const Scored& b) { return a.score < b.score; });
  double positive_rank_sum = 0;
  for (std::size_t first = 0; first < samples.size();) {
    std::size_t last = first;  // the run [first, last) of equal scores holds ranks first+1 .. last
    std::int64_t positives_in_run = 0;
    while (last < samples.size() && samples[last].score == samples[first].score) {
      positives_in_run += samples[last].positive ? 1 : 0;
      ++last;
    }
    const double mid_rank = (static_cast<double>(first + 1) + static_cast<double>(last)) / 2.0;
    positive_rank_sum += mid_rank * static_cast<double>(positives_in_run);
    first = last;
  }
  const double u = positive_rank_sum - positives * (positives + 1) / 2.0;
  return u / (positives * negatives);
}

}  // namespace

ClassificationMetrics::ClassificationMetrics(std::int64_t classes)
    : classes_(classes),
      top_k_limit_(std::min(classes, kTopKMax)),
      confusion_(
          static_cast<std::size_t>(std::max<std::int64_t>(classes, 0) * std::max<std::int64_t>(classes, 0)),
          0),
      top_k_hits_(static_cast<std::size_t>(std::max<std::int64_t>(top_k_limit_, 0)), 0) {
  KILN_CHECK(classes >= 1, "metrics: need at least one class, got ", classes);
}

void ClassificationMetrics::add(const Tensor& logits, const Tensor& labels, double loss_sum) {
  KILN_CHECK(logits.dim() == 2 && logits.size(1) == classes_ && is_floating(logits.dtype()),
             "metrics: logits ", logits.describe(), " are not float [N, ", classes_, "]");
  const std::int64_t batch = logits.size(0);
  KILN_CHECK(labels.dim() == 1 && labels.size(0) == batch && labels.dtype() == DType::Int64,
             "metrics: labels ", labels.describe(), " are not int64[", batch, "] to match logits ",
             logits.describe());
  const std::vector<double> values = logits.to_vector<double>();
  const std::vector<std::int64_t> truths = labels.to_vector<std::int64_t>();
  const auto width = static_cast<std::size_t>(classes_);

  // Check the whole batch before counting any of it, so a bad batch leaves the totals as they were.
  for (std::size_t sample = 0; sample < truths.size(); ++sample) {
    KILN_CHECK(truths[sample] >= 0 && truths[sample] < classes_, "metrics: label ", truths[sample],
               " of sample ", sample, " is outside [0, ", classes_, ")");
    const double* row = values.data() + sample * width;
    KILN_CHECK(std::all_of(row, row + width, [](double v) { return std::isfinite(v); }),
               "metrics: the logits of sample ", sample, " are not all finite (has the model diverged?)");
  }

  for (std::size_t sample = 0; sample < truths.size(); ++sample) {
    const std::int64_t truth = truths[sample];
    const double* row = values.data() + sample * width;
    const std::int64_t predicted = std::max_element(row, row + width) - row;  // the first maximum
    ++confusion_[static_cast<std::size_t>(truth) * width + static_cast<std::size_t>(predicted)];

    // The true class's rank: classes scoring higher, plus equal-scoring classes that come first (the
    // tie order argmax uses). The sample counts for every k above that rank.
    const double truth_score = row[truth];
    std::int64_t rank = 0;
    for (std::int64_t c = 0; c < classes_; ++c) {
      if (row[c] > truth_score || (row[c] == truth_score && c < truth)) ++rank;
    }
    for (std::int64_t k = rank + 1; k <= top_k_limit_; ++k) ++top_k_hits_[static_cast<std::size_t>(k - 1)];

    // Softmax with the maximum subtracted, so large logits cannot overflow exp.
    const double maximum = row[predicted];
    double total = 0;
    for (std::size_t c = 0; c < width; ++c) total += std::exp(row[c] - maximum);
    for (std::size_t c = 0; c < width; ++c) probabilities_.push_back(std::exp(row[c] - maximum) / total);
    labels_.push_back(truth);
  }
  loss_sum_ += loss_sum;
}

MetricsReport ClassificationMetrics::report() const {
  MetricsReport report;
  report.classes = classes_;
  report.samples = samples();
  const auto samples_count = static_cast<double>(report.samples);
  report.loss = ratio(loss_sum_, samples_count);
  report.top5_k = top_k_limit_;
  for (const std::int64_t hits : top_k_hits_)
    report.top_k_accuracy.push_back(ratio(static_cast<double>(hits), samples_count));
  report.accuracy = report.top_k_accuracy.front();
  report.top5 = report.top_k_accuracy.back();

  const auto width = static_cast<std::size_t>(classes_);
  report.confusion.assign(width, std::vector<std::int64_t>(width, 0));
  for (std::size_t truth = 0; truth < width; ++truth) {
    for (std::size_t predicted = 0; predicted < width; ++predicted) {
      report.confusion[truth][predicted] = confusion_[truth * width + predicted];
    }
  }

  double precision_sum = 0, recall_sum = 0, f1_sum = 0, auc_sum = 0;
  int averaged_classes = 0, classes_with_auc = 0;
  for (std::size_t c = 0; c < width; ++c) {
    std::int64_t row_total = 0, column_total = 0;  // samples of class c; predictions of class c
    for (std::size_t other = 0; other < width; ++other) {
      row_total += report.confusion[c][other];
      column_total += report.confusion[other][c];
    }
    const auto tp = static_cast<double>(report.confusion[c][c]);
    const double fn = static_cast<double>(row_total) - tp, fp = static_cast<double>(column_total) - tp;
    ClassMetrics metrics;
    metrics.precision = ratio(tp, tp + fp);
    metrics.recall = ratio(tp, tp + fn);
    metrics.f1 = ratio(2 * tp, 2 * tp + fp + fn);
    metrics.support = row_total;
    metrics.auc = one_vs_rest_auc(probabilities_, labels_, classes_, static_cast<std::int64_t>(c));
    if (row_total > 0 || column_total > 0) {
      precision_sum += metrics.precision;
      recall_sum += metrics.recall;
      f1_sum += metrics.f1;
      ++averaged_classes;
    }
    if (metrics.auc) {
      auc_sum += *metrics.auc;
      ++classes_with_auc;
    }
    report.per_class.push_back(metrics);
  }
  report.macro_precision = ratio(precision_sum, averaged_classes);
  report.macro_recall = ratio(recall_sum, averaged_classes);
  report.macro_f1 = ratio(f1_sum, averaged_classes);
  if (classes_with_auc > 0) report.macro_auc = auc_sum / classes_with_auc;
  return report;
}

nlohmann::json MetricsReport::to_json(const std::vector<std::string>& class_names) const {
  const std::vector<std::string> names = names_for(class_names, classes);
  nlohmann::json per_class_json = nlohmann::json::array();
  for (std::size_t c = 0; c < per_class.size(); ++c) {
    const ClassMetrics& m = per_class[c];
    nlohmann::json row = score_row_json(names[c], m.precision, m.recall, m.f1, m.support);
    row["auc"] = optional_to_json(m.auc);
    per_class_json.push_back(std::move(row));
  }
  return {{"samples", samples},
          {"loss", loss},
          {"accuracy", accuracy},
          {"top5", top5},
          {"top5_k", top5_k},
          {"top_k_accuracy", top_k_accuracy},
          {"macro",
           {{"precision", macro_precision},
            {"recall", macro_recall},
            {"f1", macro_f1},
            {"auc", optional_to_json(macro_auc)}}},
          {"per_class", per_class_json},
          {"confusion_matrix", confusion}};
}

std::string MetricsReport::table(const std::vector<std::string>& class_names) const {
  const std::vector<std::string> names = names_for(class_names, classes);
  constexpr std::size_t kNumberWidth = 10;
  const std::string macro_label = "macro avg";
  const std::size_t name_width = name_column_width(names, {"macro avg", "class"});

  std::ostringstream out;
  out << pad_right("class", name_width);
  for (const char* heading : {"precision", "recall", "f1", "support", "auc"})
    out << pad_left(heading, kNumberWidth);
  out << '\n';
  const auto row = [&](const std::string& label, double precision, double recall, double f1,
                       std::int64_t support, const std::optional<double>& auc) {
    out << pad_right(abbreviate(label, name_width), name_width) << pad_left(fixed(precision), kNumberWidth)
        << pad_left(fixed(recall), kNumberWidth) << pad_left(fixed(f1), kNumberWidth)
        << pad_left(std::to_string(support), kNumberWidth) << pad_left(fixed_or_dash(auc), kNumberWidth)
        << '\n';
  };
  for (std::size_t c = 0; c < per_class.size(); ++c) {
    const ClassMetrics& m = per_class[c];
    row(names[c], m.precision, m.recall, m.f1, m.support, m.auc);
  }
  row(macro_label, macro_precision, macro_recall, macro_f1, samples, macro_auc);
  out << "\naccuracy " << fixed(accuracy) << "   top-" << top5_k << " " << fixed(top5) << "   loss "
      << fixed(loss) << "   samples " << samples << '\n';

  if (classes > kMaxConfusionTableClasses) {
    out << "\nconfusion matrix left out (" << classes << " classes); the JSON report holds it\n";
    return out.str();
  }
  // Each column is as wide as its largest count needs, and at least 7, so names keep 6 characters.
  std::int64_t largest = 0;
  for (const auto& counts : confusion)
    largest = std::max(largest, *std::max_element(counts.begin(), counts.end()));
  const std::size_t column_width = std::max<std::size_t>(7, std::to_string(largest).size() + 1);
  out << "\nconfusion matrix (rows: true class, columns: predicted)\n" << std::string(name_width, ' ');
  for (const std::string& name : names) out << pad_left(abbreviate(name, column_width - 1), column_width);
  out << '\n';
  for (std::size_t truth = 0; truth < confusion.size(); ++truth) {
    out << pad_right(abbreviate(names[truth], name_width), name_width);
    for (const std::int64_t count : confusion[truth]) out << pad_left(std::to_string(count), column_width);
    out << '\n';
  }
  return out.str();
}

}  // namespace kiln::train
