#include "train/conv_choices.hpp"

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>

#include "kernels/conv2d/algorithm.hpp"
#include "kernels/conv2d/cuda_tuning.hpp"
#include "train/atomic_file.hpp"

namespace kiln::train {
namespace {

nlohmann::json geometry_json(const kernels::Conv2dGeometry& g) {
  return {{"batch", g.batch},
          {"in_channels", g.in_channels},
          {"in_height", g.in_height},
          {"in_width", g.in_width},
          {"out_channels", g.out_channels},
          {"kernel_h", g.kernel_h},
          {"kernel_w", g.kernel_w},
          {"stride_h", g.stride_h},
          {"stride_w", g.stride_w},
          {"pad_h", g.pad_h},
          {"pad_w", g.pad_w},
          {"dilation_h", g.dilation_h},
          {"dilation_w", g.dilation_w},
          {"groups", g.groups}};
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

void write_conv_choices(const std::filesystem::path& run_dir) {
  const std::string text = conv_choices_json().dump(2) + "\n";
  const auto* bytes = reinterpret_cast<const std::uint8_t*>(text.data());
  write_file_atomically(run_dir / kConvChoicesFile, {bytes, text.size()}, "file");
}

}  // namespace kiln::train
