// Test-time augmentation (`kiln eval --tta`, `kiln predict --tta`): each image's prediction averaged over
// the views of it that training taught the network to treat alike.
//
// The views are the symmetries the checkpoint's augmentation drew from (data/augment.hpp): the image as it
// is, mirrored where training flipped left to right, upside down where it flipped vertically, turned by
// quarter turns where it rotated; with several of those, every distinct combination (both flips and the
// quarter turns: a square's eight symmetries). The random crops, colour jitter and cutout are left out: they
// are a neighbourhood of the image, not a symmetry of it, and the image itself is their centre.
//
// The averaged prediction is a probability (softmax's over the classes, or each label's sigmoid for a
// multi-label model), returned as the logits of that probability: log p for single-label (softmax of
// log p is p, and cross-entropy reads it as -log p of the true class), log(p / (1 - p)) for multi-label. So
// everything downstream of the logits, the loss, the argmax, the metrics, sees the average as it would the
// model's own output.
#pragma once

#include <functional>
#include <nlohmann/json_fwd.hpp>
#include <vector>

#include "core/tensor.hpp"
#include "data/augment.hpp"

namespace kiln::train {

// One view: mirrored (columns reversed), upside down (rows reversed), then turned counterclockwise by
// quarter_turns quarter turns.
struct TtaView {
  bool mirror = false;
  bool upside_down = false;
  int quarter_turns = 0;
};

// The distinct views `augmentation`'s flips and quarter turns reach, the image as it is first. One view when
// it has none of them.
std::vector<TtaView> tta_views(const data::Augmentation& augmentation);

// The augmentation a checkpoint trained with, from its header (train/checkpoint.hpp): none when the header
// has no training configuration.
data::Augmentation trained_augmentation(const nlohmann::json& checkpoint_header);

// A batch of images [N, C, H, W] (either layout; square for a quarter turn) as `view` shows them.
Tensor apply_view(const Tensor& images, const TtaView& view);

// The logits of the prediction averaged over `views`, from logits_of(images) [N, classes] for each view of
// `images`: log of the mean softmax (single-label) or the logit of the mean sigmoid (multi_label). float32
// [N, classes], on the images' device. With no views (null: no test-time augmentation) or only the image as
// it is, logits_of(images) itself.
Tensor averaged_logits(const std::function<Tensor(const Tensor&)>& logits_of, const Tensor& images,
                       const std::vector<TtaView>* views, bool multi_label);

}  // namespace kiln::train
