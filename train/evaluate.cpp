#include "train/evaluate.hpp"

#include <algorithm>
#include <optional>

#include "data/image.hpp"
#include "train/device_batches.hpp"
#include "train/eval_mode.hpp"
#include "train/tensor_readback.hpp"

namespace kiln::train {

namespace {

// logits: float [B, C] and labels: int64 [B] on the CPU, for the batch's images `indices`.
void record_outcomes(const Tensor& logits, const Tensor& labels, const std::vector<std::size_t>& indices,
                     std::vector<SampleOutcome>& outcomes) {
  const std::int64_t classes = logits.size(1);
  const std::vector<double> probabilities = softmax(logits, 1).to_vector<double>();
  const std::vector<std::int64_t> truths = labels.to_vector<std::int64_t>();
  for (std::size_t i = 0; i < indices.size(); ++i) {
    const double* row = probabilities.data() + i * static_cast<std::size_t>(classes);
    const auto predicted = static_cast<std::int64_t>(std::max_element(row, row + classes) - row);  // first maximum
    outcomes.push_back({indices[i], truths[i], predicted, row[truths[i]], row[predicted]});
  }
}

// A batch's forward pass: logits float [B, C] and the summed cross-entropy, from its images and labels; with
// `views`, the logits of the prediction averaged over them.
std::vector<Tensor> evaluation_pass(layers::Module& model, Precision precision,
                                    const std::vector<Tensor>& inputs,
                                    const std::vector<TtaView>* views = nullptr) {
  const auto logits_of = [&](const Tensor& images) { return forward_logits(model, images, precision); };
  const Tensor logits = averaged_logits(logits_of, inputs[0], views, false);
  const Tensor loss_sum = cross_entropy(logits, inputs[1], Tensor(), {.reduction = Reduction::Sum});
  return {logits, loss_sum};
}

}  // namespace

std::unique_ptr<GraphedStep> evaluation_graph(layers::Module& model, Precision precision) {
  KILN_CHECK(model.device().is_cuda(), "evaluation_graph: the model is on ", model.device().str(),
             "; CUDA graphs need a CUDA device");
  return std::make_unique<GraphedStep>(model.device().index, std::vector<Tensor>{},
                                       [&model, precision](const std::vector<Tensor>& inputs) {
                                         return evaluation_pass(model, precision, inputs);
                                       });
}

// On a GPU every batch's logits, labels and loss come back a batch late (a TensorReadback): batch k's are
// counted on the host once batch k+1's forward pass is queued, so the device never waits for the host.
MetricsReport evaluate(layers::Module& model, data::DataLoader& loader, std::int64_t classes,
                       std::vector<SampleOutcome>* outcomes, Precision precision, GraphedStep* graphed,
                       const std::vector<TtaView>* views) {
  KILN_CHECK(!(graphed && views), "evaluate: test-time augmentation does not run through a CUDA graph");
  const EvalMode evaluating(model);
  ClassificationMetrics metrics(classes);
  TensorReadback results(model.device());
  struct Unread {
    std::uint64_t ticket;
    std::vector<std::size_t> indices;
  };
  std::optional<Unread> unread;
  const auto count = [&](const Unread& batch) {
    const std::vector<Tensor> host = results.read(batch.ticket);  // logits, labels, loss sum
    metrics.add(host[0], host[1], host[2].item());
    if (outcomes) record_outcomes(host[0], host[1], batch.indices, *outcomes);
  };

  DeviceBatches batches(loader, model.device());
  batches.start_epoch(0);
  while (std::optional<data::Batch> batch = batches.next()) {
    const std::vector<Tensor> inputs{batch->images, batch->labels};
    // A graph's outputs are overwritten by its next launch: their copies are queued before it.
    const std::vector<Tensor> pass =
        graphed ? graphed->run(inputs)
                : evaluation_pass(model, precision, inputs, views);  // logits, loss sum
    const std::uint64_t ticket = results.start({pass[0], batch->labels, pass[1]});
    if (unread) count(*unread);
    unread = Unread{ticket, std::move(batch->indices)};
  }
  if (unread) count(*unread);
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

std::vector<ClassScore> predict_file(const LoadedModel& loaded, const std::filesystem::path& image,
                                     std::int64_t k, const std::vector<TtaView>* views) {
  NoGradGuard no_grad;
  const Tensor input = loaded.preprocessing.apply(data::decode_image_file(image)).unsqueeze(0);
  const auto logits_of = [&](const Tensor& images) { return (*loaded.model)(images); };
  const Tensor logits = averaged_logits(logits_of, input, views, false);
  const std::vector<double> probabilities = softmax(logits, 1).to_vector<double>();
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
