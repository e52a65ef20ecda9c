#include "train/profile_report.hpp"

#include <algorithm>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

namespace kiln::train {
namespace {

std::string dtype_text(const std::optional<DType>& dtype) {
  return dtype ? std::string(dtype_name(*dtype)) : std::string("-");
}

// printf into a std::string (the table's lines are short).
template <typename... Args>
std::string format(const char* pattern, Args... args) {
  char line[512];
  std::snprintf(line, sizeof line, pattern, args...);
  return line;
}

}  // namespace

nlohmann::json ProfileReport::to_json() const {
  nlohmann::json ops = nlohmann::json::array();
  for (const profiler::OpTime& op : profile.ops) {
    ops.push_back({{"op", op.op},
                   {"detail", op.detail},
                   {"device", op.device.str()},
                   {"dtype", dtype_text(op.dtype)},
                   {"calls", op.calls},
                   {"ms", op.milliseconds},
                   {"flops", op.flops}});
  }
  return {
      {"epoch", epoch + 1},   {"first_step", first_step + 1},         {"steps", steps},
      {"images", images},     {"wall_ms", profile.wall_milliseconds}, {"op_ms", profile.op_milliseconds()},
      {"ops", std::move(ops)}};
}

std::string ProfileReport::table(std::size_t max_rows) const {
  const double per_step = 1.0 / static_cast<double>(std::max<std::int64_t>(steps, 1));
  const double step_ms = profile.wall_milliseconds * per_step;
  const double seconds = profile.wall_milliseconds / 1000.0;
  std::string text = format(
      "profile: steps %lld-%lld of epoch %lld (%lld steps, %lld images): %.3f ms a step, %.0f images/s\n",
      static_cast<long long>(first_step + 1), static_cast<long long>(first_step + steps),
      static_cast<long long>(epoch + 1), static_cast<long long>(steps), static_cast<long long>(images),
      step_ms, seconds > 0 ? static_cast<double>(images) / seconds : 0.0);
  text += format("%10s %7s %10s %8s  %-28s %-9s %-7s %s\n", "ms/step", "% step", "calls/step", "GFLOP/s",
                 "op", "dtype", "device", "detail");
  const auto percent = [&](double milliseconds) {
    return profile.wall_milliseconds > 0 ? 100.0 * milliseconds / profile.wall_milliseconds : 0.0;
  };
  const std::size_t shown = std::min(max_rows, profile.ops.size());
  for (std::size_t i = 0; i < shown; ++i) {
    const profiler::OpTime& op = profile.ops[i];
    // The rate of the ops that count their arithmetic (convolutions, matrix products); blank for the rest.
    const std::string rate = op.flops > 0 && op.milliseconds > 0
                                 ? format("%.1f", static_cast<double>(op.flops) / op.milliseconds * 1e-6)
                                 : std::string();
    text += format("%10.3f %6.1f%% %10.2f %8s  %-28s %-9s %-7s %s\n", op.milliseconds * per_step,
                   percent(op.milliseconds), static_cast<double>(op.calls) * per_step, rate.c_str(),
                   op.op.c_str(), dtype_text(op.dtype).c_str(), op.device.str().c_str(), op.detail.c_str());
  }
  if (shown < profile.ops.size()) {
    double rest = 0.0;
    for (std::size_t i = shown; i < profile.ops.size(); ++i) rest += profile.ops[i].milliseconds;
    text += format("%10.3f %6.1f%% %10s %8s  (%zu more rows, in %s)\n", rest * per_step, percent(rest), "",
                   "", profile.ops.size() - shown, std::string(kProfileFile).c_str());
  }
  const double outside = profile.wall_milliseconds - profile.op_milliseconds();
  text +=
      format("%10.3f %6.1f%% %10s %8s  (in no op: the autograd engine, allocation, the host between ops)\n",
             outside * per_step, percent(outside), "", "");
  // The same time by op alone (every shape, precision and device of it together), the most first.
  std::vector<std::pair<std::string, double>> by_op;
  for (const profiler::OpTime& op : profile.ops) {
    auto same =
        std::find_if(by_op.begin(), by_op.end(), [&](const auto& entry) { return entry.first == op.op; });
    if (same == by_op.end()) {
      by_op.emplace_back(op.op, op.milliseconds);
    } else {
      same->second += op.milliseconds;
    }
  }
  std::stable_sort(by_op.begin(), by_op.end(),
                   [](const auto& a, const auto& b) { return a.second > b.second; });
  text += "by op:";
  for (std::size_t i = 0; i < by_op.size() && i < max_rows; ++i) {
    text += format("%s %s %.1f%%", i == 0 ? "" : ",", by_op[i].first.c_str(), percent(by_op[i].second));
  }
  text += "\n";
  return text;
}

}  // namespace kiln::train
