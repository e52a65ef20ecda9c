// Gradient clipping by global norm (PyTorch's clip_grad_norm_).
//
// The norm is taken over all gradients together, as if they were one long vector:
//   norm = sqrt(sum over parameters p, elements i of grad(p)_i^2)
// and when norm > max_norm every gradient is scaled by the same factor max_norm / (norm + 1e-6), which
// keeps the update's direction and bounds its length. The 1e-6 keeps the factor finite and puts the
// clipped norm just under max_norm.
//
// The norm is summed and the clipping decided where the gradients are (kernels/grad_clip): on a GPU,
// clipping makes the host wait for nothing, and the norm reaches the host only when the caller reads it.
#pragma once

#include <vector>

#include "core/tensor.hpp"

namespace kiln::optim {

// Scales the gradients of `parameters` in place when their global L2 norm exceeds `max_norm` (> 0), and
// returns the norm before clipping: a float64 scalar on the gradients' device (read it with item()). The
// gradients are float32 or float64, all on one device; parameters without a gradient are skipped, and with
// none the norm is 0 (on the CPU). A non-finite norm (a NaN or infinite gradient) leaves the gradients
// untouched: the caller decides whether to skip the step or stop.
Tensor clip_grad_norm(const std::vector<Tensor>& parameters, double max_norm);

}  // namespace kiln::optim
