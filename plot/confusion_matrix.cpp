#include "plot/confusion_matrix.hpp"

#include <algorithm>
#include <cmath>
#include <string>

#include "core/error.hpp"
#include "plot/chart_style.hpp"

namespace kiln::plot {
namespace {

// White at share 0 to a dark blue at share 1.
Color shade(double share) {
  const auto mix = [share](int from, int to) {
    return static_cast<std::uint8_t>(std::lround(from + (to - from) * std::clamp(share, 0.0, 1.0)));
  };
  return {mix(255, 8), mix(255, 48), mix(255, 107)};
}

// `text` cut to fit `width` pixels at `scale`, ending in '.' when cut.
std::string fitted(const std::string& text, int width, int scale) {
  if (Canvas::text_width(text, scale) <= width) return text;
  std::string cut = text;
  while (!cut.empty() && Canvas::text_width(cut + ".", scale) > width) cut.pop_back();
  return cut + ".";
}

}  // namespace

Canvas draw_confusion_matrix(const std::vector<std::vector<std::int64_t>>& counts,
                             const std::vector<std::string>& classes, const std::string& title) {
  const std::size_t n = classes.size();
  KILN_CHECK(n > 0 && counts.size() == n, "confusion matrix '", title, "': ", counts.size(), " rows for ", n,
             " classes");
  for (const auto& row : counts) {
    KILN_CHECK(row.size() == n, "confusion matrix '", title, "': a row has ", row.size(), " columns for ", n,
               " classes");
  }
  const int cell = std::clamp(640 / static_cast<int>(n), 36, 90);
  const int text_height = Canvas::text_height("0", kChartTextScale);
  int widest_name = 0;
  for (const std::string& name : classes)
    widest_name = std::max(widest_name, Canvas::text_width(name, kChartTextScale));
  const int left = kChartPad + widest_name + kChartPad;
  const int top = kChartPad + Canvas::text_height(title, kChartTitleScale) + kChartPad + text_height +
                  kChartPad + text_height + kChartPad;
  const int side = cell * static_cast<int>(n);
  Canvas canvas(left + side + 2 * kChartPad, top + side + kChartPad + text_height + 2 * kChartPad);

  canvas.text((canvas.width() - Canvas::text_width(title, kChartTitleScale)) / 2, kChartPad, title, kBlack,
              kChartTitleScale);
  const int header = kChartPad + Canvas::text_height(title, kChartTitleScale) + kChartPad;
  canvas.text(left, header, "predicted ->", kAxis, kChartTextScale);
  canvas.text(kChartPad, top - kChartPad - text_height, "true", kAxis, kChartTextScale);
  for (std::size_t c = 0; c < n; ++c) {
    const std::string label = fitted(classes[c], cell - 4, kChartTextScale);
    canvas.text(left + static_cast<int>(c) * cell + (cell - Canvas::text_width(label, kChartTextScale)) / 2,
                top - kChartPad - text_height, label, kAxis, kChartTextScale);
  }
  for (std::size_t r = 0; r < n; ++r) {
    std::int64_t row_total = 0;
    for (std::int64_t count : counts[r]) row_total += count;
    const int y = top + static_cast<int>(r) * cell;
    canvas.text(left - kChartPad - Canvas::text_width(classes[r], kChartTextScale),
                y + (cell - text_height) / 2, classes[r], kBlack, kChartTextScale);
    for (std::size_t c = 0; c < n; ++c) {
      const double share =
          row_total > 0 ? static_cast<double>(counts[r][c]) / static_cast<double>(row_total) : 0.0;
      const int x = left + static_cast<int>(c) * cell;
      canvas.fill_rect(x, y, x + cell, y + cell, shade(share));
      const std::string label = fitted(std::to_string(counts[r][c]), cell - 4, kChartTextScale);
      canvas.text(x + (cell - Canvas::text_width(label, kChartTextScale)) / 2, y + (cell - text_height) / 2,
                  label, share > 0.5 ? kWhite : kBlack, kChartTextScale);
    }
  }
  // Cell borders.
  for (std::size_t i = 0; i <= n; ++i) {
    const int offset = static_cast<int>(i) * cell;
    canvas.line(left + offset, top, left + offset, top + side, kGrid);
    canvas.line(left, top + offset, left + side, top + offset, kGrid);
  }
  canvas.text(left, top + side + kChartPad, "shade: share of the true class's images", kAxis,
              kChartTextScale);
  return canvas;
}

}  // namespace kiln::plot
