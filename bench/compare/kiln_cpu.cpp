// kiln's side of the CPU comparison (scripts/compare-cpu.sh): times, through kiln's public dispatch
// functions, each distinct convolution of ResNet-20 and the other layers of shapes.hpp (MobileNet's,
// LeNet-5's, strided layers of users' own models) in their three directions, a few SGEMMs, the inference
// forward pass and the whole training step of ResNet-20, the MobileNet-style net, the VGG-style net
// (vgg_small) and ResNet-18 (at the comparison's image size: on 32x32 images its last stage works on 1x1
// planes), the step in fp32, in bf16 and in bf16 with channels-last activations, and prints one JSON object
// on stdout (progress goes to stderr):
//
//   {"program": "kiln", "threads": 2, "batch": 128, "image_size": 32, "fp32_peak_gflops": 234.0,
//    "results": [{"kind": "conv", "shape": "16->16 3x3 s1 @32x32", "family": "resnet20",
//                 "direction": "forward", "layout": "nchw", "ms": 1.2, "gflops": 500.0, "reps": 10,
//                 "impl": "winograd4x4"}, ...]}
//
//   ./build/compare_kiln_cpu [--threads 2] [--batch 128] [--image-size 32] [--warmup 1] [--reps 10]
//                            [--budget 2] [--list-shapes]
//
// Inference rows ("resnet20 n1", "resnet20 n128"): the model in eval mode with gradients off, one float32
// forward pass over a batch of 1 (a single image's latency, as `kiln predict` sees it) and of --batch.
// The training step is the one train/trainer.cpp takes: forward, cross-entropy, backward, then SGD with
// momentum 0.9 and weight decay 1e-4, on random images and labels (the data does not change the work). In
// bf16 (shape "resnet20 bf16") the step is --precision bf16's: the batch enters the model as bfloat16 and the
// logits return to float32 before the loss (train/precision.hpp); PyTorch's row runs under torch.autocast.
#include <algorithm>
#include <cstdio>
#include <exception>
#include <nlohmann/json.hpp>
#include <vector>

#include "bench/compare/options.hpp"
#include "bench/compare/shapes.hpp"
#include "bench/support/aligned_floats.hpp"
#include "bench/support/peak.hpp"
#include "core/autograd.hpp"
#include "core/generator.hpp"
#include "core/ops.hpp"
#include "kernels/conv2d/algorithm.hpp"
#include "kernels/conv2d/conv2d.hpp"
#include "kernels/cpu_level.hpp"
#include "kernels/gemm/gemm.hpp"
#include "kernels/parallel.hpp"
#include "layers/module.hpp"
#include "models/architecture.hpp"
#include "optim/sgd.hpp"

