#include "cli/tta_option.hpp"

#include <cstdio>

namespace kiln::cli {

void add_tta_flag(CLI::App* command, bool& tta) {
  command->add_flag("--tta", tta,
                    "test-time augmentation: average each prediction over the flips and quarter turns the model "
                    "trained with");
}

std::optional<std::vector<train::TtaView>> tta_option_views(bool tta, const train::LoadedModel& loaded) {
  if (!tta) return std::nullopt;
  std::vector<train::TtaView> views = train::tta_views(train::trained_augmentation(loaded.header));
  if (views.size() == 1) {
    std::fprintf(stderr,
                 "kiln: note: --tta: the model trained with no flips or quarter turns, so there is one view, the "
                 "image as it is\n");
  } else {
    std::fprintf(stderr, "kiln: --tta: each prediction averaged over %zu views of the image\n", views.size());
  }
  return views;
}

}  // namespace kiln::cli
