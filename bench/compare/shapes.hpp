// The shapes the CPU comparison (scripts/compare-cpu.sh) times, shared by the kiln and oneDNN programs so
// both time exactly the same work. bench/compare/torch_cpu.py lists the same shapes again (Python cannot
// include this file); table.py joins the three programs' results by the names given here.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace kiln::bench::compare {

// One 3x3 convolution of ResNet-20 (He et al. 2015: CIFAR-10's 32x32 input, or any other size), padding 1,
// no bias, at the batch size given on the command line. `count` says how many of ResNet-20's 19
// convolutions have it.
struct ConvShape {
  std::string name;  // "16->32 3x3 s2 @32x32": channels, kernel, stride, input height x width
  std::int64_t in_channels, out_channels, stride, in_size, count;

  std::int64_t out_size() const { return (in_size + 2 - 3) / stride + 1; }
  // Multiply-adds x 2 for one direction at `batch` (forward, backward-data and backward-weight are equal).
  double flops(std::int64_t batch) const {
    return 2.0 * static_cast<double>(batch * out_channels * out_size() * out_size() * in_channels * 9);
  }

  static ConvShape of(std::int64_t in_channels, std::int64_t out_channels, std::int64_t stride,
                      std::int64_t in_size, std::int64_t count) {
    const std::string size = std::to_string(in_size);
    return {std::to_string(in_channels) + "->" + std::to_string(out_channels) + " 3x3 s" +
                std::to_string(stride) + " @" + size + "x" + size,
            in_channels,
            out_channels,
            stride,
            in_size,
            count};
  }
};

// ResNet-20's distinct convolutions on image_size x image_size inputs: its stages run at the input's size,
// then each stride-2 convolution's output size, (n + 1) / 2.
inline std::vector<ConvShape> resnet20_conv_shapes(std::int64_t image_size) {
  const std::int64_t stage2 = (image_size + 1) / 2, stage3 = (stage2 + 1) / 2;
  return {
      ConvShape::of(3, 16, 1, image_size, 1),   // conv1
      ConvShape::of(16, 16, 1, image_size, 6),  // stage 1
      ConvShape::of(16, 32, 2, image_size, 1),  // stage 2, first conv
      ConvShape::of(32, 32, 1, stage2, 5),      // stage 2
      ConvShape::of(32, 64, 2, stage2, 1),      // stage 3, first conv
      ConvShape::of(64, 64, 1, stage3, 5),      // stage 3
  };
}

// C[M, N] = A[M, K] B[K, N], row-major, no transposes.
struct GemmShape {
  std::string name;
  std::int64_t m, n, k;
  double flops() const { return 2.0 * static_cast<double>(m * n * k); }
};

inline std::vector<GemmShape> gemm_shapes() {
  return {
      {"1024x1024x1024", 1024, 1024, 1024},
      {"2048x2048x2048", 2048, 2048, 2048},
      // A 64->64 3x3 convolution at 8x8, batch 128, as one im2col GEMM: [C_out, C_in*9] x [C_in*9, N*OH*OW].
      {"conv-like 64x8192x576", 64, 8192, 576},
      // A 16->16 3x3 convolution at 32x32 for one image: short and wide, the shape per-image im2col makes.
      {"conv-like 16x1024x144", 16, 1024, 144},
  };
}

}  // namespace kiln::bench::compare
