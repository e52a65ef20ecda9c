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

// What the engine asks of a rule, input by input: whether the input needs a gradient, so a rule can skip
// expensive work (conv backward-data of the first layer), and where the rule may sum the gradient in place.
//
// An input used by several ops (a ResNet block's input: its first convolution and its shortcut) gets the sum
// of their gradients. The engine holds the sum so far and offers it to the next rule that produces one for
// that input; a rule that can add into it (conv2d's backward data, in its own stores; the pad-identity
// shortcut, into the pixels it kept) does so in its own pass, where a fresh gradient would be written, then
// read back with the sum by a separate add: one pass over the gradient, not three.
class NeedsGrad {
 public:
  explicit NeedsGrad(std::size_t inputs) : needs_(inputs, false), sums_(inputs, nullptr) {}
  bool operator[](std::size_t i) const { return needs_[i]; }
  std::size_t size() const { return needs_.size(); }
  // The gradient summed so far for input i, when the rule may add its own into it: dense (contiguous or
  // channels-last), of the input's shape, held by nothing but the engine; else null. A rule that takes it
  // first checks that its dtype, device and layout are those it would write, adds into it, and returns that
  // same tensor as input i's gradient; any other tensor it returns, the engine adds, as always.
  const Tensor* sum_into(std::size_t i) const { return sums_[i]; }

  void set(std::size_t i, bool needs, const Tensor* sum = nullptr) {
    needs_[i] = needs;
    sums_[i] = needs ? sum : nullptr;
  }

 private:
  std::vector<bool> needs_;
  std::vector<const Tensor*> sums_;
};
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
