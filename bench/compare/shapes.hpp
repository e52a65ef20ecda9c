// The shapes the CPU comparison (scripts/compare-cpu.sh) times, shared by the kiln and oneDNN programs so
// both time exactly the same work. PyTorch's side reads the same list from `compare_kiln_cpu --list-shapes`
// (Python cannot include this file); table.py joins the three programs' results by the names given here.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace kiln::bench::compare {

// One convolution layer, square kernel and image, no bias, at the batch size given on the command line.
// `family` says whose layer it is: "resnet20" (the summary rows add these up as one training step's 19
// convolutions, `count` times each), "mobilenet", "lenet5", or "strided" (the strided layers of users' own
// models: ImageNet-style stems, projection shortcuts, 5x5 kernels, stride 3, groups, dilation).
struct ConvShape {
  std::string family;
  std::int64_t in_channels = 1, out_channels = 1, kernel = 3, stride = 1, in_size = 1;
  std::int64_t padding = -1;  // -1: "same" padding, dilation * (kernel - 1) / 2
  std::int64_t dilation = 1, groups = 1;
  std::int64_t count = 0;  // how many of ResNet-20's convolutions have this shape; 0 outside it
  std::string name = {};   // filled by named(): "16->32 3x3 s2 @32x32", "64->64 3x3 s2 dw @32x32", ...

  std::int64_t same_padding() const { return dilation * (kernel - 1) / 2; }
  std::int64_t out_size() const { return (in_size + 2 * padding - dilation * (kernel - 1) - 1) / stride + 1; }
  bool depthwise() const { return groups > 1 && groups == in_channels && groups == out_channels; }
  // Multiply-adds x 2 for one direction at `batch` (forward, backward-data and backward-weight are equal).
  double flops(std::int64_t batch) const {
    const std::int64_t out = out_size();
    return 2.0 *
           static_cast<double>(batch * out_channels * out * out * (in_channels / groups) * kernel * kernel);
  }

  // What `compare_kiln_cpu --list-shapes` prints for torch_cpu.py: the fields, and the output size and
  // FLOP count derived from them, so the Python side need not derive them again.
  nlohmann::json to_json() const {
    return {{"name", name},
            {"family", family},
            {"in_channels", in_channels},
            {"out_channels", out_channels},
            {"kernel", kernel},
            {"stride", stride},
            {"padding", padding},
            {"dilation", dilation},
            {"groups", groups},
            {"in_size", in_size},
            {"count", count},
            {"out_size", out_size()},
            {"flops_per_image", flops(1)}};
  }
};

// Fills in the padding left "same" and the name: channels, kernel and stride, then what differs from a
// plain convolution (dw: depthwise, gN: N groups, dN: dilation, pN: padding other than "same"), then the
// input's size. ResNet-20's names stay those of earlier reports: "16->32 3x3 s2 @32x32".
inline ConvShape named(ConvShape shape) {
  const bool same = shape.padding < 0 || shape.padding == shape.same_padding();
  if (shape.padding < 0) shape.padding = shape.same_padding();
  const auto text = [](std::int64_t value) { return std::to_string(value); };
  std::string name = text(shape.in_channels) + "->" + text(shape.out_channels) + " " + text(shape.kernel) +
                     "x" + text(shape.kernel) + " s" + text(shape.stride);
  if (shape.depthwise()) {
    name += " dw";
  } else if (shape.groups > 1) {
    name += " g" + text(shape.groups);
  }
  if (shape.dilation > 1) name += " d" + text(shape.dilation);
  if (!same) name += " p" + text(shape.padding);
  shape.name = name + " @" + text(shape.in_size) + "x" + text(shape.in_size);
  return shape;
}

