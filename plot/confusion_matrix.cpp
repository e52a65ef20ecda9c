#include "plot/confusion_matrix.hpp"

#include <algorithm>
#include <cmath>
#include <string>

#include "core/error.hpp"

namespace kiln::plot {
namespace {

constexpr int kTextScale = 2;
constexpr int kTitleScale = 3;
constexpr int kPad = 12;

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
  const int text_height = Canvas::text_height("0", kTextScale);
  int widest_name = 0;
  for (const std::string& name : classes)
    widest_name = std::max(widest_name, Canvas::text_width(name, kTextScale));
  const int left = kPad + widest_name + kPad;
  const int top =
      kPad + Canvas::text_height(title, kTitleScale) + kPad + text_height + kPad + text_height + kPad;
  const int side = cell * static_cast<int>(n);
  Canvas canvas(left + side + 2 * kPad, top + side + kPad + text_height + 2 * kPad);

  canvas.text((canvas.width() - Canvas::text_width(title, kTitleScale)) / 2, kPad, title, kBlack,
              kTitleScale);
  const int header = kPad + Canvas::text_height(title, kTitleScale) + kPad;
  canvas.text(left, header, "predicted ->", kAxis, kTextScale);
  canvas.text(kPad, top - kPad - text_height, "true", kAxis, kTextScale);
  for (std::size_t c = 0; c < n; ++c) {
    const std::string label = fitted(classes[c], cell - 4, kTextScale);
    canvas.text(left + static_cast<int>(c) * cell + (cell - Canvas::text_width(label, kTextScale)) / 2,
                top - kPad - text_height, label, kAxis, kTextScale);
  }
  for (std::size_t r = 0; r < n; ++r) {
    std::int64_t row_total = 0;
    for (std::int64_t count : counts[r]) row_total += count;
    const int y = top + static_cast<int>(r) * cell;
    canvas.text(left - kPad - Canvas::text_width(classes[r], kTextScale), y + (cell - text_height) / 2,
                classes[r], kBlack, kTextScale);
    for (std::size_t c = 0; c < n; ++c) {
      const double share =
          row_total > 0 ? static_cast<double>(counts[r][c]) / static_cast<double>(row_total) : 0.0;
      const int x = left + static_cast<int>(c) * cell;
      canvas.fill_rect(x, y, x + cell, y + cell, shade(share));
      const std::string label = fitted(std::to_string(counts[r][c]), cell - 4, kTextScale);
      canvas.text(x + (cell - Canvas::text_width(label, kTextScale)) / 2, y + (cell - text_height) / 2, label,
                  share > 0.5 ? kWhite : kBlack, kTextScale);
    }
  }
  // Cell borders.
  for (std::size_t i = 0; i <= n; ++i) {
    const int offset = static_cast<int>(i) * cell;
    canvas.line(left + offset, top, left + offset, top + side, kGrid);
    canvas.line(left, top + offset, left + side, top + offset, kGrid);
  }
  canvas.text(left, top + side + kPad, "shade: share of the true class's images", kAxis, kTextScale);
  return canvas;
}

}  // namespace kiln::plot
