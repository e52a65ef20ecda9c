#include "quant/calibration.hpp"

#include <algorithm>
#include <cmath>

#include "core/error.hpp"

namespace kiln::quant {

Calibrator::Calibrator(const InferenceProgram& program) : program_(program), ranges_(program.values.size()) {}

Tensor Calibrator::observe(const Tensor& images) {
  Tensor logits = run_float(program_, images, [&](int value, const Tensor& tensor) {
    const std::vector<float> elements = tensor.contiguous().to_vector<float>();
    ValueRange& range = ranges_[static_cast<std::size_t>(value)];
    for (const float v : elements) {
      KILN_CHECK(std::isfinite(v), "calibration: value ", value, " holds a non-finite activation (", v,
                 "): the model's weights or the images are broken");
      range.low = std::min(range.low, v);
      range.high = std::max(range.high, v);
    }
  });
  images_ += images.shape()[0];
  return logits;
}

const std::vector<ValueRange>& Calibrator::ranges() const {
  KILN_CHECK(images_ > 0, "calibration: no images were observed");
  return ranges_;
}

}  // namespace kiln::quant
