#include "train/checksum.hpp"

#include <array>

namespace kiln::train {
namespace {

// CRC-32 is the remainder of the message, as a polynomial over GF(2), divided by the generator
// polynomial. In the reflected form the lowest bit is the first bit on the wire, so the register shifts
// right and, whenever a 1 falls out, the (reflected) generator 0xEDB88320 is subtracted, which in GF(2) is
// XOR.
constexpr std::uint32_t kReflectedPolynomial = 0xEDB88320u;

// table[b] is the register after feeding the byte b through eight single-bit steps from a zero register.
// Since the steps are linear, one table lookup then does the work of eight steps for any register.
constexpr std::array<std::uint32_t, 256> make_table() {
  std::array<std::uint32_t, 256> table{};
  for (std::uint32_t byte = 0; byte < 256; ++byte) {
    std::uint32_t remainder = byte;
    for (int bit = 0; bit < 8; ++bit) {
      const bool low_bit_set = (remainder & 1u) != 0;
      remainder >>= 1;
      if (low_bit_set) remainder ^= kReflectedPolynomial;
    }
    table[byte] = remainder;
  }
  return table;
}

constexpr std::array<std::uint32_t, 256> kTable = make_table();

}  // namespace

std::uint32_t crc32(std::span<const std::uint8_t> bytes) {
  std::uint32_t crc = 0xFFFFFFFFu;  // the preset makes leading zero bytes count
  for (const std::uint8_t byte : bytes) crc = kTable[(crc ^ byte) & 0xFFu] ^ (crc >> 8);
  return crc ^ 0xFFFFFFFFu;
}

}  // namespace kiln::train