namespace {

using namespace kiln;
using namespace kiln::bench::compare;

// Random values in [-1, 1): the kernels' speed does not depend on them, but NaNs or denormals would.
bench::AlignedFloats random_floats(std::int64_t count, Generator& generator) {
  const std::vector<float> values =
      Tensor::rand({count}, DType::Float32, &generator, -1.0, 1.0).to_vector<float>();
  return bench::AlignedFloats(values.begin(), values.end());
}

kernels::Conv2dGeometry geometry_of(const ConvShape& shape, std::int64_t batch) {
  kernels::Conv2dGeometry g;
  g.batch = batch;
  g.in_channels = shape.in_channels;
  g.in_height = g.in_width = shape.in_size;
  g.out_channels = shape.out_channels;
  g.kernel_h = g.kernel_w = shape.kernel;
  g.stride_h = g.stride_w = shape.stride;
  g.pad_h = g.pad_w = shape.padding;
  g.dilation_h = g.dilation_w = shape.dilation;
  g.groups = shape.groups;
  return g;
}

nlohmann::json time_conv_directions(const ConvShape& shape, const CompareOptions& options,
                                    Generator& generator) {
  const kernels::Conv2dGeometry g = geometry_of(shape, options.batch);
  const bench::AlignedFloats x = random_floats(g.batch * g.in_channels * g.in_height * g.in_width, generator);
  const bench::AlignedFloats w =
      random_floats(g.out_channels * g.in_channels_per_group() * g.kernel_h * g.kernel_w, generator);
  const bench::AlignedFloats gy =
      random_floats(g.batch * g.out_channels * g.out_height() * g.out_width(), generator);
  bench::AlignedFloats y(gy.size()), gx(x.size()), gw(w.size());
  const Device cpu = Device::cpu();

  nlohmann::json rows = nlohmann::json::array();
  // `impl` names the algorithm kernels/conv2d/algorithm.cpp chose for this pass, as oneDNN's rows name its.
  const auto record = [&](kernels::Conv2dDirection direction, const Timing& timing) {
    const std::string_view name = kernels::conv2d_direction_name(direction);
    const std::string_view algorithm =
        kernels::conv2d_algorithm_name(kernels::choose_conv2d_algorithm(g, direction, kernels::cpu_level()));
    rows.push_back({{"kind", "conv"},
                    {"shape", shape.name},
                    {"family", shape.family},
                    {"count", shape.count},
                    {"direction", name},
                    {"layout", "nchw"},
                    {"ms", timing.median_ms},
                    {"min_ms", timing.min_ms},
                    {"gflops", shape.flops(g.batch) / timing.median_ms * 1e-6},
                    {"reps", timing.reps},
                    {"impl", algorithm}});
    std::fprintf(stderr, "kiln: conv %-26s %-15s %10.3f ms  (%s)\n", shape.name.c_str(),
                 std::string(name).c_str(), timing.median_ms, std::string(algorithm).c_str());
  };
  using kernels::Conv2dDirection;
  record(Conv2dDirection::Forward, time_median(options.timing, [&] {
           kernels::conv2d_forward<float>(cpu, g, x.data(), w.data(), nullptr, y.data());
         }));
  record(Conv2dDirection::BackwardData, time_median(options.timing, [&] {
           kernels::conv2d_backward_data<float>(cpu, g, gy.data(), w.data(), gx.data());
         }));
  record(Conv2dDirection::BackwardWeight, time_median(options.timing, [&] {
           kernels::conv2d_backward_weight<float>(cpu, g, gy.data(), x.data(), gw.data());
         }));
  return rows;
}

nlohmann::json time_gemm(const GemmShape& shape, const CompareOptions& options, Generator& generator) {
  const bench::AlignedFloats a = random_floats(shape.m * shape.k, generator);
  const bench::AlignedFloats b = random_floats(shape.k * shape.n, generator);
  bench::AlignedFloats c(static_cast<std::size_t>(shape.m * shape.n));
  const kernels::GemmGeometry g{
      .m = shape.m, .n = shape.n, .k = shape.k, .lda = shape.k, .ldb = shape.n, .ldc = shape.n};
  const Timing timing = time_median(options.timing, [&] {
    kernels::gemm<float>(Device::cpu(), g, 1.0f, a.data(), b.data(), 0.0f, c.data());
  });
  std::fprintf(stderr, "kiln: sgemm %-22s %10.3f ms\n", shape.name.c_str(), timing.median_ms);
  return {{"kind", "gemm"},
          {"shape", shape.name},
          {"ms", timing.median_ms},
          {"min_ms", timing.min_ms},
          {"gflops", shape.flops() / timing.median_ms * 1e-6},
          {"reps", timing.reps}};
}

constexpr double kTrainingStepBudgetSeconds = 10.0;  // torch_cpu.py uses the same

// The zoo networks whose whole training step is timed (torch_cpu.py builds the same five), and the ways:
// fp32, bf16, and bf16 with channels-last activations (where the AMX convolutions run, on CPUs that have it).
const char* const kTrainingStepModels[] = {"resnet20", "mobilenet",    "vgg_small",
                                           "resnet18", "mobilenet_v2", "mobilenet_v3_small"};
struct StepPrecision {
  DType activations;
  bool channels_last;
  const char* suffix;  // of the row's shape
};
const StepPrecision kTrainingStepPrecisions[] = {{DType::Float32, false, ""},
                                                 {DType::BFloat16, false, " bf16"},
                                                 {DType::BFloat16, true, " bf16 channels-last"}};

// One training step of zoo model `name` on a random batch, as train/trainer.cpp writes it, with activations
// in `precision`'s dtype (float32, or bfloat16 for --precision bf16) and layout (--memory-format).
nlohmann::json time_training_step(const CompareOptions& options, const std::string& name,
                                  const StepPrecision& precision) {
  const std::int64_t size = options.image_size;
  Generator initialization(1);
  const layers::ModulePtr model = models::build_model({name, 3, size, size, 10}, initialization);
  model->train();
  const std::int64_t parameter_count = model->parameter_count();
  optim::Sgd optimizer(model->named_parameters(), {.lr = 0.1, .momentum = 0.9, .weight_decay = 1e-4});

  Generator data(2);
  const Tensor images = Tensor::randn({options.batch, 3, size, size}, DType::Float32, &data);
  const Tensor batch = precision.channels_last ? images.channels_last() : images;
  std::vector<std::int64_t> label_values(static_cast<std::size_t>(options.batch));
  for (std::size_t i = 0; i < label_values.size(); ++i) label_values[i] = static_cast<std::int64_t>(i % 10);
  const Tensor labels = Tensor::from_vector(label_values, {options.batch});

  // The headline number gets a longer budget than one kernel call: a few steps after the warm-up.
  TimingOptions timing_options = options.timing;
  timing_options.budget_s = std::max(timing_options.budget_s, kTrainingStepBudgetSeconds);
  const Timing timing = time_median(timing_options, [&] {
    const Tensor logits = (*model)(batch.to(precision.activations)).to(DType::Float32);
    const Tensor loss = cross_entropy(logits, labels);
    (void)loss.item();  // the trainer reads the loss every step
    optimizer.zero_grad();
    loss.backward();
    optimizer.step();
  });
  const double images_per_s = static_cast<double>(options.batch) / timing.median_ms * 1e3;
  const std::string shape = name + precision.suffix;
  std::fprintf(stderr, "kiln: %s training step %10.3f ms (%.1f images/s)\n", shape.c_str(), timing.median_ms,
               images_per_s);
  return {{"kind", "train_step"},         {"shape", shape},
          {"ms", timing.median_ms},       {"min_ms", timing.min_ms},
          {"images_per_s", images_per_s}, {"reps", timing.reps},
          {"parameters", parameter_count}};
}

// Inference: zoo model `name` in eval mode, gradients off, one forward pass over a random batch of `batch`
// images in float32, as `kiln predict` and `kiln eval` run it (batch 1: one image's latency). Timed runs:
// at least kInferenceReps within the budget, since one forward at batch 1 takes a millisecond or two.
constexpr int kInferenceReps = 50;  // torch_cpu.py uses the same

nlohmann::json time_inference(const CompareOptions& options, const std::string& name, std::int64_t batch) {
  const std::int64_t size = options.image_size;
  Generator initialization(1);
  const layers::ModulePtr model = models::build_model({name, 3, size, size, 10}, initialization);
  model->eval();
  Generator data(2);
  const Tensor images = Tensor::randn({batch, 3, size, size}, DType::Float32, &data);
  TimingOptions timing_options = options.timing;
  timing_options.max_reps = std::max(timing_options.max_reps, kInferenceReps);
  const NoGradGuard no_grad;
  const Timing timing = time_median(timing_options, [&] { (void)(*model)(images); });
  const double images_per_s = static_cast<double>(batch) / timing.median_ms * 1e3;
  const std::string shape = name + " n" + std::to_string(batch);
  std::fprintf(stderr, "kiln: %s inference %10.3f ms (%.1f images/s)\n", shape.c_str(), timing.median_ms,
               images_per_s);
  return {{"kind", "inference"},     {"shape", shape}, {"ms", timing.median_ms},
          {"min_ms", timing.min_ms}, {"batch", batch}, {"images_per_s", images_per_s},
          {"reps", timing.reps}};
}

}  // namespace

