// GraphedStep: the device work of a step, captured once as a CUDA graph and launched as one unit at every
// later step (`kiln train --cuda-graphs`).
//
// What it holds is the "pass". For a training step (train/trainer.cpp): the forward pass, the loss, backward
// into the parameters' gradients, gradient clipping and the count of correct predictions, a few hundred
// kernel launches in all (core/cuda_graph.hpp says why that matters at small batches). The optimizer's update
// stays outside, launched as before: its learning rate changes with the schedule, and a graph would keep the
// rate it was captured with. For an evaluation batch (train/evaluate.hpp): the forward pass and the loss,
// with no parameters whose gradients to keep.
//
// How a step runs:
//   - The graph is made for the largest batch seen (an epoch's last, smaller batch runs eagerly, even when a
//     resumed run starts with one). The first kWarmupSteps of that batch run eagerly: they create the
//     optimizer's state, and let the convolution tuner measure every shape (kernels/conv2d/cuda_tuning.hpp),
//     neither of which a capture can do.
//   - The next one is captured. Its inputs are copied into "static" tensors that the graph reads at every
//     launch, each laid out as that step's input (a channels-last batch, a channels-last tensor); the pass's
//     outputs, and the gradients it leaves on the parameters, are tensors the graph writes at every launch.
//     The graph is then launched for this step too (capturing runs nothing).
//   - Every later step copies its inputs into the static tensors (one device-to-device copy each) and
//     launches the graph. A step whose inputs differ in shape (an epoch's last, smaller batch) runs eagerly.
//   - A pass that cannot be captured (it draws random numbers, as dropout does, or waits for the device)
//     makes the capture fail; the step then runs eagerly, and so does every later one: `fallback_reason()`
//     says why.
//
// After a launch the parameters' gradients are set back to the graph's own (an eager step in between, the
// last batch of an epoch, replaced them), so the optimizer always reads what the pass just wrote.
#pragma once

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "core/cuda_graph.hpp"
#include "core/tensor.hpp"

namespace kiln::train {

class GraphedStep {
 public:
  // A step's pass: from the step's input tensors (on the device), the tensors to read after it (the loss
  // first); it must leave the parameters' gradients set, as backward does.
  using Pass = std::function<std::vector<Tensor>(const std::vector<Tensor>& inputs)>;

  static constexpr int kWarmupSteps = 1;

  // `parameters`: the tensors whose gradients the pass leaves, all on cuda:device_index (none for a pass
  // without backward).
  GraphedStep(int device_index, std::vector<Tensor> parameters, Pass pass);

  // Runs the pass on `inputs`: eagerly, or by launching the graph (capturing it first, once). The outputs of
  // a graph launch are the graph's own tensors, overwritten by its next launch: read them, or queue work on
  // them, before the next run().
  std::vector<Tensor> run(const std::vector<Tensor>& inputs);

  bool captured() const { return graph_ != nullptr; }
  // Why steps run eagerly for good (the capture failed), or nothing.
  const std::optional<std::string>& fallback_reason() const { return fallback_reason_; }

 private:
  // The shapes and dtypes of a step's inputs.
  using Signature = std::vector<std::pair<Shape, DType>>;
  static Signature signature(const std::vector<Tensor>& inputs);
  void capture(const std::vector<Tensor>& inputs);
  std::vector<Tensor> launch(const std::vector<Tensor>& inputs);

  int device_index_;
  std::vector<Tensor> parameters_;
  Pass pass_;
  // The inputs' shapes of the largest batch so far (by its first input's elements): what a graph is made
  // for, and once captured what it was made for; and how many steps of that batch have run eagerly.
  Signature target_signature_;
  int target_steps_ = 0;
  std::vector<Tensor> static_inputs_, static_outputs_, static_grads_;
  std::unique_ptr<CudaGraph> graph_;
  std::optional<std::string> fallback_reason_;
};

}  // namespace kiln::train
