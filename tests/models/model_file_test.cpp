// Model files (models/model_file.hpp): reading the layer lines (comments, blank lines, whitespace; each
// syntax error named by its line), resolving --model to the zoo or a file, building every kind of layer
// with its input taken from the layer before (names, parameter counts worked by hand, output shapes),
// the errors a network that cannot run meets (by line in a file, by layer in a checkpoint), the JSON round
// trip, the same weights from the same seed, and the bundled examples.
#include "models/model_file.hpp"

#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "core/ops.hpp"
#include "layers/layers.hpp"

namespace models_model_file_test {

using namespace kiln;
using models::ArchitectureSpec;

namespace {

// A model file in a fresh temporary folder, removed with it.
class ModelFile {
 public:
  explicit ModelFile(const std::string& text, const std::string& name = "net.txt")
      : folder_(std::filesystem::temp_directory_path() /
                ("kiln-model-file-test-" + std::to_string(reinterpret_cast<std::uintptr_t>(this)))) {
    std::filesystem::create_directories(folder_);
    std::ofstream(folder_ / name) << text;
    path_ = folder_ / name;
  }
  ~ModelFile() { std::filesystem::remove_all(folder_); }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path folder_, path_;
};

ArchitectureSpec spec_of(std::vector<std::string> layers, std::int64_t channels = 3, std::int64_t size = 16,
                         std::int64_t classes = 5) {
  ArchitectureSpec spec{"net", channels, size, size, classes};
  spec.layers = std::move(layers);
  return spec;
}

layers::ModulePtr build(const ArchitectureSpec& spec, std::uint64_t seed = 1) {
  Generator generator(seed);
  return models::build_model(spec, generator);
}

// What --model names, built from seed 1 (build's seed), at a square input of `size`.
models::NamedModel named(const std::string& model, std::int64_t channels, std::int64_t size,
                         std::int64_t classes) {
  Generator generator(1);
  return models::build_named_model(model, channels, size, size, classes, generator);
}

Shape output_shape(layers::Module& model, const ArchitectureSpec& spec, std::int64_t batch = 2) {
  NoGradGuard no_grad;
  model.eval();
  return model(Tensor::randn({batch, spec.in_channels, spec.height, spec.width})).shape();
}

std::vector<std::string> child_names(const layers::Module& model) {
  std::vector<std::string> names;
  for (const auto& [name, child] : model.named_children()) names.push_back(name);
  return names;
}

const std::filesystem::path kExamples = std::filesystem::path(KILN_SOURCE_DIR) / "examples" / "models";

}  // namespace

TEST_CASE("model file: comments, blank lines and spacing are dropped; the lines are kept in order") {
  const ModelFile file(
      "# a comment line\n"
      "\n"
      "  conv   8 3   padding=same   # the stem\n"
      "\trelu\n"
      "global_avg_pool\n"
      "linear\n");
  CHECK(models::read_model_file(file.path()) ==
        std::vector<std::string>{"conv 8 3 padding=same", "relu", "global_avg_pool", "linear"});
}

TEST_CASE("model file: each syntax error names the file, the line and the form the kind takes") {
  const auto error_of = [](const std::string& text) {
    const ModelFile file(text);
    try {
      models::read_model_file(file.path());
    } catch (const Error& error) {
      return std::string(error.what());
    }
    return std::string("no error");
  };
  CHECK(error_of("relu\nconvv 3\n").find("line 2 'convv 3': unknown layer 'convv' (known: conv,") !=
        std::string::npos);
  CHECK(error_of("conv 32\n")
            .find("line 1 'conv 32': conv takes 2 arguments, not 1 (the form is conv OUT "
                  "KERNEL") != std::string::npos);
  CHECK(error_of("linear 3 4\n").find("linear takes up to 1 argument, not 2") != std::string::npos);
  CHECK(error_of("conv 8 3 size=2\n").find("conv has no option 'size'") != std::string::npos);
  CHECK(error_of("conv 8 3 stride=2 stride=1\n").find("option stride is given twice") != std::string::npos);
  CHECK(error_of("conv 8 stride=2 3\n").find("'3' follows an option; arguments come first") !=
        std::string::npos);
  CHECK(error_of("conv 8 3 stride=\n").find("option stride has no value") != std::string::npos);
  CHECK(error_of("# only a comment\n\n").find("no layers") != std::string::npos);
  CHECK(error_of("relu x\n").find("model file ") == 0);
  CHECK_THROWS_WITH_AS(models::read_model_file("/nonexistent/kiln/net.txt"),
                       doctest::Contains("model file /nonexistent/kiln/net.txt: cannot be read"), Error);
}

TEST_CASE(
    "model file: --model resolves to the zoo, else to a file named by its stem, else fails naming both") {
  const ArchitectureSpec zoo = named("resnet20", 3, 32, 10).architecture;
  CHECK(zoo.name == "resnet20");
  CHECK(zoo.layers.empty());

  const ModelFile file("conv 4 3\nflatten\nlinear\n", "small_net.txt");
  const models::NamedModel from_file = named(file.path().string(), 1, 8, 3);
  const ArchitectureSpec& described = from_file.architecture;
  CHECK(described.name == "small_net");
  CHECK(described.layers == std::vector<std::string>{"conv 4 3", "flatten", "linear"});
  CHECK(described.in_channels == 1);
  CHECK(described.classes == 3);
  // The network built from the file is the one a checkpoint of it rebuilds from the same seed.
  const std::vector<Tensor> a = from_file.model->parameters(), b = build(described)->parameters();
  REQUIRE(a.size() == b.size());
  for (std::size_t i = 0; i < a.size(); ++i) CHECK(a[i].to_vector<float>() == b[i].to_vector<float>());

  CHECK_THROWS_WITH_AS(named("resnet7", 3, 32, 10),
                       doctest::Contains("unknown model 'resnet7': neither a network of the zoo (lenet5,"),
                       Error);
}

TEST_CASE("model file: a layer that cannot take its input is named by its line in the file") {
  const ModelFile file("# stem\nconv 4 3\n\nrelu\nlinear\n");
  CHECK_THROWS_WITH_AS(named(file.path().string(), 3, 8, 2),
                       doctest::Contains("net.txt, line 5 'linear': takes [N, features], but its input is "
                                         "[N, 4, 6, 6] (put flatten or global_avg_pool before it)"),
                       Error);
}

TEST_CASE("model file: layers take their input channels from the layer before; parameters by hand") {
  // conv 3 -> 8, 3x3, no bias: 216; batchnorm 8: 16; conv 8 -> 6 5x5 stride 2 with bias: 1200 + 6 = 1206
  // (16x16 -> 6x6); maxpool 2 -> 3x3; flatten 54; linear 54 -> 7: 385; linear 7 -> 5: 40.
  const ArchitectureSpec spec =
      spec_of({"conv 8 3 padding=same bias=false", "batchnorm", "relu", "conv 6 5 stride=2", "leaky_relu 0.1",
               "maxpool 2", "flatten", "linear 7", "tanh", "dropout 0.5", "linear"});
  layers::ModulePtr model = build(spec);
  CHECK(model->parameter_count() == 216 + 16 + 1206 + 385 + 40);
  CHECK(child_names(*model) == std::vector<std::string>{"conv1", "batchnorm1", "relu1", "conv2",
                                                        "leaky_relu1", "maxpool1", "flatten1", "linear1",
                                                        "tanh1", "dropout1", "linear2"});
  CHECK(model->is_training());  // the dry run's eval mode does not stay
  CHECK(output_shape(*model, spec) == Shape{2, 5});
}

TEST_CASE("model file: the conv's options reach the layer, padding=same keeps the size") {
  const ArchitectureSpec spec =
      spec_of({"conv 6 3 padding=same dilation=2 groups=3", "avgpool 3 stride=1 padding=1", "sigmoid", "gelu",
               "silu", "hardsigmoid", "hardswish", "conv 5 1", "global_avg_pool"},
              3, 9, 5);
  layers::ModulePtr model = build(spec);
  const auto& conv = dynamic_cast<const layers::Conv2d&>(*model->named_children()[0].second);
  CHECK(conv.describe().find("padding=2") != std::string::npos);
  CHECK(conv.describe().find("dilation=2") != std::string::npos);
  CHECK(conv.describe().find("groups=3") != std::string::npos);
  CHECK(model->named_children()[5].second->describe() == "Hardsigmoid()");
  CHECK(model->named_children()[6].second->describe() == "Hardswish()");
  // conv 3 -> 6, groups 3: 6 * 1 * 9 + 6 = 60; conv 6 -> 5 1x1: 30 + 5 = 35; the net ends in 5 channels.
  CHECK(model->parameter_count() == 60 + 35);
  CHECK(output_shape(*model, spec, 1) == Shape{1, 5});
}

TEST_CASE("model file: residual, separable and inverted blocks, with either shortcut") {
  const ArchitectureSpec spec =
      spec_of({"conv 8 3 padding=same bias=false", "residual 8", "residual 16 stride=2",
               "residual 12 stride=2 shortcut=projection", "separable 20 stride=2", "inverted 20 expand=4",
               "inverted 24 stride=2 expand=1", "relu6", "global_avg_pool", "linear"},
              3, 32, 4);
  layers::ModulePtr model = build(spec);
  CHECK(output_shape(*model, spec) == Shape{2, 4});
  CHECK(dynamic_cast<const layers::BasicBlock*>(model->named_children()[1].second.get()) != nullptr);
  CHECK(dynamic_cast<const layers::DepthwiseSeparable*>(model->named_children()[4].second.get()) != nullptr);
  const auto& projected = dynamic_cast<const layers::BasicBlock&>(*model->named_children()[3].second);
  CHECK(projected.describe().find("projection") != std::string::npos);
  const auto& inverted = dynamic_cast<const layers::InvertedResidual&>(*model->named_children()[5].second);
  CHECK(inverted.describe() == "InvertedResidual(20, 20, stride=1, expansion=4)");
  CHECK(inverted.residual());
  CHECK(dynamic_cast<const layers::ReLU6*>(model->named_children()[7].second.get()) != nullptr);
  CHECK(model->named_children()[7].first == "relu6_1");
  CHECK_THROWS_WITH_AS(build(spec_of({"conv 8 3", "residual 4", "global_avg_pool", "linear"})),
                       doctest::Contains("shortcut=pad can only add channels (8 -> 4)"), Error);
  CHECK_THROWS_WITH_AS(build(spec_of({"conv 8 3", "residual 16 shortcut=conv", "global_avg_pool", "linear"})),
                       doctest::Contains("shortcut must be pad or projection, got 'conv'"), Error);
}

TEST_CASE("model file: inverted's MobileNetV3 options: hidden width, kernel, activation, squeeze") {
  const ArchitectureSpec spec =
      spec_of({"conv 16 3 padding=same", "inverted 24 stride=2 hidden=72 activation=relu",
               "inverted 24 hidden=88 kernel=5 activation=hardswish se=4", "global_avg_pool", "linear"},
              3, 8, 4);
  layers::ModulePtr model = build(spec);
  const auto children = model->named_children();
  CHECK(children[1].second->describe() == "InvertedResidual(16, 24, stride=2, hidden=72, relu)");
  CHECK(children[2].second->describe() ==
        "InvertedResidual(24, 24, stride=1, hidden=88, kernel=5, hardswish, squeeze=22)");
  CHECK(output_shape(*model, spec) == Shape{2, 4});
  CHECK_THROWS_WITH_AS(
      build(spec_of({"conv 8 3", "inverted 8 activation=gelu", "global_avg_pool", "linear"})),
      doctest::Contains("activation must be relu6, relu or hardswish, got 'gelu'"), Error);
  CHECK_THROWS_WITH_AS(
      build(spec_of({"conv 8 3", "inverted 8 kernel=4", "global_avg_pool", "linear"})),
      doctest::Contains("'inverted 8 kernel=4': InvertedResidual: the depthwise kernel 4 must be odd"),
      Error);
}

TEST_CASE("model file: se lines are squeeze-and-excitation blocks of C / REDUCTION channels, either gate") {
  const ArchitectureSpec spec = spec_of(
      {"conv 12 3 padding=same", "se", "se 3 gate=hardsigmoid", "se 100", "global_avg_pool", "linear"}, 3, 8,
      4);
  layers::ModulePtr model = build(spec);
  const auto children = model->named_children();
  CHECK(children[1].second->describe() == "SqueezeExcitation(12, squeeze=3, gate=sigmoid)");
  CHECK(children[2].second->describe() == "SqueezeExcitation(12, squeeze=4, gate=hardsigmoid)");
  CHECK(children[3].second->describe() == "SqueezeExcitation(12, squeeze=1, gate=sigmoid)");  // at least 1
  CHECK(output_shape(*model, spec) == Shape{2, 4});
  CHECK_THROWS_WITH_AS(build(spec_of({"conv 12 3", "se gate=relu", "global_avg_pool", "linear"})),
                       doctest::Contains("gate must be sigmoid or hardsigmoid, got 'relu'"), Error);
  CHECK_THROWS_WITH_AS(build(spec_of({"flatten", "se", "linear"})),
                       doctest::Contains("'se': takes [N, C, H, W]"), Error);
}

TEST_CASE("model file: networks that cannot run fail naming the layer, or the end they reach") {
  CHECK_THROWS_WITH_AS(
      build(spec_of({"flatten", "linear", "batchnorm"})),
      doctest::Contains("model net, layer 3 'batchnorm': takes [N, C, H, W], but its input is "
                        "[N, 5]"),
      Error);
  CHECK_THROWS_WITH_AS(build(spec_of({"conv 4 3", "global_avg_pool"})),
                       doctest::Contains("model net: ends in [N, 4], not [N, 5] (one output per class)"),
                       Error);
  CHECK_THROWS_WITH_AS(build(spec_of({"conv 4 20", "flatten", "linear"})),
                       doctest::Contains("model net, layer 1 'conv 4 20'"), Error);
  CHECK_THROWS_WITH_AS(build(spec_of({"conv 4 3 padding=same groups=2", "flatten", "linear"})),
                       doctest::Contains("groups=2 must divide the 3 input channels"), Error);
  CHECK_THROWS_WITH_AS(build(spec_of({"conv 4 2 padding=same", "flatten", "linear"})),
                       doctest::Contains("padding=same needs an odd kernel"), Error);
  CHECK_THROWS_WITH_AS(build(spec_of({"flatten", "dropout 1", "linear"})),
                       doctest::Contains("P must be in [0, 1), got 1"), Error);
  CHECK_THROWS_WITH_AS(build(spec_of({"conv 0 3", "flatten", "linear"})),
                       doctest::Contains("OUT must be a whole number >= 1, got '0'"), Error);
  CHECK_THROWS_WITH_AS(build(spec_of({"flatten", "linear bias=maybe"})),
                       doctest::Contains("bias must be true or false, got 'maybe'"), Error);
}

TEST_CASE(
    "model file: the layers go through the architecture's JSON; the same seed builds the same weights") {
  const ArchitectureSpec spec = spec_of({"conv 4 3 padding=same", "relu", "flatten", "linear"});
  const nlohmann::json json = spec.to_json();
  CHECK(json.at("layers") == nlohmann::json(spec.layers));
  CHECK(ArchitectureSpec::from_json(json) == spec);
  CHECK_FALSE(ArchitectureSpec{"resnet20", 3, 32, 32, 10}.to_json().contains("layers"));
  CHECK(ArchitectureSpec::from_json(ArchitectureSpec{"resnet20", 3, 32, 32, 10}.to_json()).layers.empty());

  const layers::ModulePtr first = build(spec, 7), second = build(spec, 7), other = build(spec, 8);
  const std::vector<Tensor> a = first->parameters(), b = second->parameters(), c = other->parameters();
  REQUIRE(a.size() == b.size());
  for (std::size_t i = 0; i < a.size(); ++i) CHECK(a[i].to_vector<float>() == b[i].to_vector<float>());
  CHECK(a[0].to_vector<float>() != c[0].to_vector<float>());
}

TEST_CASE(
    "model file: repeat=N builds N layers alike; ResNet-20 written out is the zoo's, weight for weight") {
  const ArchitectureSpec spec =
      spec_of({"conv 16 3 padding=same bias=false", "batchnorm", "relu", "residual 16 repeat=3",
               "residual 32 stride=2", "residual 32 repeat=2", "residual 64 stride=2", "residual 64 repeat=2",
               "global_avg_pool", "linear"},
              3, 32, 10);
  const layers::ModulePtr written = build(spec, 5);
  CHECK(child_names(*written) == std::vector<std::string>{"conv1", "batchnorm1", "relu1", "residual1",
                                                          "residual2", "residual3", "residual4", "residual5",
                                                          "residual6", "residual7", "residual8", "residual9",
                                                          "global_avg_pool1", "linear1"});
  const layers::ModulePtr zoo = build({"resnet20", 3, 32, 32, 10}, 5);
  CHECK(written->parameter_count() == zoo->parameter_count());
  // The same draws in the same order: the same weights, so the same logits.
  const std::vector<Tensor> a = written->parameters(), b = zoo->parameters();
  REQUIRE(a.size() == b.size());
  for (std::size_t i = 0; i < a.size(); ++i) CHECK(a[i].to_vector<float>() == b[i].to_vector<float>());
  NoGradGuard no_grad;
  written->eval();
  zoo->eval();
  const Tensor images = Tensor::randn({2, 3, 32, 32});
  CHECK((*written)(images).to_vector<float>() == (*zoo)(images).to_vector<float>());

  // ResNet-56, as the README writes it: the zoo's weights too.
  const layers::ModulePtr written56 =
      build(spec_of({"conv 16 3 padding=same bias=false", "batchnorm", "relu", "residual 16 repeat=9",
                     "residual 32 stride=2", "residual 32 repeat=8", "residual 64 stride=2",
                     "residual 64 repeat=8", "global_avg_pool", "linear"},
                    3, 32, 10),
            6);
  const std::vector<Tensor> c = written56->parameters(),
                            d = build({"resnet56", 3, 32, 32, 10}, 6)->parameters();
  REQUIRE(c.size() == d.size());
  for (std::size_t i = 0; i < c.size(); ++i) CHECK(c[i].to_vector<float>() == d[i].to_vector<float>());

  CHECK(models::layers_of_line("residual 16 repeat=3") == 3);
  CHECK(models::layers_of_line("residual 32 stride=2") == 1);
  CHECK_THROWS_WITH_AS(build(spec_of({"conv 4 3 repeat=1001", "flatten", "linear"})),
                       doctest::Contains("repeat is at most 1000"), Error);
  CHECK_THROWS_WITH_AS(build(spec_of({"flatten", "leaky_relu nan", "linear"})),
                       doctest::Contains("SLOPE must be a finite number, got 'nan'"), Error);
  CHECK_THROWS_WITH_AS(build(spec_of({"conv 4 3 repeat=0", "flatten", "linear"})),
                       doctest::Contains("repeat must be a whole number >= 1, got '0'"), Error);
  const ModelFile file("conv 4 3\nrelu repeat=x\n");
  CHECK_THROWS_WITH_AS(models::read_model_file(file.path()),
                       doctest::Contains("line 2 'relu repeat=x': repeat must be a whole number >= 1"),
                       Error);
}

TEST_CASE("model file: the bundled examples build and map CIFAR-sized images to the classes") {
  for (const char* name :
       {"small_mobilenet_v2.txt", "small_residual.txt", "small_se_mobilenet.txt", "tiny_vgg.txt"}) {
    CAPTURE(name);
    const models::NamedModel example = named((kExamples / name).string(), 3, 32, 10);
    CHECK(output_shape(*example.model, example.architecture) == Shape{2, 10});
  }
}

TEST_CASE("model file: every kind is listed with its form") {
  const std::vector<std::string> kinds = models::model_layer_kinds();
  CHECK(kinds.size() == 21);
  CHECK(kinds.front().starts_with("conv OUT KERNEL [stride=1] [padding=0|same]"));
}

}  // namespace models_model_file_test
