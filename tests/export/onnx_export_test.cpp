// kiln export --onnx: the wire format byte for byte, the exported graphs read back with a small protobuf
// reader (op types in order, initializers, metadata), and, where python3-onnx is installed, the onnx
// checker, shape inference and a numpy run of the graph against kiln's own logits (check_onnx.py).
#include <doctest/doctest.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/autograd.hpp"
#include "data/image.hpp"
#include "export/onnx_model.hpp"
#include "export/protobuf_writer.hpp"
#include "layers/layers.hpp"
#include "train/atomic_file.hpp"
#include "train/checkpoint.hpp"

namespace export_onnx_export_test {

using namespace kiln;

namespace {

// ---- a protobuf reader, just enough to take the exported bytes apart --------------------------------------

struct Field {
  int number = 0;
  int wire_type = 0;
  std::uint64_t varint = 0;  // wire types 0 and 5 (the 4 bytes as an integer)
  std::string_view bytes{};  // wire type 2
};

std::uint64_t read_varint(std::string_view data, std::size_t& at) {
  std::uint64_t value = 0;
  for (int shift = 0;; shift += 7) {
    REQUIRE(at < data.size());
    const auto byte = static_cast<std::uint8_t>(data[at++]);
    value |= static_cast<std::uint64_t>(byte & 0x7f) << shift;
    if ((byte & 0x80) == 0) return value;
  }
}

std::vector<Field> parse(std::string_view data) {
  std::vector<Field> fields;
  std::size_t at = 0;
  while (at < data.size()) {
    const std::uint64_t key = read_varint(data, at);
    Field field{static_cast<int>(key >> 3), static_cast<int>(key & 7)};
    if (field.wire_type == 0) {
      field.varint = read_varint(data, at);
    } else if (field.wire_type == 2) {
      const std::uint64_t length = read_varint(data, at);
      REQUIRE(at + length <= data.size());
      field.bytes = data.substr(at, length);
      at += length;
    } else {
      REQUIRE(field.wire_type == 5);
      REQUIRE(at + 4 <= data.size());
      for (int i = 0; i < 4; ++i)
        field.varint |= std::uint64_t{static_cast<std::uint8_t>(data[at + i])} << (8 * i);
      at += 4;
    }
    fields.push_back(field);
  }
  return fields;
}

std::vector<std::string_view> all_bytes(std::string_view message, int number) {
  std::vector<std::string_view> out;
  for (const Field& field : parse(message)) {
    if (field.number == number) out.push_back(field.bytes);
  }
  return out;
}

std::string_view one_bytes(std::string_view message, int number) {
  const std::vector<std::string_view> found = all_bytes(message, number);
  REQUIRE(found.size() == 1);
  return found[0];
}

std::uint64_t one_varint(std::string_view message, int number) {
  for (const Field& field : parse(message)) {
    if (field.number == number) return field.varint;
  }
  FAIL("no field ", number);
  return 0;
}

std::vector<std::int64_t> packed_int64s(std::string_view packed) {
  std::vector<std::int64_t> values;
  std::size_t at = 0;
  while (at < packed.size()) values.push_back(static_cast<std::int64_t>(read_varint(packed, at)));
  return values;
}

std::string hex(const std::vector<std::uint8_t>& bytes) {
  std::string out;
  char digits[4];
  for (const std::uint8_t byte : bytes) {
    std::snprintf(digits, sizeof digits, "%02x ", byte);
    out += digits;
  }
  if (!out.empty()) out.pop_back();
  return out;
}

// The parts of an exported ModelProto a test looks at (field numbers as in onnx.proto).
struct ReadModel {
  std::vector<std::uint8_t> storage;
  std::string_view model, graph;

