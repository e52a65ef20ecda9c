// Gradient clipping by global norm (PyTorch's clip_grad_norm_).
//
// The norm is taken over all gradients together, as if they were one long vector:
//   norm = sqrt(sum over parameters p, elements i of grad(p)_i^2)
// and when norm > max_norm every gradient is scaled by the same factor max_norm / (norm + 1e-6), which
// keeps the update's direction and bounds its length. The 1e-6 keeps the factor finite and puts the
// clipped norm just under max_norm.
#pragma once

#include <vector>

#include "core/tensor.hpp"

namespace kiln::optim {

// Scales the gradients of `parameters` in place when their global L2 norm exceeds `max_norm` (> 0), and
// returns the norm before clipping. Parameters without a gradient are skipped. A non-finite norm (a NaN
// or infinite gradient) is returned without touching the gradients: the caller decides whether to skip
// the step or stop.
double clip_grad_norm(const std::vector<Tensor>& parameters, double max_norm);

}  // namespace kiln::optim
