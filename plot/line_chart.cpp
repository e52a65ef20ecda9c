#include "plot/line_chart.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/error.hpp"
#include "plot/chart_style.hpp"
#include "plot/ticks.hpp"

namespace kiln::plot {
namespace {

constexpr std::size_t kMaxMarkedPoints = 60;  // more points than this are drawn as a bare line

struct Extent {
  double low = std::numeric_limits<double>::infinity(), high = -std::numeric_limits<double>::infinity();
  void add(double v) {
    if (!std::isfinite(v)) return;
    low = std::min(low, v);
    high = std::max(high, v);
  }
  bool empty() const { return low > high; }
};

bool all_whole(const std::vector<Series>& series) {
  for (const Series& s : series) {
    for (double x : s.x) {
      if (std::isfinite(x) && x != std::floor(x)) return false;
    }
  }
  return true;
}

}  // namespace

Color series_color(int index) {
  static constexpr Color kPalette[] = {{31, 119, 180},  {255, 127, 14}, {44, 160, 44},   {214, 39, 40},
                                       {148, 103, 189}, {140, 86, 75},  {227, 119, 194}, {127, 127, 127}};
  return kPalette[static_cast<std::size_t>(index) % std::size(kPalette)];
}

Canvas draw(const LineChart& chart, int width, int height) {
  Extent x_extent, y_extent;
  for (const Series& s : chart.series) {
    KILN_CHECK(s.x.size() == s.y.size(), "plot '", chart.title, "': series '", s.name, "' has ", s.x.size(),
               " x values and ", s.y.size(), " y values");
    for (std::size_t i = 0; i < s.x.size(); ++i) {
      if (!std::isfinite(s.x[i]) || !std::isfinite(s.y[i])) continue;
      x_extent.add(s.x[i]);
      y_extent.add(s.y[i]);
    }
  }
  KILN_CHECK(!x_extent.empty(), "plot '", chart.title, "': no series has a finite point to draw");
  if (chart.y_range) {
    y_extent.low = chart.y_range->first;
    y_extent.high = chart.y_range->second;
  }
  const Ticks x_ticks = nice_ticks(x_extent.low, x_extent.high, 8, all_whole(chart.series) ? 1.0 : 0.0);
  const Ticks y_ticks = nice_ticks(y_extent.low, y_extent.high, 5);

  // Layout: the title on top, the y label above the axis, tick labels left of and under the plot area.
  const int text_height = Canvas::text_height("0", kChartTextScale);
  int widest_y_label = 0;
  for (double v : y_ticks.values)
    widest_y_label =
        std::max(widest_y_label, Canvas::text_width(tick_label(v, y_ticks.step), kChartTextScale));
  const int left = kChartPad + widest_y_label + kChartPad;
  const int top =
      kChartPad + Canvas::text_height(chart.title, kChartTitleScale) + kChartPad + text_height + kChartPad;
  const int right = width - 2 * kChartPad;
  const int bottom = height - (kChartPad + text_height + kChartPad + text_height + kChartPad);
  KILN_CHECK(right - left > 50 && bottom - top > 50, "plot '", chart.title, "': a ", width, "x", height,
             " canvas is too small");
  const auto px = [&](double x) {
    return left + (x - x_ticks.low) / (x_ticks.high - x_ticks.low) * (right - left);
  };
  const auto py = [&](double y) {
    return bottom - (y - y_ticks.low) / (y_ticks.high - y_ticks.low) * (bottom - top);
  };

  Canvas canvas(width, height);
  canvas.text((width - Canvas::text_width(chart.title, kChartTitleScale)) / 2, kChartPad, chart.title, kBlack,
              kChartTitleScale);
  canvas.text(kChartPad, top - kChartPad - text_height, chart.y_label, kAxis, kChartTextScale);
  canvas.text((left + right - Canvas::text_width(chart.x_label, kChartTextScale)) / 2,
              height - kChartPad - text_height, chart.x_label, kAxis, kChartTextScale);
  for (double v : y_ticks.values) {
    const int y = static_cast<int>(std::lround(py(v)));
    canvas.line(left, y, right, y, kGrid);
    const std::string label = tick_label(v, y_ticks.step);
    canvas.text(left - kChartPad - Canvas::text_width(label, kChartTextScale), y - text_height / 2, label,
                kAxis, kChartTextScale);
  }
  for (double v : x_ticks.values) {
    const int x = static_cast<int>(std::lround(px(v)));
    canvas.line(x, top, x, bottom, kGrid);
    const std::string label = tick_label(v, x_ticks.step);
    canvas.text(x - Canvas::text_width(label, kChartTextScale) / 2, bottom + kChartPad, label, kAxis,
                kChartTextScale);
  }
  canvas.line(left, top, left, bottom, kAxis);
  canvas.line(left, bottom, right, bottom, kAxis);

  for (const Series& s : chart.series) {
    const bool marked = s.x.size() <= kMaxMarkedPoints;
    bool have_previous = false;
    double previous_x = 0, previous_y = 0;
    for (std::size_t i = 0; i < s.x.size(); ++i) {
      if (!std::isfinite(s.x[i]) || !std::isfinite(s.y[i])) {
        have_previous = false;  // a gap in the curve
        continue;
      }
      const double x = px(s.x[i]), y = py(std::clamp(s.y[i], y_ticks.low, y_ticks.high));
      if (have_previous) canvas.line(previous_x, previous_y, x, y, s.color, 3);
      if (marked)
        canvas.fill_rect(static_cast<int>(x) - 3, static_cast<int>(y) - 3, static_cast<int>(x) + 4,
                         static_cast<int>(y) + 4, s.color);
      previous_x = x;
      previous_y = y;
      have_previous = true;
    }
  }

  // The legend, in the plot area's top-right corner: a swatch and the name of each series.
  int legend_width = 0;
  for (const Series& s : chart.series)
    legend_width = std::max(legend_width, Canvas::text_width(s.name, kChartTextScale));
  legend_width += 3 * kChartPad + 24;
  const int row = text_height + kChartPad / 2;
  const int legend_height = static_cast<int>(chart.series.size()) * row + kChartPad;
  const int legend_left = right - kChartPad - legend_width, legend_top = top + kChartPad;
  canvas.fill_rect(legend_left, legend_top, legend_left + legend_width, legend_top + legend_height, kWhite);
  canvas.line(legend_left, legend_top, legend_left + legend_width, legend_top, kGrid);
  canvas.line(legend_left, legend_top + legend_height, legend_left + legend_width, legend_top + legend_height,
              kGrid);
  canvas.line(legend_left, legend_top, legend_left, legend_top + legend_height, kGrid);
  canvas.line(legend_left + legend_width, legend_top, legend_left + legend_width, legend_top + legend_height,
              kGrid);
  for (std::size_t i = 0; i < chart.series.size(); ++i) {
    const int y = legend_top + kChartPad / 2 + static_cast<int>(i) * row;
    canvas.fill_rect(legend_left + kChartPad, y + text_height / 2 - 2, legend_left + kChartPad + 24,
                     y + text_height / 2 + 2, chart.series[i].color);
    canvas.text(legend_left + 2 * kChartPad + 24, y, chart.series[i].name, kBlack, kChartTextScale);
  }
  return canvas;
}

}  // namespace kiln::plot