  explicit ReadModel(std::vector<std::uint8_t> bytes) : storage(std::move(bytes)) {
    model = {reinterpret_cast<const char*>(storage.data()), storage.size()};
    graph = one_bytes(model, 7);
  }
  std::vector<std::string> op_types() const {
    std::vector<std::string> out;
    for (std::string_view node : all_bytes(graph, 1)) out.emplace_back(one_bytes(node, 4));
    return out;
  }
  // name -> dims, in file order
  std::vector<std::pair<std::string, std::vector<std::int64_t>>> initializers() const {
    std::vector<std::pair<std::string, std::vector<std::int64_t>>> out;
    for (std::string_view tensor : all_bytes(graph, 5)) {
      const std::vector<std::string_view> dims = all_bytes(tensor, 1);
      out.emplace_back(std::string(one_bytes(tensor, 8)),
                       dims.empty() ? std::vector<std::int64_t>{} : packed_int64s(dims[0]));
    }
    return out;
  }
  std::vector<std::string> metadata_keys() const {
    std::vector<std::string> out;
    for (std::string_view entry : all_bytes(model, 14)) out.emplace_back(one_bytes(entry, 1));
    return out;
  }
  // A graph input (11) or output (12): its name and dims, a symbolic dim written as its name.
  std::pair<std::string, std::vector<std::string>> value_info(int field, std::size_t index) const {
    const std::string_view value = all_bytes(graph, field).at(index);
    const std::string_view tensor_type = one_bytes(one_bytes(value, 2), 1);
    CHECK(one_varint(tensor_type, 1) == 1);  // float
    std::vector<std::string> dims;
    for (std::string_view dim : all_bytes(one_bytes(tensor_type, 2), 1)) {
      const Field size = parse(dim).at(0);
      dims.push_back(size.number == 1 ? std::to_string(size.varint) : std::string(size.bytes));
    }
    return {std::string(one_bytes(value, 1)), dims};
  }
};

// ---- models to export -------------------------------------------------------------------------------------

const std::vector<std::string> kClasses{"airplane", "automobile", "bird",  "cat",  "deer",
                                        "dog",      "frog",       "horse", "ship", "truck"};

data::Preprocessing cifar_preprocessing() {
  return {
      .channels = 3, .height = 32, .width = 32, .mean = {0.49f, 0.48f, 0.45f}, .std = {0.25f, 0.24f, 0.26f}};
}

// Random weights, and batch-norm statistics and affine terms away from their identity defaults, so that
// the export of every one of them is exercised.
void randomize_batch_norms(const layers::Module& model, std::uint64_t seed) {
  NoGradGuard no_grad;
  Generator generator(seed);
  const auto randomize = [&generator](const NamedTensor& entry) {
    const auto& [name, tensor] = entry;
    Tensor target = tensor;
    const bool is_norm = name.find("bn") != std::string::npos;
    if (is_norm && (name.ends_with("running_var") || name.ends_with("weight"))) {
      target.copy_(Tensor::rand(tensor.shape(), DType::Float32, &generator, 0.5, 1.5));
    } else if (is_norm || name.ends_with("bias")) {
      target.copy_(Tensor::randn(tensor.shape(), DType::Float32, &generator, 0.0, 0.2));
    }
  };
  for (const NamedTensor& entry : model.named_parameters()) randomize(entry);
  for (const NamedTensor& entry : model.named_buffers()) randomize(entry);
}

train::LoadedModel zoo_model(const std::string& name) {
  train::LoadedModel loaded;
  loaded.architecture = {.name = name, .in_channels = 3, .height = 32, .width = 32, .classes = 10};
  Generator generator(7);
  loaded.model = models::build_model(loaded.architecture, generator);
  randomize_batch_norms(*loaded.model, 11);
  loaded.model->eval();
  loaded.classes = kClasses;
  loaded.preprocessing = cifar_preprocessing();
  return loaded;
}

// A small net with every layer kind the zoo does not use: conv with bias, stride and dilation, ReLU6,
// LeakyReLU, AvgPool2d both ways of counting padding, Sigmoid, Tanh, GELU, SiLU, Hardsigmoid, Hardswish,
// squeeze-and-excitation blocks (both gates), inverted residual blocks (with and without the expansion and
// the shortcut; MobileNetV3's with a 5x5 kernel, the hard swish and a squeeze, and one with ReLUs), Dropout,
// MaxPool2d with padding.
train::LoadedModel every_layer_model() {
  using namespace layers;
  Generator generator(3);
  auto net = std::make_shared<Sequential>();
  net->add("conv", std::make_shared<Conv2d>(3, 8, 3, generator,
                                            Conv2dLayerOptions{.stride = 2, .padding = 2, .dilation = 2}))
      .add("bn", std::make_shared<BatchNorm2d>(8))
      .add("relu6", std::make_shared<ReLU6>())
      .add("leaky", std::make_shared<LeakyReLU>(0.1))
      .add("avg_exclude",
           std::make_shared<AvgPool2d>(Pool2dOptions{
               .kernel = {3, 3}, .stride = {1, 1}, .padding = {1, 1}, .count_include_pad = false}))
      .add("sigmoid", std::make_shared<Sigmoid>())
      .add("avg_include",
           std::make_shared<AvgPool2d>(Pool2dOptions{.kernel = {2, 2}, .stride = {1, 1}, .padding = {1, 1}}))
      .add("tanh", std::make_shared<Tanh>())
      .add("gelu", std::make_shared<GELU>())
      .add("silu", std::make_shared<SiLU>())
      .add("hardsigmoid", std::make_shared<Hardsigmoid>())
      .add("hardswish", std::make_shared<Hardswish>())
      .add("se_sigmoid", std::make_shared<SqueezeExcitation>(8, 2, SqueezeGate::Sigmoid, generator))
      .add("se_hard", std::make_shared<SqueezeExcitation>(8, 3, SqueezeGate::Hardsigmoid, generator))
      .add("inverted_plain", std::make_shared<InvertedResidual>(8, 8, 1, 1, generator))
      .add("inverted_wide", std::make_shared<InvertedResidual>(8, 8, 1, 4, generator))
      .add("dropout", std::make_shared<Dropout>(0.5))
      .add("max",
           std::make_shared<MaxPool2d>(Pool2dOptions{.kernel = {3, 3}, .stride = {2, 2}, .padding = {1, 1}}))
      .add("inverted_strided", std::make_shared<InvertedResidual>(8, 6, 2, 2, generator))
      .add("inverted_v3", std::make_shared<InvertedResidual>(
                              6, 6,
                              InvertedResidualOptions{.hidden_channels = 10,
                                                      .kernel = 5,
                                                      .activation = BlockActivation::Hardswish,
                                                      .squeeze_channels = 4},
                              generator))
      .add("inverted_relu",
           std::make_shared<InvertedResidual>(
               6, 6, InvertedResidualOptions{.expansion = 2, .activation = BlockActivation::Relu}, generator))
      .add("flatten", std::make_shared<Flatten>())
      .add("fc", std::make_shared<Linear>(6 * 2 * 2, 4, generator));
  randomize_batch_norms(*net, 5);
  net->eval();
  train::LoadedModel loaded;
  loaded.architecture = {.name = "every-layer", .in_channels = 3, .height = 10, .width = 10, .classes = 4};
  loaded.model = net;
  loaded.classes = {"a", "b", "c", "d"};
  loaded.preprocessing = {
      .channels = 3, .height = 10, .width = 10, .mean = {0.5f, 0.5f, 0.5f}, .std = {0.2f, 0.3f, 0.4f}};
  return loaded;
}

ReadModel exported(const train::LoadedModel& loaded, const onnx::ExportOptions& options = {}) {
  return ReadModel(onnx::serialize(onnx::to_onnx(loaded, options)));
}

// ---- the python3-onnx check -------------------------------------------------------------------------------

std::filesystem::path scratch_folder(const std::string& name) {
  const std::filesystem::path folder =
      std::filesystem::temp_directory_path() / ("kiln-onnx-test-" + std::to_string(getpid())) / name;
  std::filesystem::create_directories(folder);
  return folder;
}

// The first Python that has onnx and numpy ($KILN_PYTHON, python3, then Debian's own, which is where
// python3-onnx installs when python3 on PATH is another one); empty when there is none.
std::string python_with_onnx() {
  std::vector<std::string> candidates;
  if (const char* chosen = std::getenv("KILN_PYTHON")) candidates.emplace_back(chosen);
  candidates.insert(candidates.end(), {"python3", "/usr/bin/python3"});
  for (const std::string& python : candidates) {
    if (std::system((python + " -c 'import onnx, numpy' >/dev/null 2>&1").c_str()) == 0) return python;
  }
  return {};
}

void write_floats(const std::filesystem::path& path, const Tensor& tensor) {
  const std::vector<float> values = tensor.to_vector<float>();
  std::ofstream(path, std::ios::binary)
      .write(reinterpret_cast<const char*>(values.data()),
             static_cast<std::streamsize>(values.size() * sizeof(float)));
}

// Exports `loaded`, runs kiln on `input` [N, C, H, W], and has check_onnx.py check the file and compare
// its numpy run of the graph with kiln's logits; only a MESSAGE when no Python has onnx.
void check_with_python(const train::LoadedModel& loaded, const Tensor& input, const std::string& name) {
  const std::string python = python_with_onnx();
  if (python.empty()) {
    MESSAGE("skipped: no python3 with the onnx package (Debian: apt-get install python3-onnx)");
    return;
  }
  const std::filesystem::path folder = scratch_folder(name);
  const std::vector<std::uint8_t> bytes = onnx::serialize(onnx::to_onnx(loaded));
  train::write_file_atomically(folder / "model.onnx", bytes, "ONNX model");
  Tensor logits;
  {
    NoGradGuard no_grad;
    logits = loaded.model->forward(input);
  }
  write_floats(folder / "input.bin", input);
  write_floats(folder / "logits.bin", logits);
  const std::string command =
      python + " " KILN_SOURCE_DIR "/tests/export/check_onnx.py " + (folder / "model.onnx").string() +
      " --classes " + std::to_string(loaded.architecture.classes) + " --input " +
      (folder / "input.bin").string() + " --logits " + (folder / "logits.bin").string() + " 2>&1";
  std::string output;
  FILE* pipe = popen(command.c_str(), "r");
  REQUIRE(pipe != nullptr);
  char buffer[512];
  while (std::fgets(buffer, sizeof buffer, pipe) != nullptr) output += buffer;
  const int status = pclose(pipe);
  std::filesystem::remove_all(folder);
  CHECK_MESSAGE(status == 0, name, ": ", output);
  if (status == 0) MESSAGE(name, ": ", output);
}

// Two images of the bundled CIFAR-10 subset, preprocessed as kiln does: [2, 3, 32, 32].
Tensor cifar_images() {
  const std::filesystem::path test = KILN_SOURCE_DIR "/assets/cifar10-subset/test";
  const data::Preprocessing preprocessing = cifar_preprocessing();
  std::vector<Tensor> images;
  for (const char* file : {"airplane/0000.jpg", "cat/0001.jpg"})
    images.push_back(preprocessing.apply(data::decode_image_file(test / file)).unsqueeze(0));
  return cat(images, 0);
}

// A module kiln has no ONNX form for.
class Scramble : public layers::Module {
 public:
  Tensor forward(const Tensor& input) override { return input; }
  std::string describe() const override { return "Scramble()"; }
};

}  // namespace

TEST_CASE(
    "onnx protobuf writer: varints, negative int64s, strings, packed fields and floats, byte for byte") {
  onnx::ProtobufWriter writer;
  writer.varint_field(1, 150);  // the protobuf documentation's example: 08 96 01
  CHECK(hex(writer.release()) == "08 96 01");
  writer.int64_field(2, -1);  // ten bytes, as protobuf's int64
  CHECK(hex(writer.release()) == "10 ff ff ff ff ff ff ff ff ff 01");
  writer.string_field(2, "testing");
  CHECK(hex(writer.release()) == "12 07 74 65 73 74 69 6e 67");
  writer.packed_int64_field(4, std::vector<std::int64_t>{3, 270, 86942});
  CHECK(hex(writer.release()) == "22 06 03 8e 02 9e a7 05");
  writer.float_field(1, 1.0f);
  CHECK(hex(writer.release()) == "0d 00 00 80 3f");
  writer.packed_float_field(4, std::vector<float>{1.0f, -2.0f});
  CHECK(hex(writer.release()) == "22 08 00 00 80 3f 00 00 00 c0");
  onnx::ProtobufWriter inner;
  inner.varint_field(1, 150);
  writer.message_field(3, inner);
  CHECK(hex(writer.release()) == "1a 03 08 96 01");
}

TEST_CASE("onnx export: lenet5 is Conv Relu MaxPool twice, then Flatten and three Gemms, with its weights") {
  const train::LoadedModel loaded = zoo_model("lenet5");
  const ReadModel read = exported(loaded);
  CHECK(one_varint(read.model, 1) == 8);  // ir_version
  const std::string_view opset = one_bytes(read.model, 8);
  CHECK(one_bytes(opset, 1).empty());  // the default domain, ai.onnx
  CHECK(one_varint(opset, 2) == 17);
  CHECK(read.op_types() == std::vector<std::string>{"Conv", "Relu", "MaxPool", "Conv", "Relu", "MaxPool",
                                                    "Flatten", "Gemm", "Relu", "Gemm", "Relu", "Gemm",
                                                    "Softmax"});
  // Every initializer is a checkpoint tensor under its checkpoint name and shape, in the same order.
  const auto initializers = read.initializers();
  const std::vector<NamedTensor> state = train::model_state(*loaded.model);
  REQUIRE(initializers.size() == state.size());
  for (std::size_t i = 0; i < state.size(); ++i) {
    CHECK(initializers[i].first == state[i].first);
    CHECK(initializers[i].second == state[i].second.shape().dims());
  }
  CHECK(initializers[0].first == "model.conv1.weight");
  CHECK(initializers[0].second == std::vector<std::int64_t>{6, 3, 5, 5});
  CHECK(read.metadata_keys() == std::vector<std::string>{"architecture", "classes", "preprocessing"});
  CHECK(read.value_info(11, 0) ==
        std::pair<std::string, std::vector<std::string>>{"input", {"batch", "3", "32", "32"}});
  CHECK(read.value_info(12, 0) ==
        std::pair<std::string, std::vector<std::string>>{"logits", {"batch", "10"}});
  CHECK(read.value_info(12, 1) ==
        std::pair<std::string, std::vector<std::string>>{"probabilities", {"batch", "10"}});

  const ReadModel logits_only = exported(loaded, {.probabilities = false});
  CHECK(logits_only.op_types().back() == "Gemm");
  CHECK(all_bytes(logits_only.graph, 12).size() == 1);
}

TEST_CASE("onnx export: resnet20's blocks, with Slice and Pad for the option A shortcuts") {
  const train::LoadedModel loaded = zoo_model("resnet20");
  const ReadModel read = exported(loaded);
  std::vector<std::string> expected{"Conv", "BatchNormalization", "Relu"};
  for (int stage = 0; stage < 3; ++stage) {
    for (int block = 0; block < 3; ++block) {
      expected.insert(expected.end(), {"Conv", "BatchNormalization", "Relu", "Conv", "BatchNormalization"});
      if (stage > 0 && block == 0) expected.insert(expected.end(), {"Slice", "Pad"});
      expected.insert(expected.end(), {"Add", "Relu"});
    }
  }
  expected.insert(expected.end(), {"GlobalAveragePool", "Flatten", "Gemm", "Softmax"});
  CHECK(read.op_types() == expected);

  // The checkpoint's tensors, then per shortcut its four Slice inputs and Pad's pads.
  const auto initializers = read.initializers();
  const std::size_t state_size = train::model_state(*loaded.model).size();
  CHECK(initializers.size() == state_size + 2 * 5);
  bool found_pads = false;
  for (const auto& [name, dims] : initializers) {
    if (name == "model.stage2.0.shortcut.pads") found_pads = dims == std::vector<std::int64_t>{8};
  }
  CHECK(found_pads);
  CHECK(initializers.front().first == "model.conv1.weight");
  CHECK(initializers.front().second == std::vector<std::int64_t>{16, 3, 3, 3});
  const auto contains = [&initializers](const std::string& name) {
    for (const auto& entry : initializers) {
      if (entry.first == name) return true;
    }
    return false;
  };
  CHECK(contains("model.stage3.2.bn2.running_var"));
  CHECK(contains("model.fc.bias"));
}

TEST_CASE(
    "onnx export: every model of the zoo exports, and a module with no ONNX form is an error naming it") {
  for (const std::string& name : models::model_names()) {
    CAPTURE(name);
    const onnx::Model model = onnx::to_onnx(zoo_model(name));
    CHECK(model.graph.nodes.size() > 5);
    CHECK(model.graph.outputs.size() == 2);
  }

  train::LoadedModel loaded = zoo_model("lenet5");
  auto net = std::make_shared<layers::Sequential>();
  net->add("scramble", std::make_shared<Scramble>());
  loaded.model = net;
  CHECK_THROWS_WITH_AS(onnx::to_onnx(loaded), doctest::Contains("module 'scramble' is Scramble()"), Error);
}

TEST_CASE("onnx export: the metadata and doc_string carry the preprocessing and the class names") {
  const train::LoadedModel loaded = zoo_model("lenet5");
  const onnx::Model model = onnx::to_onnx(loaded);
  REQUIRE(model.metadata.size() == 3);
  CHECK(data::Preprocessing::from_json(nlohmann::json::parse(model.metadata[2].second)) ==
        loaded.preprocessing);
  CHECK(nlohmann::json::parse(model.metadata[1].second).get<std::vector<std::string>>() == kClasses);
  CHECK(models::ArchitectureSpec::from_json(nlohmann::json::parse(model.metadata[0].second)) ==
        loaded.architecture);
  CHECK(model.doc_string.find("resize it to 32x32") != std::string::npos);
  CHECK(model.doc_string.find("subtract mean [0.49, 0.48, 0.45]") != std::string::npos);
}

TEST_CASE("onnx export: a multi-label model's probabilities are sigmoids, its thresholds in the metadata") {
  train::LoadedModel loaded = zoo_model("lenet5");
  loaded.task = train::kMultiLabelTask;
  loaded.thresholds.thresholds.assign(kClasses.size(), 0.5);
  loaded.thresholds.thresholds[1] = 0.25;
  const onnx::Model model = onnx::to_onnx(loaded);
  REQUIRE(!model.graph.nodes.empty());
  CHECK(model.graph.nodes.back().op_type == "Sigmoid");
  CHECK(model.graph.nodes.back().outputs == std::vector<std::string>{"probabilities"});
  REQUIRE(model.metadata.size() == 5);
  CHECK(model.metadata[3] == std::pair<std::string, std::string>{"task", "multi_label"});
  CHECK(nlohmann::json::parse(model.metadata[4].second).at(1).get<double>() == 0.25);
  CHECK(model.doc_string.find("sigmoids") != std::string::npos);
  // A single-label model keeps its softmax.
  CHECK(onnx::to_onnx(zoo_model("lenet5")).graph.nodes.back().op_type == "Softmax");
}

TEST_CASE(
    "onnx export: python3-onnx's checker and shape inference pass, and a numpy run matches kiln's logits") {
  check_with_python(zoo_model("lenet5"), cifar_images(), "lenet5");
  check_with_python(zoo_model("resnet20"), cifar_images(), "resnet20");
  check_with_python(zoo_model("mobilenet_v3_small"), cifar_images(), "mobilenet_v3_small");
  Generator generator(9);
  check_with_python(every_layer_model(), Tensor::randn({2, 3, 10, 10}, DType::Float32, &generator),
                    "every-layer");
}

}  // namespace export_onnx_export_test
