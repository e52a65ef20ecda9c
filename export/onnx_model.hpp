// A trained kiln classifier as an ONNX model (opset 17, IR version 8), for ONNX Runtime, OpenCV's dnn,
// TensorRT and the rest of the ONNX world.
//
//   input          float [batch, C, H, W]   NCHW, preprocessed exactly as kiln does (the doc_string says
//                                           how; the metadata entry "preprocessing" says it exactly)
//   logits         float [batch, classes]
//   probabilities  float [batch, classes]   softmax(logits), unless ExportOptions::probabilities is off;
//                                           for a multi-label model sigmoid(logits), with the metadata
//                                           entries "task" ("multi_label") and "thresholds" (per label)
//
// The module tree becomes ONNX nodes one layer at a time, in eval mode:
//
//   Conv2d               Conv (kernel_shape, strides, pads, dilations, group)
//   BatchNorm2d          BatchNormalization with the running statistics (inference form)
//   ReLU / LeakyReLU / Sigmoid / Tanh    Relu / LeakyRelu / Sigmoid / Tanh
//   GELU                 x * (1 + Erf(x / sqrt 2)) / 2 (opset 17 has no Gelu)
//   SiLU                 x * Sigmoid(x)
//   Hardsigmoid          HardSigmoid (alpha 1/6, beta 1/2: ONNX's default alpha is 0.2)
//   Hardswish            HardSwish
//   MaxPool2d, AvgPool2d MaxPool, AveragePool (with ceil_mode, count_include_pad)
//   GlobalAvgPool2d      GlobalAveragePool [N, C, 1, 1], then Flatten to [N, C]
//   Flatten              Flatten (axis 1)
//   Linear               Gemm with transB = 1 (kiln's weight is [out, in])
//   Dropout              nothing: the identity at inference
//   Sequential           its children in order
//   BasicBlock           Conv, BatchNormalization, Relu, Conv, BatchNormalization, the shortcut, Add, Relu
//   PadIdentityShortcut  Slice with steps (every stride-th row and column), then Pad with zero channels
//   DepthwiseSeparable   Conv (group = channels), BatchNormalization, Relu, Conv 1x1, BatchNormalization,
//   Relu
//   SqueezeExcitation    GlobalAveragePool, Conv 1x1, Relu, Conv 1x1, Sigmoid or HardSigmoid, Mul
//
// Weights and batch-norm statistics are initializers named as in the checkpoint ("model.conv1.weight");
// the few constants the graph needs are named after their layer ("model.stage2.0.shortcut.slice_steps").
// Any other module is an error that names it.
//
// Metadata (metadata_props): "architecture" (ArchitectureSpec JSON), "classes" (a JSON array of the class
// names, in output order), "preprocessing" (data::Preprocessing::to_json).
#pragma once

#include <string>

#include "data/preprocessing.hpp"
#include "export/onnx_proto.hpp"
#include "train/model_io.hpp"

namespace kiln::onnx {

struct ExportOptions {
  bool probabilities = true;  // add the "probabilities" output (Softmax over the logits)
};

// The checkpoint's model as an ONNX model; throws kiln::Error naming a module that has no ONNX form.
Model to_onnx(const train::LoadedModel& loaded, const ExportOptions& options = {});

// How to turn an image into the "input" tensor, in words, for the model's doc_string.
std::string describe_preprocessing(const data::Preprocessing& preprocessing);

}  // namespace kiln::onnx
