#include "train/evaluate.hpp"

#include <algorithm>

#include "data/image.hpp"
#include "train/device_batches.hpp"
#include "train/eval_mode.hpp"

namespace kiln::train {

namespace {

void record_outcomes(const Tensor& logits, const data::Batch& batch, std::vector<SampleOutcome>& outcomes) {
  const std::int64_t classes = logits.size(1);
  const std::vector<double> probabilities = softmax(logits, 1).to_vector<double>();
  const std::vector<std::int64_t> labels = batch.labels.to_vector<std::int64_t>();
  for (std::size_t i = 0; i < batch.indices.size(); ++i) {
    const double* row = probabilities.data() + i * static_cast<std::size_t>(classes);
    const auto predicted = static_cast<std::int64_t>(std::max_element(row, row + classes) - row);  // first maximum
    outcomes.push_back({batch.indices[i], labels[i], predicted, row[labels[i]], row[predicted]});
  }
}

}  // namespace

MetricsReport evaluate(layers::Module& model, data::DataLoader& loader, std::int64_t classes,
                       std::vector<SampleOutcome>* outcomes, Precision precision) {
  const EvalMode evaluating(model);
  ClassificationMetrics metrics(classes);
  DeviceBatches batches(loader, model.device());
  batches.start_epoch(0);
  while (std::optional<data::Batch> batch = batches.next()) {
    const Tensor logits = forward_logits(model, batch->images, precision);
    const double loss_sum = cross_entropy(logits, batch->labels, Tensor(), {.reduction = Reduction::Sum}).item();
    metrics.add(logits, batch->labels, loss_sum);
    if (outcomes) record_outcomes(logits, *batch, *outcomes);
  }
  return metrics.report();
}

std::vector<SampleOutcome> worst_misclassified(const std::vector<SampleOutcome>& outcomes, std::size_t count) {
  std::vector<SampleOutcome> wrong;
  for (const SampleOutcome& outcome : outcomes) {
    if (outcome.predicted != outcome.label) wrong.push_back(outcome);
  }
  std::stable_sort(wrong.begin(), wrong.end(), [](const SampleOutcome& a, const SampleOutcome& b) {
    return a.label_probability < b.label_probability;
  });
  if (wrong.size() > count) wrong.resize(count);
  return wrong;
}

std::vector<ClassScore> predict_file(const LoadedModel& loaded, const std::filesystem::path& image, std::int64_t k) {
  NoGradGuard no_grad;
  const Tensor input = loaded.preprocessing.apply(data::decode_image_file(image)).unsqueeze(0);
  const std::vector<double> probabilities = softmax((*loaded.model)(input), 1).to_vector<double>();
  std::vector<ClassScore> scores;
  for (std::size_t i = 0; i < probabilities.size(); ++i) {
    scores.push_back({loaded.classes[i], static_cast<std::int64_t>(i), probabilities[i]});
  }
  // Stable: equal probabilities keep class order, so the top-1 matches argmax (first maximum).
  std::stable_sort(scores.begin(), scores.end(), [](const ClassScore& a, const ClassScore& b) {
    return a.probability > b.probability;
  });
  scores.resize(static_cast<std::size_t>(std::clamp<std::int64_t>(k, 1, static_cast<std::int64_t>(scores.size()))));
  return scores;
}

}  // namespace kiln::train
