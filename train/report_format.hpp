// Text and JSON helpers shared by the metrics reports (train/metrics.hpp, train/multi_label_metrics.hpp):
// aligned columns whose widths count code points, not bytes, so UTF-8 names ("café") line up too.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <nlohmann/json_fwd.hpp>  // declarations only; the full json.hpp costs each includer ~2 s
#include <optional>
#include <string>
#include <vector>

namespace kiln::train {

// numerator / denominator, or 0 when the denominator is 0 (scikit-learn's zero_division=0).
double ratio(double numerator, double denominator);

// A value, or null when it is absent (an undefined AUC or average precision).
nlohmann::json optional_to_json(const std::optional<double>& value);

// The names a report prints: the caller's, or "0", "1", ... when none are given. Throws when the caller
// gives a number of names other than `count`.
std::vector<std::string> names_for(const std::vector<std::string>& names, std::int64_t count);

// {"name", "precision", "recall", "f1", "support"}: what every per-class and per-label JSON row holds.
nlohmann::json score_row_json(const std::string& name, double precision, double recall, double f1,
                              std::int64_t support);

std::size_t display_width(const std::string& text);
// `text` cut to at most `width` code points, a cut marked by a trailing '.': "airplane" -> "airp.".
std::string abbreviate(const std::string& text, std::size_t width);
// The width of a table's name column: the widest of `names` (each counted up to 24 code points; longer
// names are abbreviated to fit) and of `fixed_labels` (the heading, "macro avg", ...).
std::size_t name_column_width(const std::vector<std::string>& names,
                              std::initializer_list<const char*> fixed_labels);
std::string pad_left(const std::string& text, std::size_t width);
std::string pad_right(const std::string& text, std::size_t width);
std::string fixed(double value, int decimals = 4);
std::string fixed_or_dash(const std::optional<double>& value);  // "-" for an absent value

}  // namespace kiln::train
