#include "train/multi_label_evaluate.hpp"

#include <optional>
#include <utility>

#include "core/error.hpp"
#include "data/image.hpp"
#include "train/device_batches.hpp"
#include "train/eval_mode.hpp"
#include "train/precision.hpp"
#include "train/tensor_readback.hpp"

namespace kiln::train {

namespace {

// A batch's forward pass: logits float [B, L] and the summed binary cross-entropy, from images and targets.
std::vector<Tensor> multi_label_pass(layers::Module& model, Precision precision,
                                     const std::vector<Tensor>& inputs,
                                     const std::vector<TtaView>* views = nullptr) {
  const auto logits_of = [&](const Tensor& images) { return forward_logits(model, images, precision); };
  const Tensor logits = averaged_logits(logits_of, inputs[0], views, true);
  return {logits, binary_cross_entropy_with_logits(logits, inputs[1], Tensor(), Reduction::Sum)};
}

}  // namespace

std::unique_ptr<GraphedStep> multi_label_evaluation_graph(layers::Module& model, Precision precision) {
  KILN_CHECK(model.device().is_cuda(), "multi_label_evaluation_graph: the model is on ", model.device().str(),
             "; CUDA graphs need a CUDA device");
  GraphedStep::Pass pass = [&model, precision](const std::vector<Tensor>& inputs) {
    return multi_label_pass(model, precision, inputs);
  };
  return std::make_unique<GraphedStep>(model.device().index, std::vector<Tensor>{}, std::move(pass));
}

MultiLabelMetrics evaluate_multi_label(layers::Module& model, data::DataLoader& loader, std::int64_t labels,
                                       Precision precision, GraphedStep* graphed,
                                       const std::vector<TtaView>* views) {
  KILN_CHECK(!(graphed && views),
             "evaluate_multi_label: test-time augmentation does not run through a CUDA graph");
  KILN_CHECK(loader.folder().multi_label(), loader.folder().root().string(),
             ": not a multi-label data set (evaluate a class folder with evaluate())");
  const EvalMode evaluating(model);
  MultiLabelMetrics metrics(labels);
  // Each batch's logits, targets and loss come back a batch late, as in evaluate() (evaluate.cpp).
  TensorReadback results(model.device());
  std::optional<std::uint64_t> unread;
  const auto count = [&](std::uint64_t ticket) {
    const std::vector<Tensor> host = results.read(ticket);  // logits, targets, loss sum
    metrics.add(host[0], host[1], host[2].item());
  };

  DeviceBatches batches(loader, model.device());
  batches.start_epoch(0);
  while (std::optional<data::Batch> batch = batches.next()) {
    const std::vector<Tensor> inputs{batch->images, batch->targets};
    // A graph's outputs are overwritten by its next launch: their copies are queued before it.
    const std::vector<Tensor> pass =
        graphed ? graphed->run(inputs)
                : multi_label_pass(model, precision, inputs, views);  // logits, loss sum
    const std::uint64_t ticket = results.start({pass[0], batch->targets, pass[1]});
    if (unread) count(*unread);
    unread = ticket;
  }
  if (unread) count(*unread);
  return metrics;
}

std::vector<LabelScore> predict_labels_file(const LoadedModel& loaded, const std::filesystem::path& image,
                                            const std::vector<TtaView>* views) {
  KILN_CHECK(loaded.multi_label(), "predict_labels_file: the checkpoint is not multi-label");
  NoGradGuard no_grad;
  const Tensor input = loaded.preprocessing.apply(data::decode_image_file(image)).unsqueeze(0);
  const auto logits_of = [&](const Tensor& images) { return (*loaded.model)(images); };
  const std::vector<double> logits =
      averaged_logits(logits_of, input, views, true).to_vector<double>();  // [L]
  std::vector<LabelScore> scores;
  for (std::size_t l = 0; l < logits.size(); ++l) {
    scores.push_back({loaded.classes[l], static_cast<std::int64_t>(l), label_probability(logits[l]),
                      loaded.thresholds.thresholds[l]});
  }
  return scores;
}

}  // namespace kiln::train
