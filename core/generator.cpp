#include "core/generator.hpp"

namespace kiln {

kernels::PhiloxState Generator::take(std::uint64_t count) {
  const kernels::PhiloxState state{seed_, stream_, offset_};
  offset_ += kernels::philox_blocks_for(count);
  return state;
}

Generator& default_generator() {
  static Generator generator{0};
  return generator;
}

void manual_seed(std::uint64_t seed) { default_generator() = Generator{seed}; }

}  // namespace kiln
