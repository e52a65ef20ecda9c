#include "plot/ticks.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "core/error.hpp"

namespace kiln::plot {

Ticks nice_ticks(double low, double high, int target, double min_step) {
  KILN_CHECK(std::isfinite(low) && std::isfinite(high) && low <= high && target > 0,
             "plot: cannot place ticks on the range [", low, ", ", high, "]");
  if (low == high) {
    low -= 1;
    high += 1;
  }
  const double rough = (high - low) / target;
  const double power = std::pow(10.0, std::floor(std::log10(rough)));
  double step = 10 * power;
  for (const double multiple : {1.0, 2.0, 5.0}) {
    if (multiple * power >= rough) {
      step = multiple * power;
      break;
    }
  }
  step = std::max(step, min_step);
  Ticks ticks;
  ticks.step = step;
  ticks.low = std::floor(low / step) * step;
  ticks.high = std::ceil(high / step) * step;
  const auto count = static_cast<int>(std::lround((ticks.high - ticks.low) / step));
  for (int i = 0; i <= count; ++i) ticks.values.push_back(ticks.low + i * step);
  return ticks;
}

std::string tick_label(double value, double step) {
  const int decimals = std::max(0, static_cast<int>(-std::floor(std::log10(step) + 1e-9)));
  if (std::fabs(value) < step * 1e-6) value = 0;  // no "-0"
  char text[64];
  std::snprintf(text, sizeof text, "%.*f", decimals, value);
  return text;
}

}  // namespace kiln::plot
