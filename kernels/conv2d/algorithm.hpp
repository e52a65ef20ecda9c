// Which convolution algorithm runs a given float convolution, and a way to run one by name.
//
//   Reference   the plain loops of reference.cpp (the oracle; also what the Reference CPU level runs)
//   Im2colGemm  unfold the input into columns, then one GEMM per image and group (any geometry)
//   Pointwise   1x1 kernel, stride 1, no padding: a GEMM directly on the NCHW image, no unfolding
//   Depthwise   groups == C_in == C_out: a direct kernel vectorized along the output row
//   DepthwiseChannels  the same convolutions vectorized along the channels, one image's block of channels
//               at a time (depthwise_channels_kernel.hpp): every lane useful at any plane size
//   Winograd2x2 Winograd F(2x2, 3x3), vectorized along the channels (winograd_kernel.hpp): 3x3 kernel,
//               dilation 1, groups 1; at stride 1 forward and backward-weight at any padding, backward-data
//               at pad <= 2; at stride 2 (split by phase) the same, backward-data at pad 1
//   Winograd4x4 F(4x4, 3x3), the same kernel with 4x4 output tiles, the same directions
//   Direct      a GEMM over a zero-padded strip of images where every tap is a constant offset, so no
//               im2col (direct_kernel.hpp); forward and backward-weight for any geometry, backward-data
//               for stride 1 with pad <= dilation * (K - 1)
//   DirectChannels  the same strip read one output row at a time, vectorized along the output channels
//               (direct_channels_kernel.hpp): no junk positions; forward and backward-data (phase by
//               phase, any stride) for any geometry; no weight gradient (Direct's visits no junk already)
//   UnrolledGemm  planes of a few pixels: the kernel unrolled into one dense matrix from an image's whole
//               input to its whole output, each direction one GEMM over the batch (unrolled_gemm.cpp); one
//               group, any stride, padding and dilation
//   TapGemm     small planes: a GEMM over the batch for each kernel tap and run of output positions it
//               reaches, the images the rows (tap_gemm.cpp); one group, any stride, padding and dilation
//
// The choice (choose_conv2d_algorithm) is a function of the shape, the direction and the CPU level only,
// never of the thread count, so a run is reproducible on any number of threads. dispatch.cpp is the one
// place that calls it; benchmarks and tests use conv2d_algorithm_name to print the choice and the
// conv2d_*_using functions to force an algorithm on a shape it supports.
#pragma once

#include <string_view>

#include "kernels/conv2d/conv2d.hpp"
#include "kernels/cpu_level.hpp"

namespace kiln::kernels {

enum class Conv2dAlgorithm {
  Reference,
  Im2colGemm,
  Pointwise,
  Depthwise,
  Winograd2x2,
  Winograd4x4,
  Direct,
  DirectChannels,
  DepthwiseChannels,
  UnrolledGemm,
  TapGemm
};
enum class Conv2dDirection { Forward, BackwardData, BackwardWeight };

std::string_view conv2d_algorithm_name(Conv2dAlgorithm algorithm);
std::string_view conv2d_direction_name(Conv2dDirection direction);

// Whether `algorithm` can run geometry `g` in `direction` at CPU level `level`.
bool conv2d_algorithm_supports(Conv2dAlgorithm algorithm, const Conv2dGeometry& g, Conv2dDirection direction,
                               CpuLevel level);

// Whether `algorithm` reads and writes channels-last activations itself (Conv2dGeometry::channels_last):
// the reference loops, Winograd, whose tiles are channels-last inside anyway, DepthwiseChannels, whose
// blocks are, Pointwise, for which a channels-last batch is one GEMM operand, and TapGemm, which lays out
// either layout the same way. dispatch.cpp runs every
// other algorithm on a channels-last geometry behind a conversion to NCHW and back.
bool conv2d_algorithm_takes_channels_last(Conv2dAlgorithm algorithm);

// The heuristic (algorithm.cpp documents why each rule is there).
Conv2dAlgorithm choose_conv2d_algorithm(const Conv2dGeometry& g, Conv2dDirection direction, CpuLevel level);

// Run one algorithm explicitly, float only (dispatch.cpp). Throws a kiln::Error when the algorithm does not
// support the geometry at the current CPU level. `input`: x normalized as the passes copy it in
// (InputNormalization, conv2d.hpp), for the algorithms whose copies do (Winograd, Depthwise,
// DepthwiseChannels, over NCHW).
void conv2d_forward_using(Conv2dAlgorithm algorithm, const Conv2dGeometry& g, const float* x, const float* w,
                          const float* bias, float* y, const InputNormalization* input = nullptr);
void conv2d_backward_data_using(Conv2dAlgorithm algorithm, const Conv2dGeometry& g, const float* gy,
                                const float* w, float* gx);
void conv2d_backward_weight_using(Conv2dAlgorithm algorithm, const Conv2dGeometry& g, const float* gy,
                                  const float* x, float* gw, const InputNormalization* input = nullptr);

}  // namespace kiln::kernels
