#include "models/architecture.hpp"

#include <functional>
#include <map>
#include <nlohmann/json.hpp>

#include "models/model_file.hpp"
#include "models/zoo.hpp"

namespace kiln::models {
namespace {

using Builder = std::function<layers::ModulePtr(const ArchitectureSpec&, Generator&)>;

const std::vector<std::pair<std::string, Builder>>& builders() {
  static const std::vector<std::pair<std::string, Builder>> table = [] {
    std::vector<std::pair<std::string, Builder>> entries{
        {"lenet5", build_lenet5},
        {"vgg_small", build_vgg},
        {"vgg11", build_vgg},
        {"mobilenet", build_mobilenet},
        {"mobilenet_v2", build_mobilenet_v2},
        {"mobilenet_v3_small", build_mobilenet_v3_small},
        {"mobilenet_v3_large", build_mobilenet_v3_large},
        {"resnet18", build_resnet18},
    };
    for (std::int64_t depth : {20, 32, 44, 56, 110}) {
      entries.emplace_back("resnet" + std::to_string(depth), [depth](const ArchitectureSpec& spec, Generator& g) {
        return build_resnet(spec, depth, g);
      });
    }
    return entries;
  }();
  return table;
}

template <typename T> T required(const nlohmann::json& json, const char* field) {
  KILN_CHECK(json.is_object() && json.contains(field), "architecture: missing field '", field, "'");
  try {
    return json.at(field).get<T>();
  } catch (const nlohmann::json::exception&) {
    fail("architecture: field '", field, "' has the wrong type: ", json.at(field).dump());
  }
}

}  // namespace

nlohmann::json ArchitectureSpec::to_json() const {
  nlohmann::json json = {{"name", name},
                         {"in_channels", in_channels},
                         {"height", height},
                         {"width", width},
                         {"classes", classes}};
  if (!layers.empty()) json["layers"] = layers;
  return json;
}

ArchitectureSpec ArchitectureSpec::from_json(const nlohmann::json& json) {
  ArchitectureSpec spec{required<std::string>(json, "name"), required<std::int64_t>(json, "in_channels"),
                        required<std::int64_t>(json, "height"), required<std::int64_t>(json, "width"),
                        required<std::int64_t>(json, "classes")};
  if (json.contains("layers")) spec.layers = required<std::vector<std::string>>(json, "layers");
  return spec;
}

void check_model_input(const ArchitectureSpec& spec) {
  KILN_CHECK(spec.in_channels >= 1 && spec.height >= 1 && spec.width >= 1 && spec.classes >= 2, "model ", spec.name,
             ": needs at least one input channel, a positive image size and two classes (got ", spec.in_channels,
             "x", spec.height, "x", spec.width, ", ", spec.classes, " classes)");
}

layers::ModulePtr build_model(const ArchitectureSpec& spec, Generator& generator) {
  check_model_input(spec);
  if (!spec.layers.empty()) return build_described_model(spec, generator);
  for (const auto& [name, builder] : builders()) {
    if (name == spec.name) return builder(spec, generator);
  }
  std::string known;
  for (const std::string& name : model_names()) known += (known.empty() ? "" : ", ") + name;
  fail("unknown model '", spec.name, "' (known: ", known, ")");
}

std::vector<std::string> model_names() {
  std::vector<std::string> names;
  for (const auto& entry : builders()) names.push_back(entry.first);
  return names;
}

}  // namespace kiln::models
