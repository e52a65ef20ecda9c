#include "cli/lr_find.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>

#include "cli/json_lines.hpp"
#include "cli/progress_bar.hpp"
#include "plot/line_chart.hpp"
#include "train/atomic_file.hpp"
#include "train/run_plots.hpp"

namespace kiln::cli {
namespace {

constexpr std::int64_t kRowsShown = 20;  // the text table shows about this many of the steps

// The raw and smoothed losses against log10(rate), with the suggestion as a vertical line.
plot::LineChart range_chart(const train::LrRangeResult& result) {
  plot::Series raw{"loss (one batch)", plot::series_color(1), {}, {}};
  plot::Series smoothed{"smoothed", plot::series_color(0), {}, {}};
  double low = std::numeric_limits<double>::infinity(), high = -low;
  for (const train::LrRangePoint& point : result.points) {
    const double x = std::log10(point.learning_rate);
    raw.x.push_back(x);
    raw.y.push_back(point.loss);
    smoothed.x.push_back(x);
    smoothed.y.push_back(point.smoothed_loss);
    low = std::min({low, point.loss, point.smoothed_loss});
    high = std::max({high, point.loss, point.smoothed_loss});
  }
  plot::LineChart chart{
      "learning-rate range test", "log10(learning rate)", "training loss", {raw, smoothed}, {}};
  if (result.steepest >= 0) {
    const double x = std::log10(result.suggested_rate());
    chart.series.push_back({"suggested --lr", plot::series_color(2), {x, x}, {low, high}});
  }
  return chart;
}

std::string short_number(double value) {  // three significant digits: 0.00231, 1e-07
  char text[32];
  std::snprintf(text, sizeof text, "%.3g", value);
  return text;
}

}  // namespace

void run_lr_find(const train::TrainConfig& config, const train::LrRangeOptions& options, bool json) {
  train::check_range_options(options);  // before the table's header
  if (!json) {
    std::printf("lr range test: %s on %s, up to %lld steps of batch %lld, rate %s to %s (geometric)\n",
                config.model.c_str(), config.data.string().c_str(), static_cast<long long>(options.steps),
                static_cast<long long>(config.batch_size), short_number(options.start).c_str(),
                short_number(options.end).c_str());
    std::printf("%6s  %10s  %8s  %8s\n", "step", "rate", "loss", "smoothed");
  }
  ProgressBar bar;
  const std::int64_t every = std::max<std::int64_t>(1, options.steps / kRowsShown);
  const train::LrRangeResult result =
      train::lr_range_test(config, options, [&](const train::LrRangePoint& point, std::int64_t step) {
        if (json) {
          nlohmann::json line = point.to_json();
          line["event"] = "lr_range_step";
          line["step"] = step;
          print_json_line(line);
          return;
        }
        bar.update(
            "lr range test", step + 1, options.steps,
            "rate " + short_number(point.learning_rate) + "  loss " + short_number(point.smoothed_loss));
        if (step % every == 0) {
          bar.clear();
          std::printf("%6lld  %10s  %8.4f  %8.4f\n", static_cast<long long>(step + 1),
                      short_number(point.learning_rate).c_str(), point.loss, point.smoothed_loss);
        }
      });
  bar.clear();

  std::filesystem::create_directories(config.run_dir);
  const std::filesystem::path picture = config.run_dir / "lr_find.png";
  const std::filesystem::path numbers = config.run_dir / "lr_find.json";
  const nlohmann::json summary = result.to_json();
  train::write_file_atomically(numbers, summary.dump(1) + "\n", "lr range test");
  if (!result.points.empty()) train::save_png(plot::draw(range_chart(result)), picture);
  if (json) {
    nlohmann::json line = summary;
    line.erase("points");  // one line per step came before
    line["files"] = {picture.string(), numbers.string()};
    print_json_line(line);
    return;
  }
  if (result.diverged) {
    std::printf(
        "stopped after %zu steps at rate %s: the loss diverged (smoothed, over %.0fx its lowest)\n",
        result.points.size(),
        short_number(result.points.empty() ? options.start : result.points.back().learning_rate).c_str(),
        train::kDivergence);
  } else {
    std::printf(
        "reached rate %s without the loss diverging: a larger range end (--lr-find-range) would show "
        "where it does\n",
        short_number(options.end).c_str());
  }
  if (result.steepest >= 0) {
    std::printf(
        "suggested --lr %s (the smoothed loss falls fastest there); the lowest loss's rate / 10: %s\n",
        short_number(result.suggested_rate()).c_str(), short_number(result.minimum_rate_over_10()).c_str());
  } else {
    std::printf("no suggestion: the smoothed loss never fell (start the range lower, or check the data)\n");
  }
  std::printf("plot: %s\nnumbers: %s\n", picture.string().c_str(), numbers.string().c_str());
}

}  // namespace kiln::cli
