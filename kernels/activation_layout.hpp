// The two dense layouts of an [N, C, H, W] activation tensor, as strides in elements, written out once for
// every room that builds or recognizes them (core/'s channels-last tensors, the elementwise copies'
// layout transposes, the convolution dispatch's conversions for kernels that take NCHW only).
//
// NCHW keeps each channel's H x W plane together; channels-last ([N, H, W, C] in memory, PyTorch's
// torch.channels_last) keeps each pixel's C channels together, the layout a kernel that vectorizes over
// channels wants.
#pragma once

#include <array>
#include <cstdint>

namespace kiln::kernels {

using ActivationStrides = std::array<std::int64_t, 4>;

// [C*H*W, H*W, W, 1].
constexpr ActivationStrides nchw_strides(std::int64_t c, std::int64_t h, std::int64_t w) {
  return {c * h * w, h * w, w, 1};
}

// [H*W*C, 1, W*C, C].
constexpr ActivationStrides channels_last_strides(std::int64_t c, std::int64_t h, std::int64_t w) {
  return {h * w * c, 1, w * c, c};
}

}  // namespace kiln::kernels
