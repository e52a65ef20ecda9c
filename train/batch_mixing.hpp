// Mixup (Zhang et al., 2018) and CutMix (Yun et al., 2019): each training batch mixed with itself in reverse
// order, image i with image B - 1 - i, and the loss mixed in the same proportion.
//
// One per-pixel weight w [1, 1, H, W] says how much of the partner image a pixel takes:
//
//   mixed   = images * (1 - w) + flip(images, batch) * w
//   loss    = lambda * loss(logits, labels) + (1 - lambda) * loss(logits, flip(labels, batch)),
//             lambda = 1 - mean(w)      (multi-label: one loss on lambda * t + (1 - lambda) * flip(t))
//
// Mixup: w is one value 1 - lambda everywhere, lambda drawn from Beta(alpha, alpha). CutMix: w is 1 inside
// a box and 0 elsewhere, the box covering 1 - lambda of the image for lambda from Beta(alpha, alpha), its
// centre anywhere in the image and its overhang cut off (so the loss's lambda is the box's actual share).
// With both on, each batch takes one of them, each half the time. The batches are shuffled every epoch, so
// pairing an image with the one at the mirrored position pairs it with a random other image, with no
// gather, and the mixed batch needs the same memory as the batch (timm mixes the same way).
//
// Every draw comes from the counter-based generator keyed by (seed, epoch, step): a run's mixing does not
// depend on threads or devices, and a resumed run mixes as the uninterrupted one would have. The weight and
// the loss are tensor operations on the step's inputs, so a captured CUDA graph replays them with each step's
// own weight (train/graphed_step.hpp).
#pragma once

#include <cstdint>

#include "core/tensor.hpp"
#include "kernels/random/philox.hpp"

namespace kiln::train {

struct BatchMixing {
  double mixup_alpha = 0;   // Beta(alpha, alpha) for mixup's share; 0 = off
  double cutmix_alpha = 0;  // Beta(alpha, alpha) for CutMix's box; 0 = off

  bool any() const { return mixup_alpha > 0 || cutmix_alpha > 0; }
  // Throws kiln::Error naming the option out of range (an alpha must be finite and >= 0).
  void validate() const;
};

// One step's draw: cutmix or mixup, lambda (the share of each image's own label), and for CutMix its box.
struct MixDraw {
  bool cutmix = false;
  double lambda = 1;
  std::int64_t top = 0, left = 0, height = 0, width = 0;  // CutMix's box, clipped to the image
};

// The draw for `step` of `epoch` of a run seeded with `seed`, for images of height x width.
MixDraw draw_mixing(const BatchMixing& mixing, std::uint64_t seed, std::int64_t epoch, std::int64_t step,
                    std::int64_t height, std::int64_t width);

// `draw`'s per-pixel weight, float32 [1, 1, height, width] on the CPU.
Tensor mixing_weight(const MixDraw& draw, std::int64_t height, std::int64_t width);

// images [B, C, H, W] (either layout) mixed with their reverse by weight [1, 1, H, W].
Tensor mix_images(const Tensor& images, const Tensor& weight);

// lambda = 1 - mean(weight), the share of each image's own label: a 0-d tensor on the weight's device.
Tensor own_share(const Tensor& weight);

// A draw from Beta(alpha, alpha) (alpha > 0), from draws of `state` (two gamma variables by Marsaglia and
// Tsang's method); a pure function of the state.
double sample_symmetric_beta(double alpha, const kernels::PhiloxState& state);

}  // namespace kiln::train
