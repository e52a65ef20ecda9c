#include "train/multi_label_evaluate.hpp"

#include <optional>

#include "core/error.hpp"
#include "data/image.hpp"
#include "train/device_batches.hpp"
#include "train/eval_mode.hpp"
#include "train/precision.hpp"
#include "train/tensor_readback.hpp"

namespace kiln::train {

MultiLabelMetrics evaluate_multi_label(layers::Module& model, data::DataLoader& loader, std::int64_t labels,
                                       Precision precision) {
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
    const Tensor logits = forward_logits(model, batch->images, precision);  // float32 [B, L]
    const Tensor loss_sum =
        binary_cross_entropy_with_logits(logits, batch->targets, Tensor(), Reduction::Sum);
    const std::uint64_t ticket = results.start({logits, batch->targets, loss_sum});
    if (unread) count(*unread);
    unread = ticket;
  }
  if (unread) count(*unread);
  return metrics;
}

std::vector<LabelScore> predict_labels_file(const LoadedModel& loaded, const std::filesystem::path& image) {
  KILN_CHECK(loaded.multi_label(), "predict_labels_file: the checkpoint is not multi-label");
  NoGradGuard no_grad;
  const Tensor input = loaded.preprocessing.apply(data::decode_image_file(image)).unsqueeze(0);
  const std::vector<double> logits = (*loaded.model)(input).to_vector<double>();  // [L]
  std::vector<LabelScore> scores;
  for (std::size_t l = 0; l < logits.size(); ++l) {
    scores.push_back({loaded.classes[l], static_cast<std::int64_t>(l), label_probability(logits[l]),
                      loaded.thresholds.thresholds[l]});
  }
  return scores;
}

}  // namespace kiln::train
