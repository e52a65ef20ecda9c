// Axis ticks at "nice" values: steps of 1, 2 or 5 times a power of ten, the way people label axes, and
// labels with just enough decimals to tell neighbouring ticks apart.
#pragma once

#include <string>
#include <vector>

namespace kiln::plot {

struct Ticks {
  double low = 0, high = 1;  // the axis range: low <= every value <= high, both multiples of step
  double step = 1;
  std::vector<double> values;  // low, low + step, ..., high
};

// About `target` intervals covering [low, high] (equal ends are widened by one unit), with a step of at least
// min_step (1 for an axis of whole numbers such as epochs).
Ticks nice_ticks(double low, double high, int target = 5, double min_step = 0);

// value with the decimals `step` needs: 0.25 with step 0.05 -> "0.25", 40 with step 20 -> "40".
std::string tick_label(double value, double step);

}  // namespace kiln::plot
