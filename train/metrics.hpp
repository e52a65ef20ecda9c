// Classification metrics over a whole evaluation pass: feed each batch's logits and labels to
// ClassificationMetrics::add, then ask for a MetricsReport.
//
// Definitions (C classes; TP, FP, FN counted per class from the confusion matrix):
//   prediction      argmax of the logits, the first maximum on ties (as argmax in core/ops.hpp)
//   accuracy        samples whose prediction is the true class / samples
//   top-k accuracy  samples whose true class is among the k highest logits / samples; the true class's rank
//                   breaks ties the same way as the prediction, so top-1 accuracy equals accuracy
//   precision       TP / (TP + FP)        recall  TP / (TP + FN)        F1  2 TP / (2 TP + FP + FN)
//   support         samples of the class (TP + FN)
//   macro average   the unweighted mean over the classes that occur as a true class or a prediction
//   ROC-AUC         one-vs-rest on the softmax probability of the class: the chance that a random sample of
//                   the class scores above a random sample of another class, ties counting one half
//                   (the Mann-Whitney U statistic from mid-ranks, which equals the area under the ROC curve)
//   macro AUC       the mean of the per-class AUCs that are defined
//
// Zero divisions follow scikit-learn's zero_division=0: a class never predicted has precision 0, a class
// with no samples has recall 0, and F1 is 0 when 2 TP + FP + FN is 0. The macro averages use
// scikit-learn's default labels (those in y_true or y_pred), so a class that is neither present nor
// predicted does not pull them down. AUC is undefined for a class with no positives or no negatives; it
// is reported as absent (null in JSON, "-" in the table) rather than NaN and left out of the macro AUC.
#pragma once

#include <cstdint>
#include <nlohmann/json_fwd.hpp>  // declarations only; the full json.hpp costs each includer ~2 s
#include <optional>
#include <string>
#include <vector>

#include "core/tensor.hpp"

namespace kiln::train {

struct ClassMetrics {
  double precision = 0, recall = 0, f1 = 0;
  std::int64_t support = 0;
  std::optional<double> auc;
};

struct MetricsReport {
  std::int64_t classes = 0;
  std::int64_t samples = 0;
  double loss = 0;                     // mean loss per sample: the sum of add()'s loss_sum over the samples
  double accuracy = 0;                 // top-1
  std::int64_t top5_k = 0;             // min(5, classes)
  double top5 = 0;                     // top-k accuracy with k = top5_k
  std::vector<double> top_k_accuracy;  // [k - 1]: top-k accuracy for k = 1 .. top5_k
  std::vector<ClassMetrics> per_class;
  double macro_precision = 0, macro_recall = 0, macro_f1 = 0;
  std::optional<double> macro_auc;                   // absent when no class has a defined AUC
  std::vector<std::vector<std::int64_t>> confusion;  // [true class][predicted class]

  // `class_names` has one name per class, or is empty to name classes by index. Fields: samples, loss,
  // accuracy, top5, top5_k, top_k_accuracy, macro {precision, recall, f1, auc}, per_class [{name,
  // precision, recall, f1, support, auc}], confusion_matrix (rows: true class, columns: predicted).
  nlohmann::json to_json(const std::vector<std::string>& class_names) const;
  // An aligned text table: per class precision, recall, F1, support and AUC, the macro row, a line with
  // accuracy, top-k and loss, then the confusion matrix with class names abbreviated to fit its columns
  // (left out beyond kMaxConfusionTableClasses classes, where it would not be readable; see the JSON).
  std::string table(const std::vector<std::string>& class_names) const;
};

inline constexpr std::int64_t kMaxConfusionTableClasses = 32;

class ClassificationMetrics {
 public:
  explicit ClassificationMetrics(std::int64_t classes);

  // logits: float [N, C] with C = classes (any view); labels: int64 [N] in [0, C). loss_sum is the
  // batch's summed (not mean) loss, so the report's loss is a true per-sample mean over uneven batches.
  void add(const Tensor& logits, const Tensor& labels, double loss_sum = 0);

  std::int64_t samples() const { return static_cast<std::int64_t>(labels_.size()); }
  MetricsReport report() const;

 private:
  std::int64_t classes_;
  std::int64_t top_k_limit_;              // min(5, classes)
  std::vector<std::int64_t> confusion_;   // [classes * classes], row-major [true][predicted]
  std::vector<std::int64_t> top_k_hits_;  // [k - 1]: samples whose true class ranked below k
  std::vector<double> probabilities_;     // [samples * classes] softmax of each sample's logits, for AUC
  std::vector<std::int64_t> labels_;      // [samples]
  double loss_sum_ = 0;
};

}  // namespace kiln::train
