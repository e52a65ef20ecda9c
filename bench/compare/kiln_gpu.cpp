// kiln's side of the GPU comparison (scripts/compare-gpu.sh): trains one model of the zoo on cuda:0 on a
// random batch, as train/trainer.cpp trains (forward in fp32 or in bf16 mixed precision, cross-entropy,
// backward, update, each loss read back a step late through train/loss_readback.hpp), with
// bench/training_step_bench.cpp's recipe (SGD, learning rate 0.01, momentum 0.9, weight decay 1e-4), and
// prints one JSON object on stdout (progress goes to stderr):
//
//   {"program": "kiln", "device": "cuda:0: NVIDIA H200 (sm_90, 139.8 GiB)", "batch": 128, ...,
//    "results": [{"kind": "train_step", "model": "resnet20", "precision": "fp32", "status": "ok",
//                 "images_per_s": 9000.0, "ms_per_step": 14.2, "peak_bytes": 123456789, ...},
//                {"kind": "train_step", "model": "resnet20", "precision": "bf16", "status": "ok", ...}]}
//
//   ./build/compare_kiln_gpu --model resnet20 [--batch 128] [--warmup 10] [--steps 50] [--rounds 5]
//                            [--budget 30] [--precision fp32|bf16|both] [--cuda-conv measured|library|FILE]
//                            [--cuda-graphs off|on|both] [--memory-format nchw|channels-last]
//
// --memory-format channels-last is `kiln train --memory-format channels-last`: the batch is stored
// channels-last, a layout the convolutions, batch norms and elementwise ops keep, so the tensor-core
// convolutions read their own layout with no transposes around them.
//
// --cuda-graphs is `kiln train --cuda-graphs` (train/graphed_step.hpp): each step's forward and backward pass
// captured once as a CUDA graph and launched as one unit, the SGD update outside it. "both" (the default)
// times each precision without graphs and then with them, the second measurement under "with_cuda_graphs" in
// the same row; a capture that fails says why there ("fallback") and its steps run without a graph.
//
// --cuda-conv is `kiln train --cuda-conv` (kernels/conv2d/cuda_tuning.hpp): measured (the default) lets the
// first warm-up step measure, once per convolution shape and pass, the library path (im2col + cuBLAS) against
// the kernel ladder's steps, and keeps the fastest that agrees; library always takes the library path; FILE,
// a cuda_conv_choices.json from a run, replays its choices (train/conv_choices.hpp), so two comparisons run
// the same kernels. Each row says which, and how many of its shapes and passes a ladder step serves.
//
// Peak memory is the device allocator's (cuda_caching_allocator(0).stats()), started over before each
// precision's run (reset_peak) after the previous run's tensors were freed, so each row's peak is its own:
// the weights, gradients, momentum buffers, one step's activations and kernel scratch. It is read after the
// timed steps; the warm-up steps allocate what the timed steps do, so it is the steady state's peak, plus
// (under --cuda-conv measured) the one-time scratch of measuring each shape: a few tensors of a layer's size.
// It counts the allocator's size classes (a request of 70 KiB holds an 80 KiB block), not bytes asked
// for, and nothing that cuBLAS allocates for itself.
//
// Timing: --warmup untimed steps, then rounds of --steps steps, each round timed on the host clock from
// an idle device to kiln::cuda::synchronize(0) after its last step; the median round gives images/s.
// Rounds stop after --rounds or once they have taken --budget seconds (at least one round runs).
//
// bf16 is `kiln train --precision bf16` (train/precision.hpp): the batch enters the model as bfloat16, the
// weights stay float32 and are cast per step, the logits return to float32 for the loss.
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "bench/compare/timing.hpp"
#include "core/caching_allocator.hpp"
#include "core/cuda_runtime.hpp"
#include "core/generator.hpp"
#include "core/ops.hpp"
#include "core/storage.hpp"
#include "kernels/conv2d/cuda_tuning.hpp"
#include "layers/module.hpp"
#include "models/architecture.hpp"
#include "optim/sgd.hpp"
#include "train/conv_choices.hpp"
#include "train/graphed_step.hpp"
#include "train/loss_readback.hpp"
#include "train/precision.hpp"

