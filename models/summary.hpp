// A network's summary, layer by layer, as Keras's model.summary() and torchsummary print it: each layer's
// output shape for one image, its parameters and the floating-point operations of its forward pass. What
// `kiln summary` prints, to design a model file (models/model_file.hpp) or size a zoo network for an
// input before training it.
//
// The rows are the model's modules down through its Sequentials: a block (a residual or separable block)
// is one row, as are single layers. The shapes come from one zero image run through the rows in turn (eval
// mode, no gradients). FLOPs count the multiply-adds of the convolutions and matrix products the rows ran,
// two each, at the shapes they computed (the profiler counts them: core/profiler.hpp), the convention of
// the papers: a ResNet-20 is 41 M multiply-adds, 82 MFLOPs. Batch norms, activations and pools are left out
// (a few percent, and memory-bound). A training step costs about three forward passes.
#pragma once

#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <vector>

#include "core/shape.hpp"
#include "layers/module.hpp"

namespace kiln::models {

struct LayerSummary {
  std::string name;    // the module's path: "conv1", "stage2.0", "features.3"
  std::string module;  // its describe(): "Conv2d(3, 16, kernel=3x3, stride=1, padding=1)"
  Shape output;        // one image's: [C, H, W] or [features]
  std::int64_t parameters = 0;
  std::int64_t flops = 0;  // forward, one image
};

struct ModelSummary {
  std::vector<LayerSummary> layers;
  Shape input;                     // [C, H, W]
  std::int64_t parameters = 0;     // the model's, every row's together
  std::int64_t flops = 0;          // forward, one image
  std::int64_t output_values = 0;  // every row's output values together: the activations an image keeps

  nlohmann::json to_json() const;
};

// Runs one zero image of [channels, height, width] through `model`'s rows and summarizes each; the model's
// train or eval mode is restored. Throws as the model's own layers do when it cannot take that input. It
// records with profiler sessions of its own, so not inside one on the same thread.
ModelSummary summarize(layers::Module& model, std::int64_t channels, std::int64_t height, std::int64_t width);

}  // namespace kiln::models
