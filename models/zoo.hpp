// The model zoo: one builder per family, each in its own file. build_model (architecture.cpp) picks
// one by name.
#pragma once

#include "layers/module.hpp"
#include "models/architecture.hpp"

namespace kiln::models {

// LeNet-5 (LeCun et al. 1998) with ReLU and max-pooling, as it is usually trained today.
layers::ModulePtr build_lenet5(const ArchitectureSpec& spec, Generator& generator);

// A VGG-style net (Simonyan & Zisserman 2014) for small images: 3x3 conv-BN-ReLU stacks separated by
// 2x2 max-pools, then global average pooling and one linear classifier.
//   "vgg11": 64, M, 128, M, 256, 256, M, 512, 512, M, 512, 512, M  (configuration A, with batch-norm)
//   "vgg_small": 32, 32, M, 64, 64, M, 128, 128, M                   (fast enough for CPU experiments)
layers::ModulePtr build_vgg(const ArchitectureSpec& spec, Generator& generator);

// ResNet-20/32/44/56/110 exactly as in He et al. 2015, section 4.2 (CIFAR-10): a 3x3 conv to 16 channels,
// three stages of n basic blocks with 16, 32 and 64 channels (n = (depth - 2) / 6; stages 2 and 3 start
// with stride 2), parameter-free "option A" shortcuts, global average pooling and a linear classifier.
layers::ModulePtr build_resnet(const ArchitectureSpec& spec, std::int64_t depth, Generator& generator);

// ResNet-18 as in He et al. 2015, Table 1 (ImageNet): a 7x7 stride-2 conv to 64 channels and a 3x3
// stride-2 max-pool, four stages of two basic blocks with 64, 128, 256 and 512 channels (stages 2 to 4
// start with stride 2, through a 1x1 projection shortcut), global average pooling and a linear classifier.
// It shrinks its input 32-fold, so it suits photos (64 to 224 pixels a side) where the CIFAR networks
// above would keep every activation at the photo's resolution.
layers::ModulePtr build_resnet18(const ArchitectureSpec& spec, Generator& generator);

// A MobileNet-v1-style net (Howard et al. 2017) for small images: a 3x3 conv to 32 channels (stride 1, as
// CIFAR variants do), then depthwise-separable blocks 64, 128/2, 128, 256/2, 256, 512/2, 5 x 512,
// 1024/2, 1024, global average pooling and a linear classifier.
layers::ModulePtr build_mobilenet(const ArchitectureSpec& spec, Generator& generator);

// MobileNetV2 (Sandler et al. 2018) for small images: a 3x3 conv to 32 channels, 17 inverted residual
// blocks (16, 2 x 24, 3 x 32/2, 4 x 64/2, 3 x 96, 3 x 160/2, 320; the stem and the second stage at stride
// 1 rather than ImageNet's 2, as CIFAR variants do), a 1x1 conv to 1280, ReLU6 throughout, global average
// pooling, dropout 0.2 and a linear classifier.
layers::ModulePtr build_mobilenet_v2(const ArchitectureSpec& spec, Generator& generator);

// MobileNetV3-Small (Howard et al. 2019, table 2) for small images: a 3x3 conv to 16 channels, 11 inverted
// residual blocks (kMobileNetV3SmallBlocks: 3x3 and 5x5 depthwise kernels, ReLU then the hard swish, a
// hard-sigmoid squeeze-and-excitation of a quarter of the hidden width, rounded to a multiple of 8, in eight
// of them), a 1x1 conv to 576, global average pooling, a linear layer to 1024, hard swish, dropout 0.2 and
// a linear classifier. The stem and the first block at stride 1 rather than ImageNet's 2, as CIFAR variants
// do: an input of 32 reaches the last blocks at 4x4. Batch norms at kiln's defaults (the paper's
// implementation uses eps 0.001 and momentum 0.01).
layers::ModulePtr build_mobilenet_v3_small(const ArchitectureSpec& spec, Generator& generator);
// MobileNetV3-Large (table 1) alike: 15 blocks (ReLU in the first six, a squeeze-and-excitation in seven), a
// 1x1 conv to 960 and a classifier through 1280 features; the stem and the second block at stride 1.
layers::ModulePtr build_mobilenet_v3_large(const ArchitectureSpec& spec, Generator& generator);

}  // namespace kiln::models