namespace {

using namespace kiln;
using namespace kiln::bench::compare;

constexpr int kDevice = 0;

struct GpuCompareOptions {
  std::string model = "resnet20";
  std::int64_t batch = 128;
  int warmup_steps = 10;
  int steps_per_round = 50;
  TimingOptions rounds{.warmup = 0, .max_reps = 5, .budget_s = 30.0};  // the warm-up is in steps, above
  bool fp32 = true, bf16 = true;
  std::string cuda_conv = "measured";  // measured | library | a choices file to replay
  bool without_graphs = true, with_graphs = true;
  bool channels_last = false;  // --memory-format channels-last
};

const char* const kUsage =
    "usage: compare_kiln_gpu --model NAME [--batch 128] [--warmup 10] [--steps 50] [--rounds 5] "
    "[--budget 30] [--precision fp32|bf16|both] [--cuda-conv measured|library|FILE] "
    "[--cuda-graphs off|on|both] [--memory-format nchw|channels-last]";

// std::stoll's own error says only "stoll": this one names the flag.
long long integer_value(const std::string& flag, const std::string& value) {
  std::size_t used = 0;
  long long number = 0;
  try {
    number = std::stoll(value, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != value.size())
    throw std::invalid_argument(flag + " takes a whole number, not " + value);
  return number;
}

double decimal_value(const std::string& flag, const std::string& value) {
  std::size_t used = 0;
  double number = 0.0;
  try {
    number = std::stod(value, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != value.size()) throw std::invalid_argument(flag + " takes a number, not " + value);
  return number;
}

GpuCompareOptions parse_gpu_options(int argc, char** argv) {
  GpuCompareOptions options;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "-h" || flag == "--help") {
      std::printf("%s\n", kUsage);
      std::exit(0);
    }
    if (i + 1 >= argc) throw std::invalid_argument(flag + " needs a value; " + kUsage);
    const std::string value = argv[++i];
    if (flag == "--model") {
      options.model = value;
    } else if (flag == "--batch") {
      options.batch = integer_value(flag, value);
    } else if (flag == "--warmup") {
      options.warmup_steps = static_cast<int>(integer_value(flag, value));
    } else if (flag == "--steps") {
      options.steps_per_round = static_cast<int>(integer_value(flag, value));
    } else if (flag == "--rounds") {
      options.rounds.max_reps = static_cast<int>(integer_value(flag, value));
    } else if (flag == "--budget") {
      options.rounds.budget_s = decimal_value(flag, value);
    } else if (flag == "--precision") {
      if (value != "fp32" && value != "bf16" && value != "both")
        throw std::invalid_argument("--precision takes fp32, bf16 or both, not " + value);
      options.fp32 = value != "bf16";
      options.bf16 = value != "fp32";
    } else if (flag == "--cuda-conv") {
      options.cuda_conv = value;  // a file is checked when it is replayed
    } else if (flag == "--memory-format") {
      if (value != "nchw" && value != "channels-last")
        throw std::invalid_argument("--memory-format takes nchw or channels-last, not " + value);
      options.channels_last = value == "channels-last";
    } else if (flag == "--cuda-graphs") {
      if (value != "off" && value != "on" && value != "both")
        throw std::invalid_argument("--cuda-graphs takes off, on or both, not " + value);
      options.without_graphs = value != "on";
      options.with_graphs = value != "off";
    } else {
      throw std::invalid_argument("unknown option " + flag + "; " + kUsage);
    }
  }
  if (options.batch < 1 || options.warmup_steps < 0 || options.steps_per_round < 1 ||
      options.rounds.max_reps < 1 || options.rounds.budget_s < 0) {
    throw std::invalid_argument("--batch, --steps and --rounds must be positive; --warmup and --budget >= 0");
  }
  return options;
}

double mebibytes(std::size_t bytes) { return static_cast<double>(bytes) / (1024.0 * 1024.0); }

// How many of the convolution shapes and passes measured for `precision` a ladder step serves.
std::int64_t served_by_ladder(train::Precision precision) {
  const std::string element_type = precision == train::Precision::BFloat16 ? "bfloat16" : "float";
  std::int64_t count = 0;
  for (const kernels::cuda::ConvChoice& choice : kernels::cuda::conv_choices())
    count += choice.element_type == element_type && choice.chosen != kernels::cuda::kLibraryCandidate;
  return count;
}

// The training steps of one model on cuda:0 in `precision`: throughput, peak device memory, and the loss
// before and after the timed steps (a sanity check: it must stay finite, and on a fixed batch it usually
// falls).
nlohmann::json time_training(const GpuCompareOptions& options, train::Precision precision, bool graphs) {
  const std::string precision_name(train::precision_name(precision));
  const Device device = Device::cuda(kDevice);
  cuda_caching_allocator(kDevice).reset_peak();  // the previous precision's tensors are freed by now
  Generator initialization(1);
  const layers::ModulePtr model = models::build_model({options.model, 3, 32, 32, 10}, initialization);
  model->to(device);  // before the optimizer, so its momentum buffers are created on the device
  model->train();
  optim::Sgd optimizer(model->named_parameters(), {.lr = 0.01, .momentum = 0.9, .weight_decay = 1e-4});

  // One batch, on the device before the clock starts: the comparison is of compute, not of input copies
  // (train/device_batches.hpp overlaps those with the previous step in real training).
  Generator data(2);
  Tensor images = Tensor::randn({options.batch, 3, 32, 32}, DType::Float32, &data).to(device);
  if (options.channels_last) images = images.channels_last();  // as the trainer's batches arrive
  std::vector<std::int64_t> label_values(static_cast<std::size_t>(options.batch));
  for (std::size_t i = 0; i < label_values.size(); ++i) label_values[i] = static_cast<std::int64_t>(i % 10);
  const Tensor labels = Tensor::from_vector(label_values, {options.batch}).to(device);

  // As the trainer: each loss comes back behind its step's work and is read after the next step is queued,
  // so the host never waits for the device between steps.
  train::LossReadback losses(device);
  std::optional<std::uint64_t> previous;
  double loss_value = 0.0;
  const train::GraphedStep::Pass pass = [&](const std::vector<Tensor>& inputs) {
    const Tensor loss = cross_entropy(train::forward_logits(*model, inputs[0], precision), inputs[1]);
    optimizer.zero_grad();
    loss.backward();
    return std::vector<Tensor>{loss};
  };
  std::optional<train::GraphedStep> graphed;
  if (graphs) graphed.emplace(kDevice, model->parameters(), pass);
  const auto step = [&] {
    const Tensor loss = graphed ? graphed->run({images, labels})[0] : pass({images, labels})[0];
    const std::uint64_t ticket = losses.start(loss);
    optimizer.step();
    if (previous) loss_value = losses.value(*previous);
    previous = ticket;
  };
  for (int i = 0; i < options.warmup_steps; ++i) step();
  cuda::synchronize(kDevice);  // rounds start on an idle device
  const double loss_after_warmup = loss_value;

  const Timing round = time_median(options.rounds, [&] {
    for (int i = 0; i < options.steps_per_round; ++i) step();
    cuda::synchronize(kDevice);  // the last step's backward and update have run when the clock is read
  });
  const CachingAllocator::Stats memory = cuda_caching_allocator(kDevice).stats();

  const double ms_per_step = round.median_ms / options.steps_per_round;
  const double images_per_s = static_cast<double>(options.batch) / ms_per_step * 1e3;
  std::fprintf(stderr, "kiln: %s %s%s %9.3f ms/step  %10.1f images/s  peak %8.1f MiB  loss %.4f -> %.4f\n",
               options.model.c_str(), precision_name.c_str(), graphs ? " graphs" : "", ms_per_step,
               images_per_s, mebibytes(memory.peak_in_use_bytes), loss_after_warmup, loss_value);
  nlohmann::json row = {{"kind", "train_step"},
                        {"model", options.model},
                        {"precision", precision_name},
                        {"status", "ok"},
                        {"parameters", model->parameter_count()},
                        {"images_per_s", images_per_s},
                        {"ms_per_step", ms_per_step},
                        {"min_ms_per_step", round.min_ms / options.steps_per_round},
                        {"rounds", round.reps},
                        {"steps_per_round", options.steps_per_round},
                        {"peak_bytes", memory.peak_in_use_bytes},
                        {"peak_scope",
                         "since the process started (one model per process), read after the "
                         "timed steps; allocator size classes"},
                        {"in_use_bytes_at_end", memory.in_use_bytes},
                        {"cached_bytes_at_end", memory.cached_bytes},
                        {"cuda_conv", options.cuda_conv},
                        {"memory_format", options.channels_last ? "channels-last" : "nchw"},
                        {"conv_passes_served_by_ladder", served_by_ladder(precision)},
                        {"cuda_graphs", graphed && graphed->captured()}};
  if (graphed && graphed->fallback_reason()) row["fallback"] = *graphed->fallback_reason();
  // The timings stand either way (NaNs cost the same arithmetic), but a loss that is not finite on a fixed
  // batch at this learning rate points at a wrong kernel: the table shows the warning. JSON has no NaN,
  // so such a loss is written as null.
  if (!std::isfinite(loss_after_warmup) || !std::isfinite(loss_value)) row["warning"] = "non-finite loss";
  row["loss_after_warmup"] = std::isfinite(loss_after_warmup) ? nlohmann::json(loss_after_warmup) : nullptr;
  row["loss_at_end"] = std::isfinite(loss_value) ? nlohmann::json(loss_value) : nullptr;
  return row;
}

}  // namespace