// ResNet-20's distinct convolutions (He et al. 2015: 3x3, padding 1) on image_size x image_size inputs:
// its stages run at the input's size, then each stride-2 convolution's output size, (n + 1) / 2.
inline std::vector<ConvShape> resnet20_conv_shapes(std::int64_t image_size) {
  const std::int64_t stage2 = (image_size + 1) / 2, stage3 = (stage2 + 1) / 2;
  const auto layer = [](std::int64_t in, std::int64_t out, std::int64_t stride, std::int64_t size,
                        std::int64_t count) {
    return named({.family = "resnet20",
                  .in_channels = in,
                  .out_channels = out,
                  .stride = stride,
                  .in_size = size,
                  .count = count});
  };
  return {
      layer(3, 16, 1, image_size, 1),   // conv1
      layer(16, 16, 1, image_size, 6),  // stage 1
      layer(16, 32, 2, image_size, 1),  // stage 2, first conv
      layer(32, 32, 1, stage2, 5),      // stage 2
      layer(32, 64, 2, stage2, 1),      // stage 3, first conv
      layer(64, 64, 1, stage3, 5),      // stage 3
  };
}

// Layers of kiln's other networks and of users' own, one or two of each kind an algorithm rule of
// kernels/conv2d/algorithm.cpp serves, at fixed sizes (CIFAR's 32x32 unless a stem wants a photo's 64x64).
inline std::vector<ConvShape> other_conv_shapes() {
  std::vector<ConvShape> shapes = {
      // The MobileNet-style net (models/mobilenet.cpp): its stem, depthwise 3x3 layers at stride 1 and 2
      // on large and small planes, and the 1x1 pointwise layers between them.
      {.family = "mobilenet", .in_channels = 3, .out_channels = 32, .in_size = 32},
      {.family = "mobilenet", .in_channels = 32, .out_channels = 32, .in_size = 32, .groups = 32},
      {.family = "mobilenet",
       .in_channels = 64,
       .out_channels = 64,
       .stride = 2,
       .in_size = 32,
       .groups = 64},
      {.family = "mobilenet", .in_channels = 512, .out_channels = 512, .in_size = 4, .groups = 512},
      {.family = "mobilenet", .in_channels = 32, .out_channels = 64, .kernel = 1, .in_size = 32},
      {.family = "mobilenet", .in_channels = 128, .out_channels = 128, .kernel = 1, .in_size = 16},
      {.family = "mobilenet", .in_channels = 512, .out_channels = 512, .kernel = 1, .in_size = 4},
      // LeNet-5 (models/lenet.cpp): 5x5 kernels without padding on few channels.
      {.family = "lenet5", .in_channels = 3, .out_channels = 6, .kernel = 5, .in_size = 32, .padding = 0},
      {.family = "lenet5", .in_channels = 6, .out_channels = 16, .kernel = 5, .in_size = 14, .padding = 0},
      // ResNet-18 (models/resnet_imagenet.cpp) on 96x96 photos: its last stage's 3x3 planes, and the stride-2
      // layer into them from 6x6 (algorithm.cpp's rule 3: TapGemm).
      {.family = "resnet18", .in_channels = 512, .out_channels = 512, .in_size = 3},
      {.family = "resnet18", .in_channels = 256, .out_channels = 512, .stride = 2, .in_size = 6},
      // Strided layers outside the zoo's CIFAR nets.
      {.family = "strided", .in_channels = 3, .out_channels = 64, .kernel = 7, .stride = 2, .in_size = 64},
      {.family = "strided", .in_channels = 32, .out_channels = 64, .kernel = 5, .stride = 2, .in_size = 32},
      {.family = "strided",
       .in_channels = 16,
       .out_channels = 32,
       .kernel = 1,
       .stride = 2,
       .in_size = 32,
       .padding = 0},
      {.family = "strided",
       .in_channels = 64,
       .out_channels = 128,
       .kernel = 1,
       .stride = 2,
       .in_size = 16,
       .padding = 0},
      {.family = "strided", .in_channels = 16, .out_channels = 32, .stride = 3, .in_size = 33},
      {.family = "strided", .in_channels = 32, .out_channels = 32, .stride = 2, .in_size = 32, .groups = 4},
      {.family = "strided", .in_channels = 16, .out_channels = 32, .stride = 2, .in_size = 32, .dilation = 2},
  };
  for (ConvShape& shape : shapes) shape = named(std::move(shape));
  return shapes;
}

// Every convolution the comparison times: ResNet-20's first, then the others.
inline std::vector<ConvShape> conv_shapes(std::int64_t image_size) {
  std::vector<ConvShape> shapes = resnet20_conv_shapes(image_size);
  for (ConvShape& shape : other_conv_shapes()) shapes.push_back(std::move(shape));
  return shapes;
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
