// A 64-bit fingerprint of a file's bytes, for finding identical files (duplicates within a split, the same
// image in train and test). Not cryptographic: it only has to make an accidental match between two
// different files vanishingly rare, and be fast.
//
// FNV-1a, 64-bit (Fowler, Noll and Vo): start from the offset basis 0xcbf29ce484222325 and, for each
// byte, XOR it into the state and multiply by the FNV prime 0x100000001b3 (mod 2^64). Check values:
// fnv1a64("") == 0xcbf29ce484222325, fnv1a64("a") == 0xaf63dc4c8601ec8c.
#pragma once

#include <cstdint>
#include <span>

namespace kiln::data {

inline constexpr std::uint64_t kFnv1a64OffsetBasis = 0xcbf29ce484222325ull;
inline constexpr std::uint64_t kFnv1a64Prime = 0x100000001b3ull;

constexpr std::uint64_t fnv1a64(std::span<const std::uint8_t> bytes) {
  std::uint64_t state = kFnv1a64OffsetBasis;
  for (const std::uint8_t byte : bytes) {
    state ^= byte;
    state *= kFnv1a64Prime;
  }
  return state;
}

}  // namespace kiln::data
