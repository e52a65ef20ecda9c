// CRC-32: the checksum a checkpoint stores for each tensor, so a flipped bit on disk is caught at load
// time instead of silently changing a weight.
//
// This is the common CRC-32 of zlib, PNG and Ethernet (ISO-HDLC): the reflected polynomial 0xEDB88320,
// register preset to 0xFFFFFFFF, final value inverted. Its check value is crc32("123456789") ==
// 0xCBF43926, so files kiln writes can be verified with any standard tool.
#pragma once

#include <cstdint>
#include <span>

namespace kiln::train {

std::uint32_t crc32(std::span<const std::uint8_t> bytes);

}  // namespace kiln::train
