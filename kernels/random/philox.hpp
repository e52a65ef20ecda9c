// Philox4x32-10: the counter-based random number generator of Salmon et al., "Parallel random numbers:
// as easy as 1, 2, 3" (SC 2011).
//
// A counter-based generator is a pure function (key, counter) -> 4 random 32-bit words. Any element of
// any draw can be computed independently, so a CPU loop, an OpenMP thread or a CUDA thread that asks for
// element i of a draw gets the same number, and a resumed run continues exactly where it stopped.
//
// kiln maps its generator state onto Philox like this:
//   key     = seed (64 bits, split into two 32-bit words)
//   counter = {block lo, block hi, stream lo, stream hi}
// where `block` = the generator's offset + i / 4 for element i of a draw, and element i takes lane i % 4.
#pragma once

#include <array>
#include <cmath>
#include <cstdint>

#if defined(__CUDACC__)
#define KILN_HOST_DEVICE __host__ __device__
#else
#define KILN_HOST_DEVICE
#endif

namespace kiln::kernels {

// Where a draw begins: a seed picks the sequence, a stream picks an independent substream, and
// `offset` counts 4-word blocks already consumed.
struct PhiloxState {
  std::uint64_t seed = 0;
  std::uint64_t stream = 0;
  std::uint64_t offset = 0;
};

using PhiloxBlock = std::array<std::uint32_t, 4>;

KILN_HOST_DEVICE inline PhiloxBlock philox4x32_10(PhiloxBlock counter, std::array<std::uint32_t, 2> key) {
  constexpr std::uint32_t kMul0 = 0xD2511F53u, kMul1 = 0xCD9E8D57u;
  constexpr std::uint32_t kWeyl0 = 0x9E3779B9u, kWeyl1 = 0xBB67AE85u;
  for (int round = 0; round < 10; ++round) {
    const std::uint64_t product0 = std::uint64_t{kMul0} * counter[0];
    const std::uint64_t product1 = std::uint64_t{kMul1} * counter[2];
    const auto hi0 = static_cast<std::uint32_t>(product0 >> 32), lo0 = static_cast<std::uint32_t>(product0);
    const auto hi1 = static_cast<std::uint32_t>(product1 >> 32), lo1 = static_cast<std::uint32_t>(product1);
    counter = {hi1 ^ counter[1] ^ key[0], lo1, hi0 ^ counter[3] ^ key[1], lo0};
    key[0] += kWeyl0;
    key[1] += kWeyl1;
  }
  return counter;
}

// The four random words of block `block` (relative to state.offset).
KILN_HOST_DEVICE inline PhiloxBlock philox_block(const PhiloxState& state, std::uint64_t block) {
  const std::uint64_t position = state.offset + block;
  return philox4x32_10({static_cast<std::uint32_t>(position), static_cast<std::uint32_t>(position >> 32),
                        static_cast<std::uint32_t>(state.stream),
                        static_cast<std::uint32_t>(state.stream >> 32)},
                       {static_cast<std::uint32_t>(state.seed), static_cast<std::uint32_t>(state.seed >> 32)});
}

// A 32-bit word to a uniform number strictly inside (0, 1): never 0, so log(u) is finite, never 1, so
// log(1 - u) is. float keeps the top 23 bits: (k + 0.5) * 2^-23 needs 24 significant bits, exactly a
// float's, so nothing rounds and the largest value is 1 - 2^-24. double keeps all 32 bits. The two agree
// to within 2^-24.
KILN_HOST_DEVICE inline float uniform_open01_float(std::uint32_t word) {
  return (static_cast<float>(word >> 9) + 0.5f) * (1.0f / 8388608.0f);
}
KILN_HOST_DEVICE inline double uniform_open01_double(std::uint32_t word) {
  return (static_cast<double>(word) + 0.5) * (1.0 / 4294967296.0);
}
template <typename T> KILN_HOST_DEVICE inline T uniform_open01(std::uint32_t word) {
  if constexpr (sizeof(T) == sizeof(float)) {
    return uniform_open01_float(word);
  } else {
    return static_cast<T>(uniform_open01_double(word));
  }
}

// Element i of a uniform draw in (0, 1).
template <typename T> KILN_HOST_DEVICE inline T philox_uniform(const PhiloxState& state, std::uint64_t i) {
  return uniform_open01<T>(philox_block(state, i / 4)[i % 4]);
}

// Element i of a standard normal draw. Lanes (0,1) and (2,3) of a block form Box-Muller pairs: the even
// lane takes the cosine, the odd lane the sine, so a block yields four independent normals.
template <typename T> KILN_HOST_DEVICE inline T philox_normal(const PhiloxState& state, std::uint64_t i) {
  const PhiloxBlock words = philox_block(state, i / 4);
  const unsigned pair = static_cast<unsigned>(i % 4) & ~1u;
  const double u1 = uniform_open01_double(words[pair]);
  const double u2 = uniform_open01_double(words[pair + 1]);
  const double radius = std::sqrt(-2.0 * std::log(u1));
  const double angle = 6.283185307179586 * u2;
  return static_cast<T>(i % 2 == 0 ? radius * std::cos(angle) : radius * std::sin(angle));
}

// Blocks a draw of `count` elements consumes; the generator advances its offset by this much.
constexpr std::uint64_t philox_blocks_for(std::uint64_t count) { return (count + 3) / 4; }

}  // namespace kiln::kernels
