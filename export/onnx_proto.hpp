// The ONNX messages kiln writes, as plain structs, and their encoding (export/protobuf_writer.hpp).
//
// Only what an exported classifier needs is here: a model with one graph of nodes over float tensors,
// weights as initializers, and string metadata. The field numbers are those of the public onnx.proto
// (github.com/onnx/onnx, onnx/onnx.proto), listed next to each field in onnx_proto.cpp.
//
//   Model  { ir_version, opset_import[], producer_name, producer_version, doc_string, graph,
//            metadata_props[] }
//   Graph  { node[], name, initializer[], doc_string, input[], output[] }
//   Node   { input[], output[], name, op_type, attribute[] }
//   Tensor { dims[], data_type, name, float_data[] or int64_data[] }   (an initializer)
//   ValueInfo { name, type: tensor { elem_type, shape { dim[]: dim_value or dim_param } } }
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <variant>
#include <vector>

namespace kiln::onnx {

inline constexpr std::int64_t kIrVersion = 8;  // ONNX 1.10 onward; the version opset 17 ships with is 8
inline constexpr std::int64_t kOpsetVersion = 17;

// TensorProto.DataType
enum class ElementType : std::int32_t { Float = 1, Int64 = 7 };

// A node attribute: one of the AttributeProto kinds kiln uses.
struct Attribute {
  std::string name;
  std::variant<std::int64_t, float, std::string, std::vector<std::int64_t>> value;
};

struct Node {
  std::string op_type;
  std::string name;
  std::vector<std::string> inputs, outputs;
  std::vector<Attribute> attributes;
};

// An initializer: float weights or int64 constants (Slice's starts, Pad's pads).
struct Initializer {
  std::string name;
  std::vector<std::int64_t> dims;
  std::variant<std::vector<float>, std::vector<std::int64_t>> values;
};

// One dimension of a graph input or output: a fixed size, or a name ("batch") for a size chosen at run time.
struct Dimension {
  std::variant<std::int64_t, std::string> size;
};

// A graph input or output: a float tensor of the given shape.
struct ValueInfo {
  std::string name;
  std::vector<Dimension> shape;
};

struct Graph {
  std::string name, doc_string;
  std::vector<Node> nodes;  // in an order where every input is produced before it is used
  std::vector<Initializer> initializers;
  std::vector<ValueInfo> inputs, outputs;
};

struct Model {
  std::string producer_name, producer_version, doc_string;
  Graph graph;
  std::vector<std::pair<std::string, std::string>> metadata;  // metadata_props, in this order
};

// The ModelProto bytes, ready for a .onnx file.
std::vector<std::uint8_t> serialize(const Model& model);

}  // namespace kiln::onnx
