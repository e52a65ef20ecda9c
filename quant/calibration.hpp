// Calibration: the range of every value of an inference program over a set of representative images
// (a few hundred training images), from which each value's u8 quantization is chosen.
//
//   Calibrator calibrator(program);
//   for (const Tensor& batch : batches) calibrator.observe(batch);   // images [N, C, H, W], preprocessed
//   std::vector<ValueRange> ranges = calibrator.ranges();
//
// The range is the minimum and maximum seen (min-max calibration): every calibration activation is
// representable, and the step between levels is (max - min) / 255.
#pragma once

#include <cstdint>
#include <limits>
#include <vector>

#include "core/tensor.hpp"
#include "quant/inference_program.hpp"

namespace kiln::quant {

struct ValueRange {
  float low = std::numeric_limits<float>::infinity();
  float high = -std::numeric_limits<float>::infinity();
  bool empty() const { return low > high; }
};

class Calibrator {
 public:
  explicit Calibrator(const InferenceProgram& program);

  // Runs the program in float on `images`, widens each value's range by what it computed and returns the
  // program's logits [N, classes]. Throws when a value is not finite (NaN or infinite activations cannot
  // be quantized: the model is broken).
  Tensor observe(const Tensor& images);

  std::int64_t images() const { return images_; }
  // One range per program value; throws when nothing was observed.
  const std::vector<ValueRange>& ranges() const;

 private:
  const InferenceProgram& program_;
  std::vector<ValueRange> ranges_;
  std::int64_t images_ = 0;
};

}  // namespace kiln::quant
