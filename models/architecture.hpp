// ArchitectureSpec: the small value that names a network and the data shape it was built for. A
// checkpoint stores it, so `kiln eval` and `kiln predict` rebuild exactly the network that was trained.
//
//   {"name": "resnet20", "in_channels": 3, "height": 32, "width": 32, "classes": 10}
//
// A network described in a model file (models/model_file.hpp) carries its layer lines too, and is built
// from them rather than by name:
//
//   {"name": "small", ..., "layers": ["conv 32 3 padding=same", "batchnorm", "relu", ..., "linear"]}
#pragma once

#include <cstdint>
#include <nlohmann/json_fwd.hpp>  // declarations only; the full json.hpp costs each includer ~2 s
#include <string>
#include <vector>

#include "core/generator.hpp"
#include "layers/module.hpp"

namespace kiln::models {

struct ArchitectureSpec {
  std::string name;
  std::int64_t in_channels = 3;
  std::int64_t height = 32;
  std::int64_t width = 32;
  std::int64_t classes = 10;
  std::vector<std::string> layers = {};  // a model file's layer lines; empty for a network of the zoo

  nlohmann::json to_json() const;
  static ArchitectureSpec from_json(const nlohmann::json& json);  // errors name the missing field
  friend bool operator==(const ArchitectureSpec&, const ArchitectureSpec&) = default;
};

// Throws unless spec's input and classes make a network: an input channel, a positive size, two classes.
// build_model checks it; so does build_named_model before a model file's layers.
void check_model_input(const ArchitectureSpec& spec);

// Builds the network (spec.layers' when it has them, else the zoo's of that name) with weights drawn from
// `generator`. Throws naming the unknown model and listing the known ones, or naming the input size a model
// cannot take.
layers::ModulePtr build_model(const ArchitectureSpec& spec, Generator& generator);

// The names build_model knows, in the order `kiln train --help` lists them.
std::vector<std::string> model_names();

}  // namespace kiln::models
