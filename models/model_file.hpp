// A network described in a text file, one layer per line: what `kiln train DATA --model FILE` trains when
// no network of the zoo fits, with no C++ to write (Darknet's .cfg files, in a smaller form).
//
//   # a small VGG-style net for 32x32 images
//   conv 32 3 padding=same bias=false
//   batchnorm
//   relu
//   maxpool 2
//   residual 64 stride=2
//   separable 128 stride=2
//   global_avg_pool
//   dropout 0.2
//   linear                  # no width: one output per class
//
// A line is a layer's kind, its positional arguments, then key=value options (any line takes repeat=N: N
// layers alike, one after another, "residual 64 repeat=8"); `#` starts a comment. The input channels of
// every layer come from the layer before it (a dry run of one zero image through the layers built so far),
// so a file names only what a layer makes. The network must end in [N, classes]: a `linear` with no width,
// or a convolution to as many channels as classes and a `global_avg_pool`.
// model_layer_kinds() lists the kinds with their arguments (the README's "Your own network" too).
//
// The checkpoint stores the layer lines (ArchitectureSpec::layers, comments and blank lines dropped), so
// eval, predict, export, quantize, explain, --init and --resume rebuild the network without the file.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "core/generator.hpp"
#include "layers/module.hpp"
#include "models/architecture.hpp"

namespace kiln::models {

// The layer lines of the model file at `path`: comments and blank lines dropped, whitespace collapsed,
// each line's kind, arguments and options checked. Errors name the file and the line:
//   "model file nets/small.txt, line 7 'conv 32': conv takes 2 arguments, not 1 (the form is conv OUT KERNEL
//    [stride=1] [padding=0|same] [dilation=1] [groups=1] [bias=true])"
std::vector<std::string> read_model_file(const std::filesystem::path& path);

// The network `--model` names, built with weights drawn from `generator`: a network of the zoo, or else
// the model file at that path (named by the file's stem, its layers read; a layer that cannot take its
// input is named by its line in the file). Throws naming both when it is neither.
struct NamedModel {
  ArchitectureSpec architecture;
  layers::ModulePtr model;
};
NamedModel build_named_model(const std::string& model, std::int64_t in_channels, std::int64_t height,
                             std::int64_t width, std::int64_t classes, Generator& generator);

// Builds spec.layers as a Sequential of top-level layers named by kind and count ("conv1", "batchnorm1",
// "relu1", "conv2", ..., "relu6_1" where the kind ends in a digit), weights drawn from `generator` in order:
// how build_model rebuilds a checkpoint's network. Errors name the layer and its place in the list:
//   "model small, layer 9 'linear 64': takes [N, features], but its input is [N, 64, 8, 8] (put flatten
//    or global_avg_pool before it)"
layers::ModulePtr build_described_model(const ArchitectureSpec& spec, Generator& generator);

// How many layers a layer line builds: its repeat=N, else 1.
std::int64_t layers_of_line(const std::string& line);

// One line per kind: "conv OUT KERNEL [stride=1] [padding=0|same] ..." and what it builds.
std::vector<std::string> model_layer_kinds();

}  // namespace kiln::models
