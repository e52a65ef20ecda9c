#include "export/onnx_proto.hpp"

#include "export/protobuf_writer.hpp"

namespace kiln::onnx {
namespace {

// AttributeProto.AttributeType
enum class AttributeType : std::uint64_t { Float = 1, Int = 2, String = 3, Ints = 7 };

// AttributeProto: name = 1, f = 2, i = 3, s = 4, ints = 8, type = 20.
ProtobufWriter encode(const Attribute& attribute) {
  ProtobufWriter out;
  out.string_field(1, attribute.name);
  AttributeType type{};
  if (const auto* integer = std::get_if<std::int64_t>(&attribute.value)) {
    out.int64_field(3, *integer);
    type = AttributeType::Int;
  } else if (const auto* real = std::get_if<float>(&attribute.value)) {
    out.float_field(2, *real);
    type = AttributeType::Float;
  } else if (const auto* text = std::get_if<std::string>(&attribute.value)) {
    out.string_field(4, *text);
    type = AttributeType::String;
  } else {
    out.packed_int64_field(8, std::get<std::vector<std::int64_t>>(attribute.value));
    type = AttributeType::Ints;
  }
  out.varint_field(20, static_cast<std::uint64_t>(type));
  return out;
}

// NodeProto: input = 1, output = 2, name = 3, op_type = 4, attribute = 5.
ProtobufWriter encode(const Node& node) {
  ProtobufWriter out;
  for (const std::string& input : node.inputs) out.string_field(1, input);
  for (const std::string& output : node.outputs) out.string_field(2, output);
  out.string_field(3, node.name);
  out.string_field(4, node.op_type);
  for (const Attribute& attribute : node.attributes) out.message_field(5, encode(attribute));
  return out;
}

// TensorProto: dims = 1, data_type = 2, float_data = 4 (packed), int64_data = 7 (packed), name = 8.
ProtobufWriter encode(const Initializer& tensor) {
  ProtobufWriter out;
  out.packed_int64_field(1, tensor.dims);
  if (const auto* floats = std::get_if<std::vector<float>>(&tensor.values)) {
    out.int64_field(2, static_cast<std::int64_t>(ElementType::Float));
    out.packed_float_field(4, *floats);
  } else {
    out.int64_field(2, static_cast<std::int64_t>(ElementType::Int64));
    out.packed_int64_field(7, std::get<std::vector<std::int64_t>>(tensor.values));
  }
  out.string_field(8, tensor.name);
  return out;
}

// ValueInfoProto { name = 1, type = 2 }, TypeProto { tensor_type = 1 },
// TypeProto.Tensor { elem_type = 1, shape = 2 }, TensorShapeProto { dim = 1 },
// TensorShapeProto.Dimension { dim_value = 1, dim_param = 2 }.
ProtobufWriter encode(const ValueInfo& value) {
  ProtobufWriter shape;
  for (const Dimension& dimension : value.shape) {
    ProtobufWriter dim;
    if (const auto* size = std::get_if<std::int64_t>(&dimension.size)) {
      dim.int64_field(1, *size);
    } else {
      dim.string_field(2, std::get<std::string>(dimension.size));
    }
    shape.message_field(1, dim);
  }
  ProtobufWriter tensor_type;
  tensor_type.int64_field(1, static_cast<std::int64_t>(ElementType::Float));
  tensor_type.message_field(2, shape);
  ProtobufWriter type;
  type.message_field(1, tensor_type);
  ProtobufWriter out;
  out.string_field(1, value.name);
  out.message_field(2, type);
  return out;
}

// GraphProto: node = 1, name = 2, initializer = 5, doc_string = 10, input = 11, output = 12.
ProtobufWriter encode(const Graph& graph) {
  ProtobufWriter out;
  for (const Node& node : graph.nodes) out.message_field(1, encode(node));
  out.string_field(2, graph.name);
  for (const Initializer& initializer : graph.initializers) out.message_field(5, encode(initializer));
  if (!graph.doc_string.empty()) out.string_field(10, graph.doc_string);
  for (const ValueInfo& input : graph.inputs) out.message_field(11, encode(input));
  for (const ValueInfo& output : graph.outputs) out.message_field(12, encode(output));
  return out;
}

}  // namespace

// ModelProto: ir_version = 1, producer_name = 2, producer_version = 3, doc_string = 6, graph = 7,
// opset_import = 8 (OperatorSetIdProto { domain = 1, version = 2 }; the empty domain is "ai.onnx"),
// metadata_props = 14 (StringStringEntryProto { key = 1, value = 2 }).
std::vector<std::uint8_t> serialize(const Model& model) {
  ProtobufWriter out;
  out.int64_field(1, kIrVersion);
  out.string_field(2, model.producer_name);
  if (!model.producer_version.empty()) out.string_field(3, model.producer_version);
  if (!model.doc_string.empty()) out.string_field(6, model.doc_string);
  out.message_field(7, encode(model.graph));
  ProtobufWriter opset;
  opset.string_field(1, "");
  opset.int64_field(2, kOpsetVersion);
  out.message_field(8, opset);
  for (const auto& [key, value] : model.metadata) {
    ProtobufWriter entry;
    entry.string_field(1, key);
    entry.string_field(2, value);
    out.message_field(14, entry);
  }
  return out.release();
}

}  // namespace kiln::onnx
