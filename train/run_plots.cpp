#include "train/run_plots.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.hpp"
#include "plot/confusion_matrix.hpp"
#include "plot/line_chart.hpp"
#include "train/atomic_file.hpp"

namespace kiln::train {
namespace {

namespace fs = std::filesystem;
constexpr double kMissing = std::numeric_limits<double>::quiet_NaN();

double number_or_missing(const nlohmann::json& line, const char* key) {
  return line.contains(key) && line[key].is_number() ? line[key].get<double>() : kMissing;
}

// One curve over the epochs: line[key] per epoch that has the key (an epoch that did not evaluate,
// --eval-every, has no held-out point: the curve joins the epochs that did), with a gap where its value
// is not a number.
plot::Series curve(const std::vector<nlohmann::json>& epochs, const char* key, std::string name, int color) {
  plot::Series series{std::move(name), plot::series_color(color), {}, {}};
  for (const nlohmann::json& line : epochs) {
    if (!line.contains(key)) continue;
    series.x.push_back(line.at("epoch").get<double>());
    series.y.push_back(number_or_missing(line, key));
  }
  return series;
}

bool any_present(const std::vector<nlohmann::json>& epochs, const char* key) {
  for (const nlohmann::json& line : epochs) {
    if (line.contains(key)) return true;
  }
  return false;
}

}  // namespace

void save_png(const plot::Canvas& picture, const fs::path& path) {
  write_file_atomically(path, picture.encode_png(), "picture");
}

std::vector<fs::path> write_run_plots(const fs::path& run_dir, const std::vector<nlohmann::json>& epochs) {
  std::vector<fs::path> written;
  const bool has_eval = any_present(epochs, "eval_loss");
  const std::string split = epochs.back().value("eval_split", std::string("held-out"));
  const bool multi_label = epochs.back().value("task", std::string()) == "multi_label";

  plot::LineChart loss{"loss",
                       "epoch",
                       multi_label ? "loss (binary cross-entropy, mean per image and label)"
                                   : "loss (cross-entropy, mean per image)",
                       {curve(epochs, "train_loss", "train", 0)},
                       {}};
  if (has_eval) loss.series.push_back(curve(epochs, "eval_loss", split, 1));
  written.push_back(run_dir / "loss.png");
  save_png(plot::draw(loss), written.back());

  if (multi_label) {
    // No train accuracy (one number per image does not fit several labels): the held-out label metrics.
    if (has_eval) {
      plot::LineChart labels{"held-out label metrics",
                             "epoch",
                             "fraction",
                             {curve(epochs, "eval_map", split + " mAP", 0)},
                             std::pair{0.0, 1.0}};
      labels.series.push_back(curve(epochs, "eval_macro_f1", split + " macro F1", 1));
      labels.series.push_back(curve(epochs, "eval_exact_match", split + " exact match", 2));
      written.push_back(run_dir / "label_metrics.png");
      save_png(plot::draw(labels), written.back());
    }
    return written;  // and no confusion matrix: it does not apply to several labels per image
  }
  plot::LineChart accuracy{"accuracy",
                           "epoch",
                           "fraction of images",
                           {curve(epochs, "train_accuracy", "train", 0)},
                           std::pair{0.0, 1.0}};
  if (has_eval) {
    accuracy.series.push_back(curve(epochs, "eval_accuracy", split, 1));
    accuracy.series.push_back(curve(epochs, "eval_macro_recall", split + " macro recall", 2));
  }
  written.push_back(run_dir / "accuracy.png");
  save_png(plot::draw(accuracy), written.back());

  // The last evaluated epoch's confusion matrix (with --eval-every, not always the last epoch's).
  const auto last = std::find_if(epochs.rbegin(), epochs.rend(), [](const nlohmann::json& line) {
    return line.contains("eval_confusion_matrix");
  });
  if (last != epochs.rend()) {
    const nlohmann::json& matrix = last->at("eval_confusion_matrix");
    written.push_back(run_dir / "confusion_matrix.png");
    save_png(plot::draw_confusion_matrix(
                 matrix.at("counts").get<std::vector<std::vector<std::int64_t>>>(),
                 matrix.at("classes").get<std::vector<std::string>>(),
                 split + " confusion matrix, epoch " + std::to_string(last->at("epoch").get<std::int64_t>())),
             written.back());
  }
  // A picture of the four kinds that this run does not draw is an earlier run's in the same folder.
  for (const char* name : {"loss.png", "accuracy.png", "confusion_matrix.png", "label_metrics.png"}) {
    if (std::find(written.begin(), written.end(), run_dir / name) != written.end()) continue;
    std::error_code ignored;
    fs::remove(run_dir / name, ignored);
  }
  return written;
}

RunSummary summarize_run(const std::vector<nlohmann::json>& epochs) {
  KILN_CHECK(!epochs.empty(), "a run summary needs at least one epoch");
  RunSummary summary;
  const nlohmann::json& last = epochs.back();
  summary.epochs_done = last.at("epoch").get<std::int64_t>();
  summary.epochs_planned = last.value("epochs", summary.epochs_done);
  summary.last_train_loss = last.value("train_loss", kMissing);
  summary.last_train_accuracy = last.value("train_accuracy", kMissing);
  double images_per_second_sum = 0;
  for (const nlohmann::json& line : epochs) {
    summary.seconds += line.value("seconds", 0.0);
    images_per_second_sum += line.value("images_per_second", 0.0);
    if (line.contains("eval_accuracy")) {
      const double accuracy = line["eval_accuracy"].get<double>();
      if (!summary.has_eval || accuracy > summary.best_eval_accuracy) {
        summary.best_eval_accuracy = accuracy;
        summary.best_epoch = line.at("epoch").get<std::int64_t>();
      }
      summary.has_eval = true;
      summary.last_eval_loss = line.value("eval_loss", kMissing);
      summary.last_eval_accuracy = accuracy;
      summary.last_eval_epoch = line.at("epoch").get<std::int64_t>();
    }
  }
  summary.images_per_second = images_per_second_sum / static_cast<double>(epochs.size());
  return summary;
}

nlohmann::json RunSummary::to_json() const {
  nlohmann::json out{{"epochs_done", epochs_done},
                     {"epochs_planned", epochs_planned},
                     {"train_loss", last_train_loss},
                     {"train_accuracy", last_train_accuracy},
                     {"seconds", seconds},
                     {"images_per_second", images_per_second}};
  if (has_eval) {
    out["eval_loss"] = last_eval_loss;
    out["eval_accuracy"] = last_eval_accuracy;
    out["eval_epoch"] = last_eval_epoch;
    out["best_eval_accuracy"] = best_eval_accuracy;
    out["best_epoch"] = best_epoch;
  }
  return out;
}

std::string RunSummary::text() const {
  const auto fixed = [](double value, int decimals) {
    std::ostringstream out;
    out.setf(std::ios::fixed);
    out.precision(decimals);
    out << value;
    return out.str();
  };
  const auto percent = [&](double fraction) { return fixed(fraction * 100, 1) + "%"; };
  std::string out =
      "epochs      " + std::to_string(epochs_done) + " of " + std::to_string(epochs_planned) + "\n";
  out += "last epoch  train loss " + fixed(last_train_loss, 4);
  if (!std::isnan(last_train_accuracy))
    out += ", accuracy " + percent(last_train_accuracy);  // multi-label: none
  if (has_eval) {
    out += "  |  held-out loss " + fixed(last_eval_loss, 4) + ", accuracy " + percent(last_eval_accuracy);
    if (last_eval_epoch != epochs_done) out += " (at epoch " + std::to_string(last_eval_epoch) + ")";
  }
  out += "\n";
  if (has_eval)
    out += "best        held-out accuracy " + percent(best_eval_accuracy) + " at epoch " +
           std::to_string(best_epoch) + "\n";
  out += "time        " + fixed(seconds, 1) + " s of training, " + fixed(images_per_second, 0) +
         " images/s on average\n";
  return out;
}

}  // namespace kiln::train
