#include "train/tta.hpp"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "core/error.hpp"
#include "core/ops.hpp"

namespace kiln::train {

std::vector<TtaView> tta_views(const data::Augmentation& augmentation) {
  // Every combination of what is on, kept when it moves a 3x3 pattern of distinct values somewhere no
  // earlier view moved it: both flips at once are a half turn, which the quarter turns also reach.
  const Tensor pattern = Tensor::from_vector(std::vector<float>{0, 1, 2, 3, 4, 5, 6, 7, 8}, {1, 1, 3, 3});
  std::vector<TtaView> views;
  std::vector<std::vector<float>> seen;
  for (const bool mirror : {false, true}) {
    if (mirror && !augmentation.horizontal_flip) continue;
    for (const bool upside_down : {false, true}) {
      if (upside_down && !augmentation.vertical_flip) continue;
      for (int turns = 0; turns < (augmentation.rotate90 ? 4 : 1); ++turns) {
        const TtaView view{mirror, upside_down, turns};
        std::vector<float> moved = apply_view(pattern, view).to_vector<float>();
        if (std::find(seen.begin(), seen.end(), moved) != seen.end()) continue;
        seen.push_back(std::move(moved));
        views.push_back(view);
      }
    }
  }
  return views;
}

data::Augmentation trained_augmentation(const nlohmann::json& checkpoint_header) {
  const nlohmann::json config = checkpoint_header.value("config", nlohmann::json::object());
  if (!config.contains("augmentation")) return {};
  return data::Augmentation::from_json(config.at("augmentation"));
}

Tensor apply_view(const Tensor& images, const TtaView& view) {
  KILN_CHECK(images.dim() == 4, "test-time augmentation: expected images [N, C, H, W], got ", images.describe());
  KILN_CHECK(view.quarter_turns >= 0 && view.quarter_turns < 4, "test-time augmentation: ", view.quarter_turns,
             " quarter turns");
  KILN_CHECK(view.quarter_turns % 2 == 0 || images.shape()[2] == images.shape()[3],
             "test-time augmentation: a quarter turn needs square images, got ", images.describe());
  std::vector<int> axes;
  if (view.upside_down) axes.push_back(2);
  if (view.mirror) axes.push_back(3);
  const Tensor flipped = axes.empty() ? images : flip(images, axes);
  // A quarter turn counterclockwise: row y of the result is column W - 1 - y read downwards, which is the
  // transpose turned upside down; three quarter turns are the transpose mirrored.
  Tensor turned;
  switch (view.quarter_turns) {
    case 1:
      turned = flip(flipped.transpose(2, 3), {2});
      break;
    case 2:
      turned = flip(flipped, {2, 3});
      break;
    case 3:
      turned = flip(flipped.transpose(2, 3), {3});
      break;
    default:
      return flipped;
  }
  // A transposed channels-last batch flips into NCHW: brought back, so a channels-last model gets its layout.
  return images.is_channels_last() ? turned.channels_last() : turned;
}

namespace {

// log(mean over k of exp(terms[k])), elementwise, without overflow or underflow: the largest term taken out
// first.
Tensor log_mean_exp(const std::vector<Tensor>& terms) {
  std::vector<Tensor> stacked_terms;
  for (const Tensor& term : terms) stacked_terms.push_back(term.unsqueeze(0));
  const Tensor stacked = cat(stacked_terms, 0);
  const Tensor largest = max(stacked, {0}, true);
  return (largest + log(mean(exp(stacked - largest), {0}, true))).squeeze(0);
}

// log(sigmoid(x)) = min(x, 0) - log(1 + exp(-|x|)), finite for every finite x.
Tensor log_sigmoid(const Tensor& x) {
  return minimum(x, Tensor::zeros(Shape{}, x.dtype(), x.device())) - log(1.0 + exp(-abs(x)));
}

}  // namespace

Tensor averaged_logits(const std::function<Tensor(const Tensor&)>& logits_of, const Tensor& images,
                       const std::vector<TtaView>* views, bool multi_label) {
  if (views == nullptr) return logits_of(images);
  KILN_CHECK(!views->empty(), "test-time augmentation: no views");
  const TtaView& first = views->front();
  if (views->size() == 1 && !first.mirror && !first.upside_down && first.quarter_turns == 0)
    return logits_of(images);
  // In log space throughout: a probability a view rounds to 0 in float would make the mean's log -inf.
  std::vector<Tensor> log_p, log_not_p;
  for (const TtaView& view : *views) {
    const Tensor logits = logits_of(apply_view(images, view));
    if (multi_label) {
      log_p.push_back(log_sigmoid(logits));
      log_not_p.push_back(log_sigmoid(-logits));
    } else {
      log_p.push_back(log_softmax(logits, 1));
    }
  }
  // log p of the mean; for a label, log p - log(1 - p), whose sigmoid is p.
  return multi_label ? log_mean_exp(log_p) - log_mean_exp(log_not_p) : log_mean_exp(log_p);
}

}  // namespace kiln::train
