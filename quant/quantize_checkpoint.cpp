#include "quant/quantize_checkpoint.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "core/autograd.hpp"
#include "core/error.hpp"
#include "core/ops.hpp"
#include "data/loader.hpp"
#include "data/shuffle.hpp"
#include "quant/calibration.hpp"

namespace kiln::quant {
namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

data::LoaderOptions loader_options(const QuantizeOptions& options) {
  data::LoaderOptions loader =
      data::LoaderOptions::in_order(options.batch_size, options.loader_threads, options.strict);
  loader.cache_decoded = false;  // each image is read once
  return loader;
}

// A seeded sample of `count` training images, in the folder's order.
data::ImageFolder calibration_sample(const data::ImageFolder& train, const QuantizeOptions& options) {
  std::vector<std::size_t> order =
      data::seeded_permutation(train.size(), {options.seed, data::kCalibrationSampleStream, 0});
  order.resize(std::min(order.size(),
                        static_cast<std::size_t>(std::max<std::int64_t>(options.calibration_images, 1))));
  std::sort(order.begin(), order.end());
  return train.subset(order);
}

double max_abs_difference(const Tensor& a, const Tensor& b) {
  const std::vector<float> x = a.contiguous().to_vector<float>(), y = b.contiguous().to_vector<float>();
  double largest = 0;
  for (std::size_t i = 0; i < x.size(); ++i)
    largest = std::max(largest, std::abs(static_cast<double>(x[i]) - y[i]));
  return largest;
}

double largest_magnitude(const Tensor& a) {
  double largest = 0;
  for (const float v : a.contiguous().to_vector<float>())
    largest = std::max(largest, std::abs(static_cast<double>(v)));
  return largest;
}

std::vector<std::int64_t> predictions(const Tensor& logits) {
  return argmax(logits, 1).to_vector<std::int64_t>();
}

}  // namespace

QuantizeResult quantize_checkpoint(const train::LoadedModel& loaded, const std::filesystem::path& source,
                                   const data::DataSplits& splits, const QuantizeOptions& options,
                                   const QuantizeProgress& progress) {
  KILN_CHECK(options.batch_size >= 1 && options.calibration_images >= 1,
             "quantize: the batch size and the calibration image count must be positive");
  train::check_same_classes(loaded, splits.train);
  NoGradGuard no_grad;
  loaded.model->eval();
  const data::Preprocessing& pre = loaded.preprocessing;
  const InferenceProgram program = lower_for_inference(*loaded.model, {pre.channels, pre.height, pre.width});

  // Calibration, checking the lowering on the first batch.
  QuantizeResult result;
  const data::ImageFolder sample = calibration_sample(splits.train, options);
  data::DataLoader calibration_loader(sample, pre, loader_options(options));
  Calibrator calibrator(program);
  calibration_loader.start_epoch(0);
  while (std::optional<data::Batch> batch = calibration_loader.next()) {
    const bool first_batch = calibrator.images() == 0;
    const Tensor program_logits = calibrator.observe(batch->images);
    if (first_batch) {
      const Tensor logits = (*loaded.model)(batch->images);
      result.lowering_error = max_abs_difference(program_logits, logits);
      const double scale = std::max(1.0, largest_magnitude(logits));
      KILN_CHECK(result.lowering_error <= 1e-3 * scale,
                 "quantize: the lowered program's logits differ from the model's by ", result.lowering_error,
                 " (a kiln bug: please report it with the checkpoint)");
    }
    if (progress) progress("calibrating", calibrator.images(), static_cast<std::int64_t>(sample.size()));
  }
  result.calibration_images = calibrator.images();
  result.model = QuantizedModel::quantize(program, calibrator.ranges());

  for (const char* key : {"architecture", "classes", "preprocessing", "task", "thresholds"}) {
    if (loaded.header.contains(key)) result.header[key] = loaded.header[key];
  }
  result.header["source_checkpoint"] = source.string();
  result.header["calibration"] = {{"method", "min-max"},
                                  {"images", result.calibration_images},
                                  {"seed", options.seed},
                                  {"data", splits.train.root().string()}};

  // discover_splits has checked that the test split lists the training split's classes.
  if (!options.compare || !splits.test) return result;
  data::DataLoader test_loader(*splits.test, pre, loader_options(options));
  QuantizeComparison comparison;
  comparison.batch_size = options.batch_size;
  std::int64_t float_correct = 0, int8_correct = 0, agreeing = 0;
  const std::int64_t total = static_cast<std::int64_t>(splits.test->size());
  test_loader.start_epoch(0);
  while (std::optional<data::Batch> batch = test_loader.next()) {
    Clock::time_point start = Clock::now();
    const Tensor float_logits = (*loaded.model)(batch->images);
    comparison.float32.seconds += seconds_since(start);
    start = Clock::now();
    const Tensor int8_logits = result.model.forward(batch->images);
    comparison.int8.seconds += seconds_since(start);
    const std::vector<std::int64_t> labels = batch->labels.to_vector<std::int64_t>();
    const std::vector<std::int64_t> float_classes = predictions(float_logits),
                                    int8_classes = predictions(int8_logits);
    for (std::size_t i = 0; i < labels.size(); ++i) {
      float_correct += float_classes[i] == labels[i];
      int8_correct += int8_classes[i] == labels[i];
      agreeing += float_classes[i] == int8_classes[i];
    }
    comparison.images += static_cast<std::int64_t>(labels.size());
    if (progress) progress("comparing", comparison.images, total);
  }
  KILN_CHECK(comparison.images > 0, "quantize: no test image of ", splits.test->root().string(),
             " could be read");
  const auto fraction = [&](std::int64_t count) {
    return static_cast<double>(count) / static_cast<double>(comparison.images);
  };
  comparison.float32.accuracy = fraction(float_correct);
  comparison.int8.accuracy = fraction(int8_correct);
  comparison.agreement = fraction(agreeing);
  result.comparison = comparison;
  return result;
}

}  // namespace kiln::quant
