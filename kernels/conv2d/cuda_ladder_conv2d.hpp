// A step of the convolution ladder (kernels/conv2d/ladder) run as one of kiln's convolutions: NCHW tensors of
// T in and out, the bias added forward, each output rounded to T once. This is what lets the tuning
// (cuda_tuning.hpp) offer the ladder's steps to training.
//
// A ladder step takes its own layout and writes float; kiln's tensors are NCHW and of T. So, per pass
// (first and second as in conv2d_ladder::Step, NHWC scratch from the caching allocator):
//
//   NCHW fp32 step (T float)    the step reads the tensors and writes the output where they lie; forward adds
//                               the bias in place afterwards
//   NHWC step                   first and second transposed to NHWC (x [N,C,H,W] -> [N,H,W,C], w [K,C,R,S] ->
//                               [K,R,S,C], gy [N,K,P,Q] -> [N,P,Q,K]), the step writes float NHWC scratch,
//                               which one transpose back to NCHW turns into T, the bias added in float
//                               before the rounding
//
// The transposes are 32x32 tiles through shared memory, read and written in whole rows. They are the price
// of a channels-last kernel in an NCHW framework, paid on every call and included in every measured time.
// Channels-last activations (Conv2dGeometry::channels_last, `--memory-format channels-last`) turn it around:
// an NHWC step then reads and writes them where they lie (only the filter is transposed, and the float
// output rounded into T), and it is an NCHW step, or the library path (run_as_nchw), that pays the
// transposes.
// Kernels launch through the ladder's seam (kernels/ladder/launch.cuh), so the CPU emulator runs this file
// unchanged (tests/emulation).
#pragma once

#include <cstdint>
#include <functional>

#include "kernels/conv2d/conv2d.hpp"
#include "kernels/conv2d/ladder/ladder.hpp"

namespace kiln::kernels::cuda {

// An NCHW tensor seen as [planes, channels, positions]: x [N, C, H*W], y [N, K, P*Q], and the weights
// [K, C/groups, R*S]. Transposing each plane gives the NHWC [planes, positions, channels].
struct NchwShape {
  std::int64_t planes, channels, positions;
  std::int64_t elements() const { return planes * channels * positions; }
};
// A pass's two inputs and its output, in the order of conv2d_ladder::Step.
struct PassTensors {
  NchwShape first, second, output;
};
PassTensors pass_tensors(conv2d_ladder::Pass pass, const Conv2dGeometry& g);

// Whether `step` can serve a convolution of T over `g`: cuda_tuning.hpp's rule, for T's element type (its
// precision is T's own, an NCHW step only for float, and it supports g here).
template <typename T>
bool ladder_step_serves(const conv2d_ladder::Step& step, const Conv2dGeometry& g);

// Runs `step` as its pass of kiln's convolution (conv2d.hpp's semantics and layouts), on the current device's
// compute stream, asynchronously:
//   forward          (x, w, bias) -> y     bias may be null
//   backward data    (gy, w)      -> gx    bias must be null
//   backward weight  (gy, x)      -> gw    bias must be null
// Throws a kiln::Error when ladder_step_serves(step, g) is false.
template <typename T>
void run_ladder_step(const conv2d_ladder::Step& step, const Conv2dGeometry& g, const T* first,
                     const T* second, const T* bias, T* output);

// Runs `run(nchw, first, second, output)`, a pass written for NCHW activations (the library path, an NCHW
// step), on the channels-last activations of `g`: each activation among the pass's inputs is transposed to
// an NCHW copy first, and an activation output is written to NCHW scratch and transposed back; the filter
// and its gradient pass through. `nchw` is g with channels_last unset.
template <typename T>
void run_as_nchw(conv2d_ladder::Pass pass, const Conv2dGeometry& g, const T* first, const T* second,
                 T* output,
                 const std::function<void(const Conv2dGeometry& nchw, const T*, const T*, T*)>& run);

}  // namespace kiln::kernels::cuda
