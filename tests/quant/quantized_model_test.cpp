// Tests of int8 post-training quantization (quant/): lowering keeps each zoo model's function, the int8
// model follows the float one, the VNNI and reference paths agree bit for bit through a whole network,
// the model file round-trips and rejects what is not one, unsupported modules are named, and a tiny
// trained checkpoint goes through `kiln quantize`'s whole procedure.
#include "quant/quantized_model.hpp"

#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>

#include "core/autograd.hpp"
#include "core/error.hpp"
#include "core/generator.hpp"
#include "core/ops.hpp"
#include "kernels/cpu_level.hpp"
#include "kernels/int8/int8_conv.hpp"
#include "layers/layers.hpp"
#include "models/architecture.hpp"
#include "quant/calibration.hpp"
#include "quant/inference_program.hpp"
#include "quant/quantize_checkpoint.hpp"
#include "tests/support/fast_kernel_testing.hpp"
#include "tests/support/scratch_folder.hpp"
#include "tests/support/tiny_training.hpp"
#include "tests/support/training_observers.hpp"
#include "train/checkpoint.hpp"

namespace quant_quantized_model_test {

namespace {

using namespace kiln;
namespace fs = std::filesystem;

// Test images are 16x16 (LeNet-5 needs 32x32): every zoo network takes them, and the suite stays fast at
// the reference level too.
std::int64_t image_size(const std::string& model) { return model == "lenet5" ? 32 : 16; }

// A zoo model in eval mode whose batch-norm statistics are not the identity: a training-mode forward pass
// over random images moves the running means and variances (momentum 0.1) away from 0 and 1.
layers::ModulePtr model_with_statistics(const std::string& name) {
  Generator generator(7);
  const std::int64_t size = image_size(name);
  layers::ModulePtr model = models::build_model({.name = name, .height = size, .width = size}, generator);
  {
    NoGradGuard no_grad;
    model->train(true);
    (*model)(Tensor::randn({4, 3, size, size}, DType::Float32, &generator));
  }
  model->eval();
  return model;
}

Tensor images(const std::string& model, std::int64_t n, std::uint64_t seed) {
  Generator generator(seed);
  return Tensor::randn({n, 3, image_size(model), image_size(model)}, DType::Float32, &generator);
}

quant::ValueShape input_of(const std::string& model) { return {3, image_size(model), image_size(model)}; }

double max_abs(const Tensor& t) {
  double largest = 0;
  for (const float v : t.contiguous().to_vector<float>())
    largest = std::max(largest, std::abs(static_cast<double>(v)));
  return largest;
}

double max_abs_difference(const Tensor& a, const Tensor& b) {
  const auto x = a.contiguous().to_vector<float>(), y = b.contiguous().to_vector<float>();
  double largest = 0;
  for (std::size_t i = 0; i < x.size(); ++i)
    largest = std::max(largest, std::abs(static_cast<double>(x[i]) - y[i]));
  return largest;
}

quant::QuantizedModel calibrated(const quant::InferenceProgram& program, const Tensor& calibration) {
  quant::Calibrator calibrator(program);
  calibrator.observe(calibration);
  return quant::QuantizedModel::quantize(program, calibrator.ranges());
}

TEST_CASE("quantize: an inverted residual block with ReLUs and a 5x5 kernel lowers with uncapped ReLUs") {
  Generator generator(4);
  layers::Sequential net;
  net.add("conv", std::make_shared<layers::Conv2d>(3, 8, 3, generator))
      .add("block", std::make_shared<layers::InvertedResidual>(
                        8, 8,
                        layers::InvertedResidualOptions{
                            .hidden_channels = 20, .kernel = 5, .activation = layers::BlockActivation::Relu},
                        generator))
      .add("pool", std::make_shared<layers::GlobalAvgPool2d>())
      .add("fc", std::make_shared<layers::Linear>(8, 2, generator));
  net.eval();
  const quant::InferenceProgram program = quant::lower_for_inference(net, {3, 9, 9});
  // Inputs large enough that the block's ReLUs pass values above 6, which a ReLU6's top would clip.
  const Tensor x = Tensor::randn({2, 3, 9, 9}, DType::Float32, &generator) * 8.0;
  NoGradGuard no_grad;
  const Tensor expected = net(x);
  CHECK(max_abs_difference(quant::run_float(program, x), expected) <=
        1e-4 * std::max(1.0, max_abs(expected)));
}

TEST_CASE("quantize: the lowered program computes every zoo model's logits (batch-norm folded, ReLU fused)") {
  for (const char* name : {"lenet5", "vgg_small", "resnet20", "mobilenet", "mobilenet_v2"}) {
    INFO(name);
    layers::ModulePtr model = model_with_statistics(name);
    const quant::InferenceProgram program = quant::lower_for_inference(*model, input_of(name));
    const Tensor x = images(name, 2, 11);
    NoGradGuard no_grad;
    const Tensor expected = (*model)(x);
    const Tensor actual = quant::run_float(program, x);
    CHECK(actual.shape() == expected.shape());
    CHECK(max_abs_difference(actual, expected) <= 1e-4 * std::max(1.0, max_abs(expected)));
  }
}

TEST_CASE("quantize: ResNet-20 lowers to 19 convolutions, 2 padded shortcuts, a pool and the classifier") {
  const std::string name = "resnet20";
  layers::ModulePtr model = model_with_statistics(name);
  const quant::InferenceProgram program = quant::lower_for_inference(*model, input_of(name));
  std::map<quant::StepKind, int> count;
  int with_residual = 0;
  for (const quant::Step& step : program.steps) {
    ++count[step.kind];
    with_residual += step.residual >= 0;
  }
  CHECK(count[quant::StepKind::Conv] == 19);
  CHECK(count[quant::StepKind::PadShortcut] == 2);
  CHECK(count[quant::StepKind::GlobalAvgPool] == 1);
  CHECK(count[quant::StepKind::Linear] == 1);
  CHECK(with_residual == 9);
  CHECK(program.classes() == 10);
}

TEST_CASE("quantize: the int8 model follows the float model on every zoo network") {
  for (const char* name : {"lenet5", "vgg_small", "resnet20", "mobilenet", "mobilenet_v2"}) {
    INFO(name);
    layers::ModulePtr model = model_with_statistics(name);
    const quant::InferenceProgram program = quant::lower_for_inference(*model, input_of(name));
    quant::QuantizedModel int8 = calibrated(program, images(name, 16, 3));
    const Tensor x = images(name, 8, 4);
    NoGradGuard no_grad;
    const Tensor expected = (*model)(x), actual = int8.forward(x);
    // 8 bits carry about 2 significant digits; errors compound over the layers but stay a few percent of
    // the logits' range on an untrained network, whose activations are as wide as they will ever be:
    // 2 to 4% for the first four, 11% for MobileNetV2, 52 convolutions deep, whose linear bottlenecks'
    // per-tensor ranges suit 8 bits least (per-tensor post-training quantization's known weak spot there).
    const double error = max_abs_difference(actual, expected), range = max_abs(expected);
    INFO("max error ", error, " of logits up to ", range);
    CHECK(error <= (std::string(name) == "mobilenet_v2" ? 0.15 : 0.1) * range);
  }
}

TEST_CASE(
    "quantize: MobileNetV2 lowers to 52 convolutions, 10 of them adding their block's input, ReLU6s topped") {
  const std::string name = "mobilenet_v2";
  layers::ModulePtr model = model_with_statistics(name);
  const quant::InferenceProgram program = quant::lower_for_inference(*model, input_of(name));
  int convolutions = 0, with_residual = 0, topped = 0, plain = 0;
  for (const quant::Step& step : program.steps) {
    convolutions += step.kind == quant::StepKind::Conv;
    with_residual += step.residual >= 0;
    topped += step.relu && step.relu_upper == 6.0;
    plain += step.relu && std::isinf(step.relu_upper);
  }
  // The stem, 16 blocks of three convolutions and one of two, the last 1x1; ReLU6 after all but the 17
  // projections and the classifier.
  CHECK(convolutions == 1 + 16 * 3 + 2 + 1);
  CHECK(with_residual == 10);
  CHECK(topped == convolutions - 17);
  CHECK(plain == 0);
  // The projections add no ReLU: a block's output is the sum, unclamped.
  for (const quant::Step& step : program.steps) {
    if (step.name.ends_with(".project")) CHECK_FALSE(step.relu);
  }
}

TEST_CASE("quantize: a ReLU6's top survives the int8 model file") {
  testing::ScratchFolder scratch("kiln-quant-test", "relu6");
  Generator generator(5);
  layers::Sequential net;
  net.add("conv", std::make_shared<layers::Conv2d>(3, 8, 3, generator))
      .add("top", std::make_shared<layers::ReLU6>())
      .add("block", std::make_shared<layers::InvertedResidual>(8, 8, 1, 2, generator))
      .add("pool", std::make_shared<layers::GlobalAvgPool2d>())
      .add("fc", std::make_shared<layers::Linear>(8, 3, generator));
  net.eval();
  const quant::InferenceProgram program = quant::lower_for_inference(net, {3, 8, 8});
  REQUIRE(program.steps.front().relu);
  CHECK(program.steps.front().relu_upper == 6.0);  // a lone ReLU6 fused into the conv before it
  Generator data(6);
  const Tensor calibration = Tensor::randn({8, 3, 8, 8}, DType::Float32, &data) * 4.0;
  quant::QuantizedModel int8 = calibrated(program, calibration);
  const fs::path file = scratch.path() / "relu6.int8.kiln";
  int8.save(file, {});
  quant::QuantizedModel loaded = quant::QuantizedModel::load(file);
  const Tensor x = Tensor::randn({4, 3, 8, 8}, DType::Float32, &data) * 4.0;
  CHECK(testing::bitwise_equal(loaded.forward(x).to_vector<float>(), int8.forward(x).to_vector<float>()));
  NoGradGuard no_grad;
  const Tensor expected = net(x), actual = int8.forward(x);
  CHECK(max_abs_difference(actual, expected) <= 0.1 * max_abs(expected));
  const nlohmann::json header = train::load_checkpoint_header(file);
  CHECK(header.dump().find("\"relu_upper\":6.0") != std::string::npos);
}

TEST_CASE("quantize: the whole int8 network is bitwise the same with the VNNI kernel and the reference") {
  testing::DispatchGuard guard;
  kernels::set_cpu_level(kernels::CpuLevel::Avx512);
  if (!kernels::int8_conv2d_uses_vnni()) {
    MESSAGE("skipping: this CPU lacks AVX-512 VNNI");
    return;
  }
  for (const char* name : {"lenet5", "resnet20"}) {
    INFO(name);
    layers::ModulePtr model = model_with_statistics(name);
    quant::QuantizedModel int8 =
        calibrated(quant::lower_for_inference(*model, input_of(name)), images(name, 8, 5));
    const Tensor x = images(name, 5, 6);
    kernels::set_cpu_level(kernels::CpuLevel::Avx512);
    const std::vector<float> vnni = int8.forward(x).to_vector<float>();
    kernels::set_cpu_level(kernels::CpuLevel::Reference);
    const std::vector<float> reference = int8.forward(x).to_vector<float>();
    CHECK(testing::bitwise_equal(vnni, reference));
  }
}

TEST_CASE("quantize: an int8 model file loads back to the same model, and other files are refused") {
  testing::ScratchFolder scratch("kiln-quant-test", "file");
  const std::string name = "resnet20";
  layers::ModulePtr model = model_with_statistics(name);
  quant::QuantizedModel int8 =
      calibrated(quant::lower_for_inference(*model, input_of(name)), images(name, 8, 8));
  const fs::path file = scratch.path() / "model.int8.kiln";
  int8.save(file, {{"classes", {"a", "b"}}});
  nlohmann::json header;
  quant::QuantizedModel loaded = quant::QuantizedModel::load(file, &header);
  CHECK(header.at("kind") == quant::kQuantizedModelKind);
  CHECK(header.at("classes").size() == 2);
  CHECK(loaded.weight_bytes() == int8.weight_bytes());
  const Tensor x = images(name, 3, 9);
  CHECK(testing::bitwise_equal(loaded.forward(x).to_vector<float>(), int8.forward(x).to_vector<float>()));

  // A float checkpoint is not an int8 model; a damaged file is refused by the checkpoint reader.
  train::save_checkpoint(scratch.path() / "float.kiln", {{{"kind", "kiln-classifier"}}, {}});
  CHECK_THROWS_WITH_AS(quant::QuantizedModel::load(scratch.path() / "float.kiln"),
                       doctest::Contains("field 'kind'"), Error);
  fs::resize_file(file, fs::file_size(file) - 10);
  CHECK_THROWS_AS(quant::QuantizedModel::load(file), Error);
}

TEST_CASE("quantize: a module int8 inference does not support is named") {
  Generator generator(1);
  layers::Sequential net;
  net.add("conv", std::make_shared<layers::Conv2d>(3, 8, 3, generator))
      .add("act", std::make_shared<layers::Sigmoid>())
      .add("pool", std::make_shared<layers::GlobalAvgPool2d>())
      .add("fc", std::make_shared<layers::Linear>(8, 2, generator));
  CHECK_THROWS_WITH_AS(quant::lower_for_inference(net, {3, 8, 8}),
                       doctest::Contains("module 'act' is Sigmoid"), Error);
  // MobileNetV3's blocks: the hard swish and the squeeze-and-excitation have no int8 steps.
  layers::Sequential v3;
  v3.add("conv", std::make_shared<layers::Conv2d>(3, 8, 3, generator))
      .add("block",
           std::make_shared<layers::InvertedResidual>(
               8, 8, layers::InvertedResidualOptions{.activation = layers::BlockActivation::Hardswish},
               generator))
      .add("pool", std::make_shared<layers::GlobalAvgPool2d>())
      .add("fc", std::make_shared<layers::Linear>(8, 2, generator));
  CHECK_THROWS_WITH_AS(quant::lower_for_inference(v3, {3, 8, 8}),
                       doctest::Contains("module 'block' is InvertedResidual(8, 8, stride=1, expansion=6, "
                                         "hardswish); int8 inference supports inverted residual blocks with "
                                         "ReLU6 or ReLU"),
                       Error);
  layers::Sequential headless;
  headless.add("conv", std::make_shared<layers::Conv2d>(3, 8, 3, generator));
  CHECK_THROWS_WITH_AS(quant::lower_for_inference(headless, {3, 8, 8}),
                       doctest::Contains("must end with a Linear"), Error);
}

TEST_CASE("quantize: a trained checkpoint is calibrated, quantized and compared on its test split") {
  testing::ScratchFolder scratch("kiln-quant-test", "checkpoint");
  const fs::path data = testing::make_two_class_data(scratch.path() / "data", 12, 6);
  testing::Recorder recorder;
  train::TrainConfig config = testing::tiny_lenet5_config(data, scratch.path() / "run", 3);
  config.epochs = 2;
  const train::TrainResult trained = train::train(config, train::RunStart::Fresh, recorder);
  const train::LoadedModel loaded = train::load_model(trained.checkpoint);
  const data::DataSplits splits = data::discover_splits(data, 0.0, 0);

  const quant::QuantizeResult result = quant::quantize_checkpoint(
      loaded, trained.checkpoint, splits, {.calibration_images = 10, .batch_size = 4, .loader_threads = 0});
  CHECK(result.calibration_images == 10);
  CHECK(result.lowering_error < 1e-4);
  CHECK(result.header.at("classes") == nlohmann::json({"airplane", "cat"}));
  CHECK(result.header.contains("preprocessing"));
  REQUIRE(result.comparison);
  CHECK(result.comparison->images == 12);
  CHECK(result.comparison->agreement >= 0.5);
  CHECK(result.comparison->float32.seconds > 0);
  CHECK(result.comparison->int8.seconds > 0);

  // The classes must match the model's.
  const fs::path other = scratch.path() / "other";
  testing::copy_cifar_images("train", "dog", 2, other);
  testing::copy_cifar_images("train", "ship", 2, other);
  CHECK_THROWS_WITH_AS(
      quant::quantize_checkpoint(loaded, trained.checkpoint, data::discover_splits(other, 0.0, 0), {}),
      doctest::Contains("differ from the checkpoint's"), Error);
}

}  // namespace

}  // namespace quant_quantized_model_test
