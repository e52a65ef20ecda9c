// Reverse-mode automatic differentiation: the tape and the engine that walks it.
//
// The tape is built as the program runs (define-by-run). A differentiable op whose inputs need gradients
// attaches a Node to its output: the op's name, an Edge per input (to the node that produced it, or to
// the leaf tensor that accumulates its gradient), and the op's derivative rule, a function from the
// output's gradient to one gradient per input. backward() orders the nodes topologically from the root
// and calls each rule once, after every gradient flowing into its output has been summed.
//
// A rule saves what it needs by capturing it. A rule that captures its own output captures a detached
// view of it, so a node never keeps itself alive through its output.
#pragma once

#include <functional>
#include <memory>
#include <string_view>
#include <type_traits>
#include <vector>

#include "core/tensor.hpp"

namespace kiln {

// One gradient per input of an op, in input order; an undefined Tensor means "no gradient".
using Grads = std::vector<Tensor>;
// Which inputs need a gradient, so a rule can skip expensive work (conv backward-data of the first layer).
using NeedsGrad = std::vector<bool>;
using BackwardFn = std::function<Grads(const Tensor& grad_output, const NeedsGrad& needs_grad)>;

struct Edge {
  std::shared_ptr<Node> node;        // the producer of a non-leaf input, or
  std::shared_ptr<TensorImpl> leaf;  // a leaf input that requires grad; both null: no gradient needed
  bool needs_grad() const { return node != nullptr || leaf != nullptr; }
};

struct Node {
  std::string_view op;
  std::vector<Edge> inputs;
  BackwardFn backward;
  Shape output_shape;  // checked against each gradient the rule receives
};

// Gradient recording is on by default; NoGradGuard turns it off for a scope (per thread).
bool grad_enabled();
class NoGradGuard {
 public:
  NoGradGuard();
  ~NoGradGuard();
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool previous_;
};

// Attaches `rule` to `output` when recording is on and some input requires grad; returns `output`.
// `rule` is either (grad) -> Grads or (grad, needs_grad) -> Grads.
Tensor record_node(std::string_view op, const std::vector<Tensor>& inputs, Tensor output, BackwardFn rule);

template <typename Rule>
Tensor record(std::string_view op, const std::vector<Tensor>& inputs, Tensor output, Rule rule) {
  if constexpr (std::is_invocable_v<Rule, const Tensor&, const NeedsGrad&>) {
    return record_node(op, inputs, std::move(output), BackwardFn(std::move(rule)));
  } else {
    return record_node(op, inputs, std::move(output),
                       [rule = std::move(rule)](const Tensor& grad, const NeedsGrad&) { return rule(grad); });
  }
}

// Runs the tape backwards from `root` seeded with `grad_root`, accumulating into leaves' .grad.
void run_backward(const Tensor& root, const Tensor& grad_root);

}  // namespace kiln
