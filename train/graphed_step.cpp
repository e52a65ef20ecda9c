#include "train/graphed_step.hpp"

#include <utility>

#include "core/autograd.hpp"
#include "core/error.hpp"
#include "core/raw.hpp"

namespace kiln::train {

GraphedStep::GraphedStep(int device_index, std::vector<Tensor> parameters, Pass pass)
    : device_index_(device_index), parameters_(std::move(parameters)), pass_(std::move(pass)) {
  for (const Tensor& parameter : parameters_) {
    KILN_CHECK(parameter.device() == Device::cuda(device_index), "GraphedStep: parameter ",
               parameter.describe(), " is on ", parameter.device().str(), ", not cuda:", device_index);
  }
}

std::vector<Tensor> GraphedStep::run(const std::vector<Tensor>& inputs) {
  const Signature shapes = signature(inputs);
  if (graph_ && shapes == target_signature_) return launch(inputs);  // the graph is made for the target
  if (graph_ || fallback_reason_) return pass_(inputs);
  if (target_signature_.empty() || shapes.front().first.numel() > target_signature_.front().first.numel()) {
    target_signature_ = shapes;
    target_steps_ = 0;
  }
  if (shapes != target_signature_ || target_steps_ < kWarmupSteps) {
    target_steps_ += shapes == target_signature_;
    return pass_(inputs);
  }
  try {
    capture(inputs);
  } catch (const Error& error) {
    // Nothing the capture recorded ran, and nothing of it is kept: this step runs eagerly, as all later ones.
    static_inputs_.clear();
    static_outputs_.clear();
    static_grads_.clear();
    for (Tensor& parameter : parameters_) parameter.zero_grad();  // the capture left gradients never written
    fallback_reason_ = error.what();
    return pass_(inputs);
  }
  return launch(inputs);
}

GraphedStep::Signature GraphedStep::signature(const std::vector<Tensor>& inputs) {
  Signature shapes;
  for (const Tensor& input : inputs) shapes.emplace_back(input.shape(), input.dtype());
  return shapes;
}

void GraphedStep::capture(const std::vector<Tensor>& inputs) {
  // Each laid out as its input (raw::empty_like): a channels-last batch gets a channels-last tensor, so the
  // captured pass runs the kernels an eager step on that batch runs (an NCHW one would capture the NCHW
  // kernels, and the convolutions' choices for NCHW shapes).
  for (const Tensor& input : inputs) static_inputs_.push_back(raw::empty_like(input));
  // The captured backward must make every gradient afresh (into the graph's memory), not add to an eager
  // step's.
  for (Tensor& parameter : parameters_) parameter.zero_grad();
  graph_ = std::make_unique<CudaGraph>(device_index_, [&] { static_outputs_ = pass_(static_inputs_); });
  for (const Tensor& parameter : parameters_) static_grads_.push_back(parameter.grad());
}

std::vector<Tensor> GraphedStep::launch(const std::vector<Tensor>& inputs) {
  {
    const NoGradGuard no_grad;
    for (std::size_t i = 0; i < inputs.size(); ++i) static_inputs_[i].copy_(inputs[i]);
  }
  graph_->launch();
  for (std::size_t i = 0; i < parameters_.size(); ++i) parameters_[i].set_grad(static_grads_[i]);
  return static_outputs_;
}

}  // namespace kiln::train
