// --ema DECAY: an exponential moving average of the model's weights, which is what the run evaluates, keeps
// in best.kiln and hands to eval, predict, export, quantize, explain and --init (Polyak averaging; timm's
// ModelEma). After every optimizer step each weight, and each batch-norm running statistic, moves towards
// the trained one:
//
//   average = d * average + (1 - d) * weight,   d = min(DECAY, (1 + n) / (10 + n)), n = updates so far
//
// The ramp of d makes the average follow the fast early changes of a fresh network instead of holding on to
// its random initialization for ~1 / (1 - DECAY) steps (0.999: a thousand), which a short run never leaves.
// The trained weights go on training untouched; the checkpoint keeps both (the average's under "ema."), so
// a resumed run averages on as the uninterrupted one would have.
#pragma once

#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <vector>

#include "layers/module.hpp"
#include "models/architecture.hpp"
#include "train/checkpoint.hpp"

namespace kiln::train {

// The prefix of the average's tensors in a checkpoint: "ema.model.conv1.weight".
inline constexpr const char* kAverageTensorPrefix = "ema.";

class WeightAverage {
 public:
  // An average of `model` (built from `architecture`, its weights where `model` has them now), on `device`.
  WeightAverage(const models::ArchitectureSpec& architecture, const layers::Module& model, double decay,
                Device device);

  // One step: the average moves towards `model`'s weights and buffers.
  void update(const layers::Module& model);
  // The decay the next update uses.
  double decay_now() const;

  layers::Module& model() { return *average_; }
  const layers::Module& model() const { return *average_; }
  std::int64_t updates() const { return updates_; }

  // {"decay": DECAY, "updates": n} beside the tensors ("ema." + model_state's names).
  nlohmann::json state_json() const;
  std::vector<NamedTensor> state_tensors() const;
  // Restores a checkpoint's state: its header's "ema" and its "ema." tensors.
  void load(const nlohmann::json& state, const std::vector<NamedTensor>& tensors,
            const std::filesystem::path& path);

 private:
  layers::ModulePtr average_;
  double decay_;
  std::int64_t updates_ = 0;
};

}  // namespace kiln::train