int main(int argc, char** argv) try {
  const CompareOptions options = parse_options(argc, argv);
  if (options.list_shapes) {
    nlohmann::json shapes = nlohmann::json::array();
    for (const ConvShape& shape : conv_shapes(options.image_size)) shapes.push_back(shape.to_json());
    std::printf("%s\n", shapes.dump().c_str());
    return 0;
  }
  kernels::set_compute_threads(options.threads);
  Generator generator(0);

  nlohmann::json results = nlohmann::json::array();
  for (const ConvShape& shape : conv_shapes(options.image_size)) {
    for (nlohmann::json& row : time_conv_directions(shape, options, generator))
      results.push_back(std::move(row));
  }
  for (const GemmShape& shape : gemm_shapes()) results.push_back(time_gemm(shape, options, generator));
  for (const char* name : kTrainingStepModels) {
    for (const std::int64_t batch : {std::int64_t{1}, options.batch})
      results.push_back(time_inference(options, name, batch));
  }
  for (const StepPrecision& precision : kTrainingStepPrecisions) {
    for (const char* name : kTrainingStepModels)
      results.push_back(time_training_step(options, name, precision));
  }

  const nlohmann::json report = {{"program", "kiln"},
                                 {"threads", kernels::compute_threads()},
                                 {"batch", options.batch},
                                 {"image_size", options.image_size},
                                 {"cpu_level", std::string(kernels::cpu_level_name(kernels::cpu_level()))},
                                 {"fp32_peak_gflops", kiln::bench::fp32_peak_gflops(options.threads)},
                                 {"results", results}};
  std::printf("%s\n", report.dump().c_str());
  return 0;
} catch (const std::exception& error) {
  std::fprintf(stderr, "compare_kiln_cpu: %s\n", error.what());
  return 1;
}
