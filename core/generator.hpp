// Generator: kiln's one source of randomness, a counter-based Philox stream (seed, stream, offset).
//
// Each draw takes a PhiloxState snapshot and advances the offset by the blocks the draw consumes, so the
// numbers of a draw depend only on (seed, stream, offset): the same on CPU and GPU, at any thread count,
// and a run resumed from a saved offset continues exactly.
#pragma once

#include <cstdint>

#include "kernels/random/philox.hpp"

namespace kiln {

class Generator {
 public:
  explicit Generator(std::uint64_t seed = 0, std::uint64_t stream = 0) : seed_(seed), stream_(stream) {}

  // The state a draw of `count` elements starts from; advances past it.
  kernels::PhiloxState take(std::uint64_t count);

  std::uint64_t seed() const { return seed_; }
  std::uint64_t stream() const { return stream_; }
  std::uint64_t offset() const { return offset_; }
  void set_offset(std::uint64_t offset) { offset_ = offset; }

 private:
  std::uint64_t seed_;
  std::uint64_t stream_;
  std::uint64_t offset_ = 0;  // in Philox blocks of four 32-bit words
};

// The generator that creation functions and dropout use when none is passed. Reseed it with
// manual_seed() for a reproducible run.
Generator& default_generator();
void manual_seed(std::uint64_t seed);

}  // namespace kiln
