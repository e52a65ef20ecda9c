#include "train/early_stopping.hpp"

#include <cmath>
#include <iomanip>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.hpp"

namespace kiln::train {
namespace {

std::string known_metrics() {
  std::string list;
  for (const char* name : kMonitoredMetrics) list += (list.empty() ? "" : ", ") + std::string(name);
  return list;
}

}  // namespace

Monitor::Monitor(const std::string& metric, double min_delta)
    : metric_(metric), min_delta_(min_delta), maximized_(metric != "eval_loss") {
  bool known = false;
  for (const char* name : kMonitoredMetrics) known = known || metric == name;
  KILN_CHECK(known, "train: unknown --monitor '", metric, "' (known: ", known_metrics(), ")");
  KILN_CHECK(std::isfinite(min_delta) && min_delta >= 0, "train: --min-delta must be a number >= 0, got ",
             min_delta);
}

double Monitor::value_of(const MetricsReport& report) const {
  if (metric_ == "eval_loss") return report.loss;
  if (metric_ == "eval_accuracy") return report.accuracy;
  return report.macro_recall;
}

bool Monitor::improves(double value, double best) const {
  return maximized_ ? value > best + min_delta_ : value < best - min_delta_;
}

std::string Monitor::describe() const {
  std::ostringstream out;
  out << metric_ << (maximized_ ? " (higher is better" : " (lower is better");
  if (min_delta_ != 0) out << ", min-delta " << min_delta_;
  out << ")";
  return out.str();
}

nlohmann::json EarlyStoppingState::to_json() const {
  return {{"best", best ? nlohmann::json(*best) : nlohmann::json(nullptr)},
          {"best_epoch", best_epoch},
          {"epochs_without_improvement", epochs_without_improvement}};
}

EarlyStoppingState EarlyStoppingState::from_json(const nlohmann::json& json) {
  EarlyStoppingState state;
  if (json.is_null()) return state;
  if (!json.at("best").is_null()) state.best = json.at("best").get<double>();
  state.best_epoch = json.at("best_epoch").get<std::int64_t>();
  state.epochs_without_improvement = json.at("epochs_without_improvement").get<std::int64_t>();
  return state;
}

bool record_epoch(EarlyStoppingState& state, const Monitor& monitor, std::int64_t epoch, double value) {
  const bool improved = !std::isnan(value) && (!state.best || monitor.improves(value, *state.best));
  if (improved) {
    state.best = value;
    state.best_epoch = epoch;
    state.epochs_without_improvement = 0;
  } else {
    ++state.epochs_without_improvement;
  }
  return improved;
}

std::string evaluated_epochs_phrase(std::int64_t count, std::int64_t eval_every) {
  return std::to_string(count) + (eval_every > 1 ? " evaluation" : " epoch") + (count == 1 ? "" : "s");
}

bool patience_exhausted(const EarlyStoppingState& state, std::int64_t patience) {
  return patience > 0 && state.epochs_without_improvement >= patience;
}

std::string EarlyStop::message() const {
  std::ostringstream out;
  out << std::setprecision(4);
  if (before_resume) out << "the run already stopped at epoch " << epoch << ": ";
  out << metric << (before_resume ? " had" : " has") << " not improved";
  if (min_delta != 0) out << " by more than " << min_delta;
  out << " for " << evaluated_epochs_phrase(epochs_without_improvement, eval_every);
  if (eval_every > 1) out << ", every " << eval_every << " epochs";
  out << " (--early-stop " << patience << "); " << best_checkpoint.filename().string() << " holds epoch "
      << best_epoch << " (" << metric << " " << best_value << ")";
  if (before_resume) out << ". Nothing was trained; a larger --early-stop continues the run";
  return out.str();
}

nlohmann::json EarlyStop::to_json() const {
  return {{"before_resume", before_resume},
          {"epoch", epoch},
          {"epochs", epochs},
          {"patience", patience},
          {"monitor", metric},
          {"min_delta", min_delta},
          {"epochs_without_improvement", epochs_without_improvement},
          {"eval_every", eval_every},
          {"best_epoch", best_epoch},
          {"best_value", best_value},
          {"best_checkpoint", best_checkpoint.string()},
          {"message", message()}};
}

}  // namespace kiln::train
