#include "train/model_io.hpp"

#include <algorithm>
#include <memory>

#include "quant/quantized_module.hpp"
#include "train/checkpoint.hpp"
#include "train/weight_average.hpp"

namespace kiln::train {

bool LoadedModel::int8() const {
  return header.is_object() && header.value("kind", "") == quant::kQuantizedModelKind;
}

std::vector<NamedTensor> model_state(const layers::Module& model) {
  std::vector<NamedTensor> state;
  for (const auto& [name, tensor] : model.named_parameters()) state.emplace_back(kModelTensorPrefix + name, tensor);
  for (const auto& [name, tensor] : model.named_buffers()) state.emplace_back(kModelTensorPrefix + name, tensor);
  return state;
}

void check_same_classes(const LoadedModel& model, const data::ImageFolder& folder) {
  const std::vector<std::string>& trained = model.classes;
  const std::vector<std::string>& found = folder.classes();
  for (std::size_t i = 0; i < std::max(trained.size(), found.size()); ++i) {
    const std::string expected = i < trained.size() ? trained[i] : "(none)";
    const std::string actual = i < found.size() ? found[i] : "(none)";
    KILN_CHECK(expected == actual, "classes of ", folder.root().string(),
               " differ from the checkpoint's: class ", i, " is '", actual,
               "' but the model was trained with '", expected, "'");
  }
}

std::vector<NamedTensor> served_weights(const Checkpoint& checkpoint) {
  const bool averaged = checkpoint.header.is_object() && checkpoint.header.contains("ema");
  const std::string prefix = averaged ? kAverageTensorPrefix : "";
  std::vector<NamedTensor> weights;
  for (const auto& [name, tensor] : checkpoint.tensors) {
    if (name.starts_with(prefix + kModelTensorPrefix))
      weights.emplace_back(name.substr(prefix.size()), tensor);
  }
  return weights;
}

LoadedModel load_model(const std::filesystem::path& path) {
  Checkpoint checkpoint = load_checkpoint(path);
  const nlohmann::json& header = checkpoint.header;
  // An int8 model (quant/quantized_model.hpp) carries the same architecture, classes and preprocessing;
  // its weights run through the int8 kernels behind the same Module interface.
  const bool int8 = header.is_object() && header.value("kind", "") == quant::kQuantizedModelKind;
  if (!int8) {
    check_header_field(header, "kind", kCheckpointKind, path);
    check_header_field(header, "schema", kCheckpointSchema, path);
  }
  LoadedModel loaded;
  try {
    loaded.architecture = models::ArchitectureSpec::from_json(header.at("architecture"));
    loaded.classes = header.at("classes").get<std::vector<std::string>>();
    loaded.preprocessing = data::Preprocessing::from_json(header.at("preprocessing"));
    loaded.task = header.value("task", std::string(kSingleLabelTask));
  } catch (const nlohmann::json::exception& error) {
    fail("checkpoint ", path.string(), ": malformed header (", error.what(), ")");
  } catch (const Error& error) {
    fail("checkpoint ", path.string(), ": ", error.what());
  }
  KILN_CHECK(static_cast<std::int64_t>(loaded.classes.size()) == loaded.architecture.classes, "checkpoint ",
             path.string(), ": ", loaded.classes.size(), " class names for a model with ", loaded.architecture.classes,
             " outputs");
  KILN_CHECK(loaded.task == kSingleLabelTask || loaded.task == kMultiLabelTask, "checkpoint ", path.string(),
             ": unknown task '", loaded.task, "' (known: ", kSingleLabelTask, ", ", kMultiLabelTask, ")");
  if (loaded.multi_label()) {
    KILN_CHECK(header.contains("thresholds"), "checkpoint ", path.string(),
               ": a multi-label checkpoint without thresholds");
    loaded.thresholds = ThresholdChoice::from_json(header.at("thresholds"), loaded.classes.size(),
                                                   "checkpoint " + path.string());
  }
  loaded.header = header;
  if (int8) {
    auto model = std::make_shared<quant::QuantizedModule>(quant::QuantizedModel::from_checkpoint(checkpoint, path));
    KILN_CHECK(model->model().classes() == loaded.architecture.classes, "int8 model ", path.string(), ": ",
               model->model().classes(), " outputs for ", loaded.architecture.classes, " classes");
    loaded.model = std::move(model);
    return loaded;
  }
  Generator unused_initialization(0);  // the stored weights replace whatever this draws
  loaded.model = models::build_model(loaded.architecture, unused_initialization);
  load_into(model_state(*loaded.model), Checkpoint{header, served_weights(checkpoint)}, path);
  loaded.model->eval();
  return loaded;
}

}  // namespace kiln::train
