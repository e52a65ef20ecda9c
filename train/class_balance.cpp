#include "train/class_balance.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>

#include "core/error.hpp"

namespace kiln::train {
namespace {

constexpr std::size_t kMaxClassesInSummary = 12;

std::string trimmed(const std::string& text) {
  const auto first = text.find_first_not_of(" \t\r");
  if (first == std::string::npos) return "";
  const auto last = text.find_last_not_of(" \t\r");
  return text.substr(first, last - first + 1);
}

std::string class_list(const std::vector<std::string>& classes) {
  std::string list;
  for (const std::string& name : classes) list += (list.empty() ? "" : ", ") + name;
  return list;
}

// A finite number > 0 spelled out in full, or nothing.
std::optional<double> positive_number(const std::string& text) {
  double value = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
  if (error != std::errc() || end != text.data() + text.size() || !std::isfinite(value) || value <= 0) {
    return std::nullopt;
  }
  return value;
}

}  // namespace

nlohmann::json ClassBalance::to_json() const {
  nlohmann::json per_class = nlohmann::json::object();
  for (std::size_t c = 0; c < classes.size(); ++c) per_class[classes[c]] = counts[c];
  return {{"counts", per_class},
          {"largest", {{"name", classes[largest]}, {"images", counts[largest]}}},
          {"smallest", {{"name", classes[smallest]}, {"images", counts[smallest]}}},
          {"ratio", ratio},
          {"threshold", kImbalanceWarningRatio},
          {"imbalanced", imbalanced()},
          {"summary", summary()}};
}

std::string ClassBalance::summary() const {
  char ratio_text[64];
  std::snprintf(ratio_text, sizeof ratio_text, "ratio %.2f %s %.1f", ratio,
                imbalanced() ? ">" : "<=", kImbalanceWarningRatio);
  std::ostringstream out;
  out << "largest '" << classes[largest] << "' " << counts[largest] << " images, smallest '"
      << classes[smallest] << "' " << counts[smallest] << " (" << ratio_text << ")";
  if (classes.size() <= kMaxClassesInSummary) {
    out << "; per class:";
    for (std::size_t c = 0; c < classes.size(); ++c)
      out << (c == 0 ? " " : ", ") << classes[c] << " " << counts[c];
  }
  return out.str();
}

ClassBalance class_balance(const data::ImageFolder& folder) {
  ClassBalance balance;
  balance.classes = folder.classes();
  balance.counts.assign(balance.classes.size(), 0);
  for (const data::Sample& sample : folder.samples())
    ++balance.counts[static_cast<std::size_t>(sample.label)];
  for (std::size_t c = 0; c < balance.counts.size(); ++c) {
    KILN_CHECK(balance.counts[c] > 0, folder.root().string(), ": class '", balance.classes[c],
               "' has no training images");
  }
  const auto begin = balance.counts.begin(), end = balance.counts.end();
  balance.largest = static_cast<std::size_t>(std::max_element(begin, end) - begin);
  balance.smallest = static_cast<std::size_t>(std::min_element(begin, end) - begin);
  balance.ratio = static_cast<double>(balance.counts[balance.largest]) /
                  static_cast<double>(balance.counts[balance.smallest]);
  return balance;
}

std::vector<double> auto_class_weights(const std::vector<std::int64_t>& counts) {
  KILN_CHECK(!counts.empty(), "class weights: no classes");
  double inverse_sum = 0;
  for (std::size_t c = 0; c < counts.size(); ++c) {
    KILN_CHECK(counts[c] > 0, "class weights: class ", c, " has ", counts[c],
               " images; every class needs some");
    inverse_sum += 1.0 / static_cast<double>(counts[c]);
  }
  const double inverse_mean = inverse_sum / static_cast<double>(counts.size());
  std::vector<double> weights;
  for (const std::int64_t count : counts) weights.push_back(1.0 / static_cast<double>(count) / inverse_mean);
  return weights;
}

std::vector<double> parse_class_weights(const std::string& text, const std::vector<std::string>& classes,
                                        const std::string& name_for_errors) {
  std::vector<double> weights(classes.size(), 0.0);
  std::map<std::string, int> given_on_line;  // class -> the line that gave its weight
  std::istringstream lines(text);
  std::string line;
  bool first_entry = true;
  for (int number = 1; std::getline(lines, line); ++number) {
    line = trimmed(line.substr(0, line.find('#')));
    if (line.empty()) continue;
    const std::string where = name_for_errors + ":" + std::to_string(number);
    std::size_t separator = line.rfind(',');
    if (separator == std::string::npos) separator = line.find_last_of(" \t");
    KILN_CHECK(separator != std::string::npos, where, ": expected \"class,weight\", got '", line, "'");
    const std::string name = trimmed(line.substr(0, separator));
    const std::string weight_text = trimmed(line.substr(separator + 1));
    const bool header = first_entry && name == "class" && weight_text == "weight";
    first_entry = false;
    if (header) continue;
    KILN_CHECK(!name.empty(), where, ": no class name before the weight in '", line, "'");
    const auto found = std::find(classes.begin(), classes.end(), name);
    KILN_CHECK(found != classes.end(), where, ": unknown class '", name,
               "' (the classes are: ", class_list(classes), ")");
    KILN_CHECK(!given_on_line.contains(name), where, ": class '", name, "' is given twice (first on line ",
               given_on_line[name], ")");
    const std::optional<double> weight = positive_number(weight_text);
    KILN_CHECK(weight.has_value(), where, ": the weight of class '", name, "' must be a number > 0, got '",
               weight_text, "'");
    weights[static_cast<std::size_t>(found - classes.begin())] = *weight;
    given_on_line[name] = number;
  }
  std::vector<std::string> missing;
  for (const std::string& name : classes) {
    if (!given_on_line.contains(name)) missing.push_back("'" + name + "'");
  }
  KILN_CHECK(missing.empty(), name_for_errors, ": no weight for class", missing.size() == 1 ? " " : "es ",
             class_list(missing), " (every class needs one line \"class,weight\")");
  return weights;
}

std::vector<double> read_class_weights_file(const std::filesystem::path& path,
                                            const std::vector<std::string>& classes) {
  std::ifstream file(path);
  KILN_CHECK(file.good(), path.string(), ": cannot open the class weights file");
  std::ostringstream text;
  text << file.rdbuf();
  return parse_class_weights(text.str(), classes, path.string());
}

std::vector<double> resolve_class_weights(const std::string& spec, const ClassBalance& balance) {
  if (spec.empty()) return {};
  if (spec == "auto") return auto_class_weights(balance.counts);
  return read_class_weights_file(spec, balance.classes);
}

}  // namespace kiln::train
