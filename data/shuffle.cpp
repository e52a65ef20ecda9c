#include "data/shuffle.hpp"

#include <algorithm>
#include <numeric>
#include <utility>

namespace kiln::data {

std::vector<std::size_t> seeded_permutation(std::size_t count, const kernels::PhiloxState& state) {
  std::vector<std::size_t> order(count);
  std::iota(order.begin(), order.end(), std::size_t{0});
  for (std::size_t i = count; i-- > 1;) {
    // A 32-bit uniform in (0, 1) scaled to [0, i]; the bias for i far below 2^32 is negligible.
    const double u = kernels::philox_uniform<double>(state, i);
    const auto j = std::min(i, static_cast<std::size_t>(u * static_cast<double>(i + 1)));
    std::swap(order[i], order[j]);
  }
  return order;
}

}  // namespace kiln::data