int main(int argc, char** argv) try {
  const GpuCompareOptions options = parse_gpu_options(argc, argv);
  cuda::require_device(kDevice);  // a clear error, before any work, where there is no GPU
  kernels::cuda::set_conv_policy(options.cuda_conv == "library" ? kernels::cuda::ConvPolicy::Library
                                                                : kernels::cuda::ConvPolicy::Measured);
  if (options.cuda_conv != "measured" && options.cuda_conv != "library") {
    const std::size_t replayed = train::replay_conv_choices(options.cuda_conv, kDevice);
    std::fprintf(stderr, "kiln: %zu convolution choices replayed from %s\n", replayed,
                 options.cuda_conv.c_str());
  }
  const std::string device = Device::cuda(kDevice).str() + ": " + cuda::device_description(kDevice);
  std::fprintf(stderr, "kiln: %s on %s, batch %lld\n", options.model.c_str(), device.c_str(),
               static_cast<long long>(options.batch));

  bool failed = false;
  nlohmann::json results = nlohmann::json::array();
  for (const train::Precision precision : {train::Precision::Float32, train::Precision::BFloat16}) {
    if (!(precision == train::Precision::Float32 ? options.fp32 : options.bf16)) continue;
    const std::string precision_name(train::precision_name(precision));
    try {
      nlohmann::json row = time_training(options, precision, options.with_graphs && !options.without_graphs);
      if (options.with_graphs && options.without_graphs) {
        nlohmann::json with_graphs = time_training(options, precision, true);
        failed = failed || with_graphs.contains("warning") || with_graphs.contains("fallback");
        row["with_cuda_graphs"] = std::move(with_graphs);
      }
      failed = failed || row.contains("warning") || row.contains("fallback");
      results.push_back(std::move(row));
    } catch (const std::exception& error) {
      // Reported in the table rather than aborting the comparison: a kernel that fails on the device says
      // so here with a kiln::Error naming it.
      std::fprintf(stderr, "kiln: %s %s failed: %s\n", options.model.c_str(), precision_name.c_str(),
                   error.what());
      results.push_back({{"kind", "train_step"},
                         {"model", options.model},
                         {"precision", precision_name},
                         {"status", "failed"},
                         {"error", error.what()}});
      failed = true;
    }
  }

  const nlohmann::json report = {{"program", "kiln"},
                                 {"device", device},
                                 {"batch", options.batch},
                                 {"warmup_steps", options.warmup_steps},
                                 {"steps_per_round", options.steps_per_round},
                                 {"max_rounds", options.rounds.max_reps},
                                 {"budget_s", options.rounds.budget_s},
                                 {"results", results}};
  std::printf("%s\n", report.dump().c_str());
  std::fflush(stdout);  // the report is out even if tearing down a faulted CUDA context aborts the process
  return failed ? 1 : 0;
} catch (const std::exception& error) {
  std::fprintf(stderr, "compare_kiln_gpu: %s\n", error.what());
  return 1;
}
