#include "core/autograd.hpp"

#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "core/ops.hpp"
#include "core/raw.hpp"

namespace kiln {
namespace {

thread_local bool grad_mode_enabled = true;

// Whether the engine holds the only reference to `t` and to its storage, and `t` spans that storage exactly:
// then nothing else can see it, or any part of it, change.
bool held_alone(const Tensor& t) {
  const TensorImpl& impl = t.impl();
  return t.impl_ptr().use_count() == 1 && impl.storage.use_count() == 1 && t.offset() == 0 &&
         impl.storage->bytes() == t.nbytes();
}

// Adds `grad` to `slot`, which may be undefined. Where the engine owns the slot's tensor outright (a rule's
// fresh gradient, not one it also handed to another input or kept), the sum goes into it in place, as
// PyTorch's engine accumulates: no new buffer, and the sum's pass reads both operands and writes lines it
// has just read, where a fresh output would first be fetched to be written (a ResNet's add at each block
// input). Otherwise the sum is a fresh tensor, so a gradient handed to a user or shared between inputs is
// never changed by a later accumulation.
void accumulate(Tensor& slot, const Tensor& grad) {
  if (!slot.defined()) {
    slot = grad;
  } else if (held_alone(slot) && (slot.is_contiguous() || slot.is_channels_last()) &&
             slot.shape() == grad.shape() && slot.dtype() == grad.dtype() && slot.device() == grad.device()) {
    raw::add_in_place(slot, grad);
  } else {
    slot = add(slot, grad);
  }
}

// The sum so far of input i's gradients, when node's rule may add into it (NeedsGrad::sum_into): what
// accumulate would add into in place, for an input that no other input of the node shares (two gradients
// summed into one tensor by one rule could read each other's).
const Tensor* summable(const std::unordered_map<Node*, Tensor>& pending, const Node& node, std::size_t i) {
  Node* const producer = node.inputs[i].node.get();
  if (!producer) return nullptr;
  for (std::size_t j = 0; j < node.inputs.size(); ++j) {
    if (j != i && node.inputs[j].node.get() == producer) return nullptr;
  }
  const auto found = pending.find(producer);
  if (found == pending.end() || !found->second.defined()) return nullptr;
  const Tensor& sum = found->second;
  const bool dense = sum.is_contiguous() || sum.is_channels_last();
  return held_alone(sum) && dense && sum.shape() == producer->output_shape ? &sum : nullptr;
}

// Nodes reachable from `root`, each after every node that feeds it a gradient (reverse post-order).
std::vector<Node*> topological_order(Node* root) {
  std::vector<Node*> post_order;
  std::unordered_set<Node*> visited;
  // Iterative depth-first search: deep nets (ResNet-110) would overflow a recursive one.
  std::vector<std::pair<Node*, std::size_t>> stack{{root, 0}};
  visited.insert(root);
  while (!stack.empty()) {
    auto& [node, next_input] = stack.back();
    if (next_input < node->inputs.size()) {
      Node* child = node->inputs[next_input++].node.get();
      if (child && visited.insert(child).second) stack.emplace_back(child, 0);
    } else {
      post_order.push_back(node);
      stack.pop_back();
    }
  }
  return {post_order.rbegin(), post_order.rend()};
}

void check_gradient(const Node& node, std::size_t input, const Tensor& grad, const Edge& edge) {
  const Shape& expected = edge.leaf ? edge.leaf->shape : edge.node->output_shape;
  KILN_CHECK(grad.shape() == expected, "backward of ", node.op, ": the gradient for input ", input, " has shape ",
             grad.shape(), " but the input has shape ", expected);
}

// A leaf's .grad is always a dense tensor of its own: a rule may hand back a broadcast view or the very
// gradient the caller seeded backward() with, and neither may alias what the user later reads or edits.
// A rule's fresh gradient usually is one already (dense, of the leaf's dtype, its storage exactly its
// elements, and the engine's the last reference to it or its storage): then it becomes .grad as it is, as
// PyTorch's AccumulateGrad steals it, and the copy is saved (on a GPU, a launch and a pass over the gradient
// per parameter per step).
bool owned_outright(const Tensor& grad, const TensorImpl& leaf) {
  return held_alone(grad) && grad.dtype() == leaf.dtype && grad.is_contiguous();
}

void accumulate_into_leaf(TensorImpl& leaf, Tensor grad) {
  if (leaf.grad) {
    leaf.grad = add(Tensor(leaf.grad), grad).to(leaf.dtype).impl_ptr();
    return;
  }
  if (owned_outright(grad, leaf)) {
    leaf.grad = grad.impl_ptr();
    return;
  }
  Tensor own = Tensor::empty(leaf.shape, leaf.dtype, grad.device());
  own.copy_(grad);
  leaf.grad = own.impl_ptr();
}

}  // namespace

bool grad_enabled() { return grad_mode_enabled; }

NoGradGuard::NoGradGuard() : previous_(grad_mode_enabled) { grad_mode_enabled = false; }
NoGradGuard::~NoGradGuard() { grad_mode_enabled = previous_; }

Tensor record_node(std::string_view op, const std::vector<Tensor>& inputs, Tensor output, BackwardFn rule) {
  if (!grad_mode_enabled) return output;
  std::vector<Edge> edges(inputs.size());
  bool any = false;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    const Tensor& input = inputs[i];
    if (!input.defined() || !input.requires_grad()) continue;
    any = true;
    if (input.grad_fn()) {
      edges[i].node = input.grad_fn();
    } else {
      edges[i].leaf = input.impl_ptr();
    }
  }
  if (!any) return output;
  auto node = std::make_shared<Node>(Node{op, std::move(edges), std::move(rule), output.shape()});
  output.impl().grad_fn = std::move(node);
  output.impl().requires_grad = true;
  return output;
}

