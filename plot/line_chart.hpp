// LineChart: curves against a shared x axis (epochs), as kiln draws a run's loss and accuracy.
//
//   +--------------------------------------------+
//   |                 title                      |
//   |  1.0 +-----------------------------------+ |
//   |      |   ____________        [legend]    | |
//   |  0.5 |  /                                | |
//   |      | /                                 | |
//   |  0.0 +-----------------------------------+ |
//   |      1      2      3      4      5         |
//   |                 x label                    |
//   +--------------------------------------------+
//
// Axis ranges come from the data (nice_ticks), unless y_range fixes them (accuracy in [0, 1]). Points are
// joined by straight lines and marked with a dot when there are few of them; a series with NaN points
// skips them.
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "plot/canvas.hpp"

namespace kiln::plot {

struct Series {
  std::string name;
  Color color;
  std::vector<double> x, y;  // the same length
};

struct LineChart {
  std::string title, x_label, y_label;
  std::vector<Series> series;
  std::optional<std::pair<double, double>> y_range;  // fixed y axis, else fitted to the data
};

// The plot's colours, distinct and readable on white (a blue, an orange, a green, a red, ...).
Color series_color(int index);

// Draws the chart on a new canvas. Throws kiln::Error when a series' x and y differ in length or when no
// series has a finite point.
Canvas draw(const LineChart& chart, int width = 960, int height = 600);

}  // namespace kiln::plot
