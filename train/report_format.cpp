#include "train/report_format.hpp"

#include <algorithm>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "core/error.hpp"

namespace kiln::train {

double ratio(double numerator, double denominator) {
  return denominator == 0 ? 0.0 : numerator / denominator;
}

nlohmann::json optional_to_json(const std::optional<double>& value) {
  return value ? nlohmann::json(*value) : nlohmann::json(nullptr);
}

// The names the report prints: the caller's, or the class indices when none are given.
std::vector<std::string> names_for(const std::vector<std::string>& class_names, std::int64_t classes) {
  if (class_names.empty()) {
    std::vector<std::string> indices;
    for (std::int64_t c = 0; c < classes; ++c) indices.push_back(std::to_string(c));
    return indices;
  }
  KILN_CHECK(static_cast<std::int64_t>(class_names.size()) == classes, "metrics: ", class_names.size(),
             " class names for ", classes, " classes");
  return class_names;
}

nlohmann::json score_row_json(const std::string& name, double precision, double recall, double f1,
                              std::int64_t support) {
  return {{"name", name}, {"precision", precision}, {"recall", recall}, {"f1", f1}, {"support", support}};
}

std::size_t display_width(const std::string& text) {
  return static_cast<std::size_t>(std::count_if(
      text.begin(), text.end(), [](char c) { return (static_cast<unsigned char>(c) & 0xC0) != 0x80; }));
}

// `text` cut to at most `width` code points, a cut marked by a trailing '.': "airplane" -> "airp.".
std::string abbreviate(const std::string& text, std::size_t width) {
  if (display_width(text) <= width) return text;
  std::string cut;
  std::size_t kept = 0;
  for (char c : text) {
    const bool starts_code_point = (static_cast<unsigned char>(c) & 0xC0) != 0x80;
    if (starts_code_point && ++kept > width - 1) break;
    cut += c;
  }
  return cut + ".";
}

std::size_t name_column_width(const std::vector<std::string>& names,
                              std::initializer_list<const char*> fixed_labels) {
  constexpr std::size_t kNameWidthLimit = 24;
  std::size_t width = 0;
  for (const char* label : fixed_labels) width = std::max(width, display_width(label));
  for (const std::string& name : names)
    width = std::max(width, std::min(display_width(name), kNameWidthLimit));
  return width;
}

std::string pad_left(const std::string& text, std::size_t width) {
  const std::size_t used = display_width(text);
  return std::string(width > used ? width - used : 0, ' ') + text;
}

std::string pad_right(const std::string& text, std::size_t width) {
  const std::size_t used = display_width(text);
  return text + std::string(width > used ? width - used : 0, ' ');
}

std::string fixed(double value, int decimals) {
  char text[64];
  std::snprintf(text, sizeof text, "%.*f", decimals, value);
  return text;
}

std::string fixed_or_dash(const std::optional<double>& value) { return value ? fixed(*value) : "-"; }

}  // namespace kiln::train
