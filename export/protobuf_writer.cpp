#include "export/protobuf_writer.hpp"

#include <bit>
#include <cstring>

namespace kiln::onnx {

void ProtobufWriter::raw_varint(std::uint64_t value) {
  while (value >= 0x80) {
    bytes_.push_back(static_cast<std::uint8_t>(value | 0x80));  // low 7 bits, "more follows"
    value >>= 7;
  }
  bytes_.push_back(static_cast<std::uint8_t>(value));
}

void ProtobufWriter::raw_float(float value) {
  static_assert(std::endian::native == std::endian::little, "the wire format is little-endian");
  std::uint8_t little_endian[sizeof(float)];
  std::memcpy(little_endian, &value, sizeof(float));
  bytes_.insert(bytes_.end(), little_endian, little_endian + sizeof(float));
}

void ProtobufWriter::key(int field, WireType type) {
  raw_varint(static_cast<std::uint64_t>(field) << 3 | static_cast<std::uint64_t>(type));
}

void ProtobufWriter::varint_field(int field, std::uint64_t value) {
  key(field, WireType::Varint);
  raw_varint(value);
}

void ProtobufWriter::float_field(int field, float value) {
  key(field, WireType::Fixed32);
  raw_float(value);
}

void ProtobufWriter::bytes_field(int field, std::span<const std::uint8_t> bytes) {
  key(field, WireType::LengthDelimited);
  raw_varint(bytes.size());
  bytes_.insert(bytes_.end(), bytes.begin(), bytes.end());
}

void ProtobufWriter::string_field(int field, std::string_view text) {
  bytes_field(field, {reinterpret_cast<const std::uint8_t*>(text.data()), text.size()});
}

void ProtobufWriter::packed_int64_field(int field, std::span<const std::int64_t> values) {
  ProtobufWriter payload;
  for (const std::int64_t value : values) payload.raw_varint(static_cast<std::uint64_t>(value));
  bytes_field(field, payload.bytes());
}

void ProtobufWriter::packed_float_field(int field, std::span<const float> values) {
  key(field, WireType::LengthDelimited);
  raw_varint(values.size() * sizeof(float));
  bytes_.reserve(bytes_.size() + values.size() * sizeof(float));
  for (const float value : values) raw_float(value);
}

}  // namespace kiln::onnx
