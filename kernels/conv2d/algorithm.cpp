// The per-shape choice of convolution algorithm (see algorithm.hpp for the list).
//
// The rules, in order, and why:
//   1. At the Reference CPU level, the reference loops: that level exists to run the oracle everywhere.
//   2. Depthwise (groups == C_in == C_out) goes to the direct kernel. As a GEMM, each group would be a
//      [1, KH*KW] x [KH*KW, OH*OW] product: too thin for a GEMM to get anywhere near peak, and im2col would
//      copy the input KH*KW times to feed it. The direct kernel reads each input row once per tap from L1.
//      Its weight-gradient keeps one vector accumulator per tap, so it takes kernels of at most 32 taps.
//   3. A 1x1 kernel with stride 1 and no padding goes to Pointwise: the image is already the GEMM operand.
//   4. Forward 3x3 stride-1 convolutions with at least 128 input and 128 output channels go to Winograd
//      F(2x2, 3x3). Its transforms are scalar loops that cost about as much per element as im2col does, so
//      it wins only where the GEMMs dominate: measured on one thread, batch 128 (ms, im2col vs winograd):
//      128->128 at 8x8  40.5 vs 29.8;  64->64 at 8x8  11.4 vs 12.5;  32->32 at 16x16  10.4 vs 18.6;
//      16->16 at 32x32  11.6 vs 30.9; on two threads 128->128 at 8x8  17.8 vs 14.6 (a busy machine).
//   5. Everything else goes to im2col + GEMM, which handles any stride, padding, dilation and groups.
#include "kernels/conv2d/algorithm.hpp"

namespace kiln::kernels {
namespace {

constexpr std::int64_t kMaxDepthwiseTaps = 32;
constexpr std::int64_t kMinWinogradChannels = 128;

bool is_depthwise(const Conv2dGeometry& g) {
  return g.groups == g.in_channels && g.groups == g.out_channels &&
         g.kernel_h * g.kernel_w <= kMaxDepthwiseTaps;
}

bool is_pointwise(const Conv2dGeometry& g) {
  return g.kernel_h == 1 && g.kernel_w == 1 && g.stride_h == 1 && g.stride_w == 1 && g.pad_h == 0 &&
         g.pad_w == 0;
}

bool is_winograd_3x3(const Conv2dGeometry& g) {
  return g.kernel_h == 3 && g.kernel_w == 3 && g.stride_h == 1 && g.stride_w == 1 && g.dilation_h == 1 &&
         g.dilation_w == 1 && g.groups == 1;
}

}  // namespace

std::string_view conv2d_algorithm_name(Conv2dAlgorithm algorithm) {
  switch (algorithm) {
    case Conv2dAlgorithm::Reference:
      return "reference";
    case Conv2dAlgorithm::Im2colGemm:
      return "im2col_gemm";
    case Conv2dAlgorithm::Pointwise:
      return "pointwise";
    case Conv2dAlgorithm::Depthwise:
      return "depthwise";
    case Conv2dAlgorithm::Winograd:
      return "winograd";
  }
  return "unknown";
}

std::string_view conv2d_direction_name(Conv2dDirection direction) {
  switch (direction) {
    case Conv2dDirection::Forward:
      return "forward";
    case Conv2dDirection::BackwardData:
      return "backward_data";
    case Conv2dDirection::BackwardWeight:
      return "backward_weight";
  }
  return "unknown";
}

bool conv2d_algorithm_supports(Conv2dAlgorithm algorithm, const Conv2dGeometry& g, Conv2dDirection direction,
                               CpuLevel level) {
  switch (algorithm) {
    case Conv2dAlgorithm::Reference:
      return true;
    case Conv2dAlgorithm::Im2colGemm:
      return true;
    case Conv2dAlgorithm::Pointwise:
      return is_pointwise(g);
    case Conv2dAlgorithm::Depthwise:
      return is_depthwise(g) && level != CpuLevel::Reference;
    case Conv2dAlgorithm::Winograd:
      return direction == Conv2dDirection::Forward && is_winograd_3x3(g);
  }
  return false;
}

Conv2dAlgorithm choose_conv2d_algorithm(const Conv2dGeometry& g, Conv2dDirection direction, CpuLevel level) {
  if (level == CpuLevel::Reference) return Conv2dAlgorithm::Reference;
  if (conv2d_algorithm_supports(Conv2dAlgorithm::Depthwise, g, direction, level))
    return Conv2dAlgorithm::Depthwise;
  if (is_pointwise(g)) return Conv2dAlgorithm::Pointwise;
  if (direction == Conv2dDirection::Forward && is_winograd_3x3(g) && g.in_channels >= kMinWinogradChannels &&
      g.out_channels >= kMinWinogradChannels) {
    return Conv2dAlgorithm::Winograd;
  }
  return Conv2dAlgorithm::Im2colGemm;
}

}  // namespace kiln::kernels
