// Mixed precision (--precision bf16): bfloat16 activations, float32 master weights and gradients, float32
// logits. On the CPU the bfloat16 ops run (the conv and GEMM kernels widen to float and round once), so the
// whole path is checked everywhere; the GPU cases skip where there is no GPU.
//
// bfloat16 keeps 8 significant bits, so a bf16 forward through twenty layers differs from the fp32 one by a
// few percent of an activation's size. The comparisons below are therefore relative and aggregate: the
// cosine similarity of whole gradient tensors, and logits within a tolerance scaled to their spread.
//
// Training-mode batch normalization amplifies the rounding of its input: it subtracts the batch mean, and
// where a channel's values differ by little next to their mean, x - mean keeps few of bfloat16's 8 bits.
// MobileNet on 32x32 images ends in 2x2 planes whose depthwise outputs are such channels: at
// initialization its bf16 training-mode logits differ from fp32's by about 20% of their range (1% in eval
// mode), as they would under PyTorch's autocast, whose batch norm also reads the bfloat16 activation. So
// MobileNet is compared in eval mode, and the gradient comparison covers LeNet-5 and ResNet-20, with batch
// norm's own parameters held together (check_bf16_step_tracks_fp32).
#include "train/precision.hpp"

#include <doctest/doctest.h>

#include <cmath>
#include <filesystem>
#include <numeric>
#include <string>
#include <vector>

#include "core/generator.hpp"
#include "core/ops.hpp"
#include "layers/compute_dtype.hpp"
#include "layers/conv2d.hpp"
#include "models/architecture.hpp"
#include "tests/support/cuda_testing.hpp"
#include "tests/support/matches_reference.hpp"
#include "tests/support/scratch_folder.hpp"
#include "tests/support/tiny_training.hpp"
#include "tests/support/training_observers.hpp"
#include "train/checkpoint.hpp"
#include "train/evaluate.hpp"
#include "train/model_io.hpp"
#include "train/trainer.hpp"