void run_backward(const Tensor& root, const Tensor& grad_root) {
  KILN_CHECK(root.requires_grad(), "backward: the tensor ", root.describe(),
             " does not require grad (no input of the ops that made it requires grad)");
  KILN_CHECK(grad_root.shape() == root.shape(), "backward: gradient shape ", grad_root.shape(),
             " does not match the tensor's shape ", root.shape());
  NoGradGuard no_grad;  // rules compute with ops; their results are plain values, not a second tape
  if (!root.grad_fn()) {
    accumulate_into_leaf(root.impl(), grad_root);
    return;
  }
  std::unordered_map<Node*, Tensor> pending;  // the summed gradient of each node's output
  pending[root.grad_fn().get()] = grad_root;
  for (Node* node : topological_order(root.grad_fn().get())) {
    auto found = pending.find(node);
    if (found == pending.end()) continue;  // no gradient reached it (all paths gave undefined grads)
    const Tensor grad_output = std::move(found->second);
    pending.erase(found);

    NeedsGrad needs(node->inputs.size());
    for (std::size_t i = 0; i < node->inputs.size(); ++i)
      needs.set(i, node->inputs[i].needs_grad(), summable(pending, *node, i));
    Grads grads = node->backward(grad_output, needs);
    KILN_CHECK(grads.size() == node->inputs.size(), "backward of ", node->op, ": the rule returned ",
               grads.size(), " gradients for ", node->inputs.size(), " inputs");
    for (std::size_t i = 0; i < grads.size(); ++i) {
      const Edge& edge = node->inputs[i];
      if (!edge.needs_grad() || !grads[i].defined()) continue;
      check_gradient(*node, i, grads[i], edge);
      if (needs.sum_into(i) && grads[i].impl_ptr() == needs.sum_into(i)->impl_ptr())
        continue;  // summed in place
      if (edge.node) {
        accumulate(pending[edge.node.get()], grads[i]);
      } else {
        accumulate_into_leaf(*edge.leaf, std::move(grads[i]));  // the rule's last use of it
      }
    }
  }
}

}  // namespace kiln
