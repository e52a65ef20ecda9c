// ProtobufWriter: the protocol-buffer wire format, just enough of it to write a message (an ONNX model)
// without a protobuf library.
//
// A message is a sequence of fields; each field is a key, then its value. The key is the varint
// (field_number << 3 | wire_type); the wire types used here:
//
//   0  varint            an integer in 7-bit groups, least significant first, the high bit set on every
//                        byte but the last (300 -> AC 02). A negative int64 takes 10 bytes (two's
//                        complement as a uint64), as protobuf's int64 does.
//   2  length-delimited  a varint byte count, then the bytes: strings, bytes, nested messages, and
//                        "packed" repeated scalars (all the values back to back under one key).
//   5  32-bit            four little-endian bytes: a float.
//
// Fields may come in any order and a reader skips the ones it does not know. A nested message is written
// into its own ProtobufWriter first, then appended whole with `message`, so a writer never needs to know
// a length before it has written the bytes.
#pragma once

#include <cstdint>
#include <span>
#include <string_view>
#include <utility>
#include <vector>

namespace kiln::onnx {

enum class WireType : std::uint8_t { Varint = 0, LengthDelimited = 2, Fixed32 = 5 };

class ProtobufWriter {
 public:
  void varint_field(int field, std::uint64_t value);
  void int64_field(int field, std::int64_t value) { varint_field(field, static_cast<std::uint64_t>(value)); }
  void float_field(int field, float value);
  void bytes_field(int field, std::span<const std::uint8_t> bytes);
  void string_field(int field, std::string_view text);
  void message_field(int field, const ProtobufWriter& message) { bytes_field(field, message.bytes()); }
  // Packed repeated scalars: one key, the byte count, then every value (varints, or 4-byte floats).
  void packed_int64_field(int field, std::span<const std::int64_t> values);
  void packed_float_field(int field, std::span<const float> values);

  const std::vector<std::uint8_t>& bytes() const { return bytes_; }
  std::vector<std::uint8_t> release() { return std::move(bytes_); }

 private:
  void key(int field, WireType type);
  void raw_varint(std::uint64_t value);
  void raw_float(float value);

  std::vector<std::uint8_t> bytes_;
};

}  // namespace kiln::onnx
