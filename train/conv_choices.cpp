#include "train/conv_choices.hpp"

#include <cstdint>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "core/error.hpp"
#include "kernels/conv2d/algorithm.hpp"
#include "kernels/conv2d/cuda_tuning.hpp"
#include "train/atomic_file.hpp"

namespace kiln::train {
namespace {

// The geometry's fields as a choices file names them, written and read through this one list.
constexpr std::pair<const char*, std::int64_t kernels::Conv2dGeometry::*> kGeometryFields[] = {
    {"batch", &kernels::Conv2dGeometry::batch},
    {"in_channels", &kernels::Conv2dGeometry::in_channels},
    {"in_height", &kernels::Conv2dGeometry::in_height},
    {"in_width", &kernels::Conv2dGeometry::in_width},
    {"out_channels", &kernels::Conv2dGeometry::out_channels},
    {"kernel_h", &kernels::Conv2dGeometry::kernel_h},
    {"kernel_w", &kernels::Conv2dGeometry::kernel_w},
    {"stride_h", &kernels::Conv2dGeometry::stride_h},
    {"stride_w", &kernels::Conv2dGeometry::stride_w},
    {"pad_h", &kernels::Conv2dGeometry::pad_h},
    {"pad_w", &kernels::Conv2dGeometry::pad_w},
    {"dilation_h", &kernels::Conv2dGeometry::dilation_h},
    {"dilation_w", &kernels::Conv2dGeometry::dilation_w},
    {"groups", &kernels::Conv2dGeometry::groups}};

// The activations' layout is part of a shape (a channels-last call runs other candidates' code): written
// as "channels_last" where it is set; a file without it (older runs, NCHW) reads as NCHW.
nlohmann::json geometry_json(const kernels::Conv2dGeometry& g) {
  nlohmann::json json = nlohmann::json::object();
  for (const auto& [name, field] : kGeometryFields) json[name] = g.*field;
  if (g.channels_last) json["channels_last"] = true;
  return json;
}

kernels::Conv2dGeometry geometry_from(const nlohmann::json& json) {
  kernels::Conv2dGeometry g;
  for (const auto& [name, field] : kGeometryFields) g.*field = json.at(name).get<std::int64_t>();
  g.channels_last = json.value("channels_last", false);
  return g;
}

kernels::Conv2dDirection direction_from(const std::string& name) {
  using kernels::Conv2dDirection;
  for (const Conv2dDirection direction :
       {Conv2dDirection::Forward, Conv2dDirection::BackwardData, Conv2dDirection::BackwardWeight}) {
    if (name == kernels::conv2d_direction_name(direction)) return direction;
  }
  fail("direction '", name, "': expected forward, backward_data or backward_weight");
}

// One entry of a choices file as a choice for `device`; throws a kiln::Error (a json error for a missing or
// mistyped field) saying what is wrong with it.
kernels::cuda::ConvChoice choice_from(const nlohmann::json& entry, int device) {
  kernels::cuda::ConvChoice choice;
  choice.geometry = geometry_from(entry.at("geometry"));
  choice.direction = direction_from(entry.at("direction").get<std::string>());
  choice.element_type = entry.at("element_type").get<std::string>();
  KILN_CHECK(
      choice.element_type == "float" || choice.element_type == "bfloat16" || choice.element_type == "double",
      "element type '", choice.element_type, "': expected float, bfloat16 or double");
  choice.device = device;
  choice.chosen = entry.at("chosen").get<std::string>();
  choice.step = kernels::cuda::conv_candidate_named(choice.chosen, choice.direction, choice.element_type,
                                                    choice.geometry);
  for (const nlohmann::json& trial : entry.value("trials", nlohmann::json::array())) {
    choice.trials.push_back({trial.at("candidate").get<std::string>(), trial.value("milliseconds", 0.0),
                             trial.value("rejected", std::string())});
  }
  return choice;
}

}  // namespace

nlohmann::json conv_choices_json() {
  nlohmann::json choices = nlohmann::json::array();
  for (const kernels::cuda::ConvChoice& choice : kernels::cuda::conv_choices()) {
    nlohmann::json trials = nlohmann::json::array();
    for (const kernels::cuda::ConvTrial& trial : choice.trials) {
      nlohmann::json line{{"candidate", trial.candidate}};
      if (trial.rejected.empty()) {
        line["milliseconds"] = trial.median_milliseconds;
      } else {
        line["rejected"] = trial.rejected;
      }
      trials.push_back(std::move(line));
    }
    choices.push_back({{"direction", std::string(kernels::conv2d_direction_name(choice.direction))},
                       {"element_type", choice.element_type},
                       {"device", choice.device},
                       {"geometry", geometry_json(choice.geometry)},
                       {"chosen", choice.chosen},
                       {"trials", std::move(trials)}});
  }
  return choices;
}

std::size_t replay_conv_choices(const std::filesystem::path& file, int device) {
  std::ifstream in(file, std::ios::binary);
  KILN_CHECK(in.good(), "--cuda-conv ", file.string(), ": cannot open the file");
  nlohmann::json entries;
  try {
    entries = nlohmann::json::parse(in);
  } catch (const nlohmann::json::exception& error) {
    fail("--cuda-conv ", file.string(), ": not a choices file (", kConvChoicesFile,
         " from a run folder): ", error.what());
  }
  KILN_CHECK(entries.is_array(), "--cuda-conv ", file.string(), ": not a choices file (", kConvChoicesFile,
             " from a run folder): expected a JSON array of choices");
  std::vector<kernels::cuda::ConvChoice> choices;
  for (std::size_t i = 0; i < entries.size(); ++i) {
    try {
      choices.push_back(choice_from(entries[i], device));
    } catch (const nlohmann::json::exception& error) {
      fail("--cuda-conv ", file.string(), ": choice ", i + 1, " of ", entries.size(), ": ", error.what());
    } catch (const Error& error) {
      fail("--cuda-conv ", file.string(), ": choice ", i + 1, " of ", entries.size(), ": ", error.what(),
           "; measure afresh with --cuda-conv measured");
    }
  }
  // Every entry was checked before any is recorded: a bad file changes nothing.
  for (kernels::cuda::ConvChoice& choice : choices) kernels::cuda::record_conv_choice(std::move(choice));
  return choices.size();
}

void write_conv_choices(const std::filesystem::path& run_dir) {
  write_file_atomically(run_dir / kConvChoicesFile, conv_choices_json().dump(2) + "\n", "file");
}

}  // namespace kiln::train
