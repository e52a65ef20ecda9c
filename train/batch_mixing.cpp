#include "train/batch_mixing.hpp"

#include <algorithm>
#include <cmath>

#include "core/error.hpp"
#include "core/ops.hpp"
#include "data/shuffle.hpp"
#include "kernels/random/philox.hpp"

namespace kiln::train {

namespace {

// A Gamma(shape, 1) variable from the draws of `state` at [first, first + kGammaDraws): Marsaglia and
// Tsang's squeeze (a normal and a uniform a try, accepted more than 95% of the time for shape >= 1), and for
// shape < 1 a Gamma(shape + 1) scaled by u^(1 / shape). The normals and the uniforms lie in blocks of their
// own (a Box-Muller normal takes two words of its block, which a uniform beside it would reuse).
constexpr std::uint64_t kMaxTries = 64;
constexpr std::uint64_t kGammaDraws = 2 * kMaxTries + 4;  // normals, uniforms, the last uniform's block

double sample_gamma(double shape, const kernels::PhiloxState& state, std::uint64_t first) {
  if (shape < 1.0) {
    const double u = kernels::philox_uniform<double>(state, first + 2 * kMaxTries);
    return sample_gamma(shape + 1.0, state, first) * std::pow(u, 1.0 / shape);
  }
  const double d = shape - 1.0 / 3.0, c = 1.0 / std::sqrt(9.0 * d);
  for (std::uint64_t attempt = 0; attempt < kMaxTries; ++attempt) {
    const double x = kernels::philox_normal<double>(state, first + attempt);
    const double v = std::pow(1.0 + c * x, 3);
    if (v <= 0) continue;
    const double u = kernels::philox_uniform<double>(state, first + kMaxTries + attempt);
    if (std::log(u) < 0.5 * x * x + d - d * v + d * std::log(v)) return d * v;
  }
  return d;  // (64 rejections in a row: about 1e-80 likely) the mode
}

// The draw indices of one step: which kind, the box's centre, then the two gammas' runs.
enum MixDrawIndex : std::uint64_t { kKindDraw, kCentreRowDraw, kCentreColumnDraw, kFirstGammaDraw = 4 };

}  // namespace

void BatchMixing::validate() const {
  KILN_CHECK(std::isfinite(mixup_alpha) && mixup_alpha >= 0, "train: --mixup takes an alpha >= 0 (0: off), got ",
             mixup_alpha);
  KILN_CHECK(std::isfinite(cutmix_alpha) && cutmix_alpha >= 0,
             "train: --cutmix takes an alpha >= 0 (0: off), got ", cutmix_alpha);
}

double sample_symmetric_beta(double alpha, const kernels::PhiloxState& state) {
  KILN_CHECK(alpha > 0, "Beta(alpha, alpha) needs alpha > 0, got ", alpha);
  const double x = sample_gamma(alpha, state, kFirstGammaDraw);
  const double y = sample_gamma(alpha, state, kFirstGammaDraw + kGammaDraws);
  return x + y > 0 ? x / (x + y) : 0.5;
}

MixDraw draw_mixing(const BatchMixing& mixing, std::uint64_t seed, std::int64_t epoch, std::int64_t step,
                    std::int64_t height, std::int64_t width) {
  mixing.validate();
  KILN_CHECK(mixing.any(), "draw_mixing: neither mixup nor CutMix is on");
  // Each step's draws in blocks of their own: 4 + 2 * kGammaDraws = 268 draws, 67 Philox blocks.
  constexpr std::uint64_t kBlocksPerStep = 128;
  static_assert(kernels::philox_blocks_for(kFirstGammaDraw + 2 * kGammaDraws) <= kBlocksPerStep);
  const kernels::PhiloxState state{seed, data::kBatchMixingStream + static_cast<std::uint64_t>(epoch),
                                   static_cast<std::uint64_t>(step) * kBlocksPerStep};
  MixDraw draw;
  const bool both = mixing.mixup_alpha > 0 && mixing.cutmix_alpha > 0;
  draw.cutmix = both ? kernels::philox_uniform<double>(state, kKindDraw) < 0.5 : mixing.cutmix_alpha > 0;
  const double alpha = draw.cutmix ? mixing.cutmix_alpha : mixing.mixup_alpha;
  const double lambda = sample_symmetric_beta(alpha, state);
  if (!draw.cutmix) {
    draw.lambda = lambda;
    return draw;
  }
  // A box of (1 - lambda) of the image's area, of its shape, centred anywhere, clipped to the image.
  const double side = std::sqrt(1.0 - lambda);
  const auto box_height = static_cast<std::int64_t>(std::llround(side * static_cast<double>(height)));
  const auto box_width = static_cast<std::int64_t>(std::llround(side * static_cast<double>(width)));
  const auto centre_row = std::min<std::int64_t>(
      height - 1, static_cast<std::int64_t>(kernels::philox_uniform<double>(state, kCentreRowDraw) * height));
  const auto centre_column = std::min<std::int64_t>(
      width - 1, static_cast<std::int64_t>(kernels::philox_uniform<double>(state, kCentreColumnDraw) * width));
  draw.top = std::clamp<std::int64_t>(centre_row - box_height / 2, 0, height);
  draw.left = std::clamp<std::int64_t>(centre_column - box_width / 2, 0, width);
  draw.height = std::clamp<std::int64_t>(centre_row - box_height / 2 + box_height, 0, height) - draw.top;
  draw.width = std::clamp<std::int64_t>(centre_column - box_width / 2 + box_width, 0, width) - draw.left;
  draw.lambda = 1.0 - static_cast<double>(draw.height * draw.width) / static_cast<double>(height * width);
  return draw;
}

Tensor mixing_weight(const MixDraw& draw, std::int64_t height, std::int64_t width) {
  std::vector<float> weight(static_cast<std::size_t>(height * width),
                            draw.cutmix ? 0.0f : static_cast<float>(1.0 - draw.lambda));
  if (draw.cutmix) {
    for (std::int64_t y = draw.top; y < draw.top + draw.height; ++y)
      std::fill_n(weight.begin() + y * width + draw.left, draw.width, 1.0f);
  }
  return Tensor::from_vector(weight, {1, 1, height, width});
}

Tensor mix_images(const Tensor& images, const Tensor& weight) {
  KILN_CHECK(images.dim() == 4, "mix_images: expected images [B, C, H, W], got ", images.describe());
  return images * (1.0 - weight) + flip(images, {0}) * weight;
}

Tensor own_share(const Tensor& weight) { return 1.0 - mean(weight); }

}  // namespace kiln::train
