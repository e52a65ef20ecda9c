// A QuantizedModel behind the layers::Module interface, so everything that runs a model for inference
// (train::evaluate, train::predict_file, the CLI's eval and predict) runs an int8 model unchanged. It has
// no parameters and no backward: forward returns float logits computed by the int8 kernels, recorded on
// no tape.
#pragma once

#include <string>
#include <utility>

#include "layers/module.hpp"
#include "quant/quantized_model.hpp"

namespace kiln::quant {

class QuantizedModule : public layers::Module {
 public:
  explicit QuantizedModule(QuantizedModel model) : model_(std::move(model)) {}

  Tensor forward(const Tensor& input) override { return model_.forward(input); }
  std::string describe() const override {
    return "QuantizedModel(int8, " + std::to_string(model_.steps().size()) + " steps)";
  }

  QuantizedModel& model() { return model_; }

 private:
  QuantizedModel model_;
};

}  // namespace kiln::quant