namespace train_precision_test {

using namespace kiln;
namespace fs = std::filesystem;

namespace {

// cos of the angle between two vectors (or tensors seen as vectors): 1 when one is a positive multiple of
// the other.
double cosine_similarity(const std::vector<double>& x, const std::vector<double>& y) {
  const double dot = std::inner_product(x.begin(), x.end(), y.begin(), 0.0);
  const double norms = std::sqrt(std::inner_product(x.begin(), x.end(), x.begin(), 0.0) *
                                 std::inner_product(y.begin(), y.end(), y.begin(), 0.0));
  return norms == 0.0 ? (dot == 0.0 ? 1.0 : 0.0) : dot / norms;
}
double cosine_similarity(const Tensor& a, const Tensor& b) {
  return cosine_similarity(a.to_vector<double>(), b.to_vector<double>());
}

// A batch norm's scale or shift: the zoo names its batch-norm modules bn1, bn2, ... ("stage1.0.bn2.bias").
bool is_batch_norm_parameter(const std::string& name) {
  const std::size_t module_end = name.rfind('.');
  if (module_end == std::string::npos) return false;
  const std::size_t before = name.rfind('.', module_end - 1);
  const std::size_t module_start = before == std::string::npos ? 0 : before + 1;
  return name.compare(module_start, 2, "bn") == 0;
}

double max_abs(const Tensor& t) {
  double largest = 0.0;
  for (const double v : t.to_vector<double>()) largest = std::max(largest, std::fabs(v));
  return largest;
}

struct StepResult {
  Tensor logits;                  // float32 [N, classes]
  std::vector<Tensor> gradients;  // one per parameter, in named_parameters order
};

// The model's logits and the gradients of a cross-entropy loss, in `precision`, on `device`.
StepResult forward_backward(layers::Module& model, const Tensor& images, const Tensor& labels,
                            train::Precision precision) {
  const Device device = model.device();
  for (auto& [name, parameter] : model.named_parameters()) parameter.set_grad(Tensor());
  StepResult result;
  result.logits = train::forward_logits(model, images.to(device), precision);
  cross_entropy(result.logits, labels.to(device)).backward();
  for (const auto& [name, parameter] : model.named_parameters()) result.gradients.push_back(parameter.grad());
  return result;
}

// A batch norm's scale and shift each get a sum over the batch of products that mostly cancel (the input
// gradient's part along x_hat, and the rest), so one channel's few values turn with the activations'
// rounding more than any weight does: ResNet-20's, at batch 4, measured down to 0.84 by themselves on two
// Zen 5 cores (AVX-512) where the AMX convolutions of a Sapphire Rapids had them at 0.93, and 0.89 to 0.93
// at batches 8 to 32. So they are held to min_cosine together, as one vector, and each to this on its own.
constexpr double kBatchNormTensorMinCosine = 0.7;

// The bf16 step agrees with the fp32 step of the same model: logits within 5% of their range plus a little,
// each gradient tensor pointing the same way (cosine >= min_cosine; batch norm's, above), every gradient
// float32.
void check_bf16_step_tracks_fp32(layers::Module& model, double min_cosine) {
  Generator data_generator(3);
  const Tensor images = Tensor::randn({4, 3, 32, 32}, DType::Float32, &data_generator);
  const Tensor labels = Tensor::from_vector<std::int64_t>({0, 3, 5, 9}, {4});
  const StepResult full = forward_backward(model, images, labels, train::Precision::Float32);
  const StepResult mixed = forward_backward(model, images, labels, train::Precision::BFloat16);

  CHECK(mixed.logits.dtype() == DType::Float32);
  const double spread = max_abs(full.logits);
  const std::vector<double> a = mixed.logits.to_vector<double>(), e = full.logits.to_vector<double>();
  for (std::size_t i = 0; i < a.size(); ++i) {
    INFO("logit ", i, ": bf16 ", a[i], ", fp32 ", e[i]);
    CHECK(std::fabs(a[i] - e[i]) <= 0.05 * spread + 1e-3);
  }

  const auto named = model.named_parameters();
  std::vector<double> batch_norm_mixed, batch_norm_full;  // every batch-norm gradient, end to end
  for (std::size_t i = 0; i < named.size(); ++i) {
    INFO(named[i].first);
    REQUIRE(mixed.gradients[i].defined());
    CHECK(named[i].second.dtype() == DType::Float32);
    CHECK(mixed.gradients[i].dtype() == DType::Float32);
    const double cosine = cosine_similarity(mixed.gradients[i], full.gradients[i]);
    if (!is_batch_norm_parameter(named[i].first)) {
      CHECK(cosine >= min_cosine);
      continue;
    }
    CHECK(cosine >= kBatchNormTensorMinCosine);
    for (const double v : mixed.gradients[i].to_vector<double>()) batch_norm_mixed.push_back(v);
    for (const double v : full.gradients[i].to_vector<double>()) batch_norm_full.push_back(v);
  }
  CHECK(cosine_similarity(batch_norm_mixed, batch_norm_full) >= min_cosine);
}

TEST_CASE("precision: --precision names parse, and anything else is refused naming the flag") {
  CHECK(train::parse_precision("fp32") == train::Precision::Float32);
  CHECK(train::parse_precision("bf16") == train::Precision::BFloat16);
  CHECK(train::precision_name(train::Precision::BFloat16) == "bf16");
  for (const char* bad : {"fp16", "bfloat16", "BF16", ""}) {
    INFO(bad);
    CHECK_THROWS_WITH_AS(train::parse_precision(bad), doctest::Contains("--precision"), Error);
  }
}

TEST_CASE(
    "precision: a layer computes with a bfloat16 copy of its float32 weight, whose gradient lands in "
    "float32") {
  Generator generator(5);
  layers::Conv2d conv(3, 4, 3, generator, {.padding = 1});
  const Tensor weight = conv.named_parameters().front().second;
  CHECK(layers::as_compute_dtype(weight, Tensor::zeros({1}, DType::BFloat16)).dtype() == DType::BFloat16);
  CHECK(layers::as_compute_dtype(weight, Tensor::zeros({1})).same(weight));
  CHECK(layers::as_compute_dtype(weight, Tensor::zeros({1}, DType::Float64)).same(weight));  // the op's error
  CHECK_FALSE(layers::as_compute_dtype(Tensor(), Tensor::zeros({1}, DType::BFloat16)).defined());

  const Tensor x = Tensor::randn({2, 3, 5, 5}, DType::Float32, &generator).to(DType::BFloat16);
  const Tensor y = conv(x);
  CHECK(y.dtype() == DType::BFloat16);
  sum(y.to(DType::Float32)).backward();
  REQUIRE(weight.grad().defined());
  CHECK(weight.grad().dtype() == DType::Float32);
  CHECK(max_abs(weight.grad()) > 0.0);
}

// LeNet-5 (no batch norm) must track closely; ResNet-20 through 19 batch norms less so (see the top).
constexpr double kLenetMinCosine = 0.99, kResnetMinCosine = 0.9;

TEST_CASE("precision: a bf16 training step of LeNet-5 and ResNet-20 tracks the fp32 step on the CPU") {
  for (const auto& [name, min_cosine] :
       {std::pair{"lenet5", kLenetMinCosine}, {"resnet20", kResnetMinCosine}}) {
    INFO(name);
    Generator generator(7);
    const layers::ModulePtr model = models::build_model({name, 3, 32, 32, 10}, generator);
    check_bf16_step_tracks_fp32(*model, min_cosine);
  }
}

// Every zoo family's bf16 forward in eval mode (batch norm through its running statistics) gives fp32's
// logits to within 2% of their range.
void check_bf16_eval_tracks_fp32(layers::Module& model) {
  model.eval();
  Generator data_generator(3);
  const Tensor images = Tensor::randn({4, 3, 32, 32}, DType::Float32, &data_generator).to(model.device());
  NoGradGuard no_grad;
  const Tensor full = train::forward_logits(model, images, train::Precision::Float32);
  const Tensor mixed = train::forward_logits(model, images, train::Precision::BFloat16);
  const auto report = testing::matches_reference(mixed, full, {.atol = 0.02 * max_abs(full), .rtol = 0.0});
  CHECK_MESSAGE(report.ok, report.message);
}

TEST_CASE("precision: a bf16 forward of each zoo family in eval mode gives fp32's logits on the CPU") {
  for (const char* name : {"lenet5", "resnet20", "mobilenet", "vgg11"}) {
    INFO(name);
    Generator generator(7);
    const layers::ModulePtr model = models::build_model({name, 3, 32, 32, 10}, generator);
    check_bf16_eval_tracks_fp32(*model);
  }
}

TEST_CASE("precision: kiln train --precision bf16 trains, stores float32, and evaluates alike in fp32") {
  testing::ScratchFolder scratch("kiln-precision-test", "train");
  const fs::path data = testing::make_two_class_data(scratch.path() / "data", 12, 6);
  train::TrainConfig config = testing::tiny_lenet5_config(data, scratch.path() / "run", 4);
  config.precision = "bf16";
  config.epochs = 2;
  testing::Recorder observer;
  const train::TrainResult result = train::train(config, train::RunStart::Fresh, observer);
  CHECK(observer.plan.at("precision") == "bf16");
  REQUIRE(result.history.size() == 2);
  REQUIRE(result.history.back().validation);
  CHECK(std::isfinite(result.history.back().train_loss));

  // The float32 master weights and optimizer state are what is stored; no bfloat16 copy leaks in.
  const train::Checkpoint checkpoint = train::load_checkpoint(result.checkpoint);
  for (const auto& [name, tensor] : checkpoint.tensors) {
    INFO(name);
    CHECK(tensor.dtype() != DType::BFloat16);
    if (name.starts_with("model.")) CHECK(tensor.dtype() == DType::Float32);
  }

  // Evaluated in fp32, the checkpoint scores what the run scored in bf16, up to a sample whose two class
  // probabilities are close enough for bf16 rounding to swap them.
  const train::LoadedModel loaded = train::load_model(result.checkpoint);
  const data::ImageFolder test_folder = data::ImageFolder::scan(data / "test");
  data::DataLoader loader(test_folder, loaded.preprocessing, data::LoaderOptions::in_order(4, 0, false));
  const train::MetricsReport fp32_report = train::evaluate(*loaded.model, loader, 2);
  CHECK(std::fabs(fp32_report.accuracy - result.history.back().validation->accuracy) <= 1.0 / 12 + 1e-9);
  CHECK(fp32_report.loss == doctest::Approx(result.history.back().validation->loss).epsilon(0.05));

  // The precision is the process's choice: the run resumes in fp32.
  config.precision = "fp32";
  config.epochs = 3;
  const train::TrainResult resumed = train::train(config, train::RunStart::Resume, observer);
  CHECK(observer.plan.at("precision") == "fp32");
  CHECK(resumed.history.size() == 1);
}

TEST_CASE("cuda: a bf16 step on the GPU tracks the fp32 step") {
  if (!testing::have_gpu()) return;
  for (const auto& [name, min_cosine] :
       {std::pair{"lenet5", kLenetMinCosine}, {"resnet20", kResnetMinCosine}}) {
    INFO(name);
    Generator generator(7);
    const layers::ModulePtr model = models::build_model({name, 3, 32, 32, 10}, generator);
    model->to(Device::cuda());
    check_bf16_step_tracks_fp32(*model, min_cosine);
  }
  for (const char* name : {"lenet5", "resnet20", "mobilenet", "vgg11"}) {
    INFO(name);
    Generator generator(7);
    const layers::ModulePtr model = models::build_model({name, 3, 32, 32, 10}, generator);
    model->to(Device::cuda());
    check_bf16_eval_tracks_fp32(*model);
  }
}

TEST_CASE("cuda: kiln train --device cuda --precision bf16 trains and its checkpoint loads on the CPU") {
  if (!testing::have_gpu()) return;
  testing::ScratchFolder scratch("kiln-precision-test", "cuda");
  const fs::path data = testing::make_two_class_data(scratch.path() / "data", 12, 6);
  train::TrainConfig config = testing::tiny_lenet5_config(data, scratch.path() / "run", 4);
  config.device = "cuda";
  config.precision = "bf16";
  config.epochs = 2;
  testing::Recorder observer;
  const train::TrainResult result = train::train(config, train::RunStart::Fresh, observer);
  REQUIRE(result.history.size() == 2);
  CHECK(std::isfinite(result.history.back().train_loss));
  const train::LoadedModel loaded = train::load_model(result.checkpoint);
  CHECK(loaded.model->device() == Device::cpu());
}

}  // namespace

}  // namespace train_precision_test
