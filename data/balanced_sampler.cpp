#include "data/balanced_sampler.hpp"

#include <algorithm>

#include "core/error.hpp"

namespace kiln::data {

std::vector<std::size_t> balanced_draws(const std::vector<std::int64_t>& labels, std::size_t count,
                                        const kernels::PhiloxState& state) {
  std::vector<std::size_t> draws;
  if (count == 0) return draws;
  KILN_CHECK(!labels.empty(), "balanced sampler: no samples to draw from");

  // members[c] lists class c's sample indices; only the classes that have samples take part.
  std::vector<std::vector<std::size_t>> members;
  for (std::size_t i = 0; i < labels.size(); ++i) {
    KILN_CHECK(labels[i] >= 0, "balanced sampler: sample ", i, " has the negative label ", labels[i]);
    const auto label = static_cast<std::size_t>(labels[i]);
    if (label >= members.size()) members.resize(label + 1);
    members[label].push_back(i);
  }
  std::erase_if(members, [](const std::vector<std::size_t>& samples) { return samples.empty(); });

  // A uniform u in (0, 1) scaled to an index in [0, size); the min guards the rounding at the top end.
  const auto pick = [](double u, std::size_t size) {
    return std::min(size - 1, static_cast<std::size_t>(u * static_cast<double>(size)));
  };
  draws.reserve(count);
  for (std::size_t d = 0; d < count; ++d) {
    const std::vector<std::size_t>& chosen_class =
        members[pick(kernels::philox_uniform<double>(state, 2 * d), members.size())];
    draws.push_back(
        chosen_class[pick(kernels::philox_uniform<double>(state, 2 * d + 1), chosen_class.size())]);
  }
  return draws;
}

}  // namespace kiln::data
