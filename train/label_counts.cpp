#include "train/label_counts.hpp"

#include "core/error.hpp"

namespace kiln::train {

std::vector<std::int64_t> label_counts(const data::ImageFolder& folder) {
  KILN_CHECK(folder.multi_label(), folder.root().string(), ": label counts need a multi-label data set");
  std::vector<std::int64_t> counts(folder.classes().size(), 0);
  for (const data::Sample& sample : folder.samples()) {
    for (const std::int64_t label : sample.labels) ++counts[static_cast<std::size_t>(label)];
  }
  return counts;
}

std::vector<double> auto_pos_weights(const std::vector<std::int64_t>& counts, std::int64_t samples) {
  std::vector<double> weights;
  for (const std::int64_t positives : counts) {
    KILN_CHECK(positives >= 0 && positives <= samples, "pos weights: ", positives, " positives of ", samples,
               " samples");
    weights.push_back(
        positives == 0 ? 1.0 : static_cast<double>(samples - positives) / static_cast<double>(positives));
  }
  return weights;
}

}  // namespace kiln::train
