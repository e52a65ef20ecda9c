// A run's plots and summary from RUNDIR/metrics.jsonl: which pictures are drawn, what the summary says,
// resumed runs' repeated epochs.
#include "train/run_plots.hpp"

#include <doctest/doctest.h>
#include <stb/stb_image.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "tests/support/scratch_folder.hpp"
#include "train/metrics_log.hpp"

namespace train_run_plots_test {

namespace fs = std::filesystem;
using namespace kiln;

namespace {

// A scratch run folder with a metrics.jsonl of the given text.
class RunFolder {
 public:
  explicit RunFolder(const std::string& name) : scratch_("kiln-run-plots-test", name) {}
  const fs::path& path() const { return scratch_.path(); }
  void write_metrics(const std::string& text) const { std::ofstream(path() / "metrics.jsonl") << text; }

 private:
  testing::ScratchFolder scratch_;
};

std::string epoch_line(int epoch, double train_loss, double eval_accuracy, bool confusion = false) {
  nlohmann::json line{{"epoch", epoch},           {"epochs", 3},
                      {"train_loss", train_loss}, {"train_accuracy", 0.5},
                      {"eval_loss", 1.0},         {"eval_accuracy", eval_accuracy},
                      {"eval_macro_recall", 0.4}, {"eval_split", "test"},
                      {"seconds", 2.0},           {"images_per_second", 100.0}};
  if (confusion) line["eval_confusion_matrix"] = {{"classes", {"cat", "dog"}}, {"counts", {{3, 1}, {2, 4}}}};
  return line.dump() + "\n";
}

bool is_png(const fs::path& file) {
  int width = 0, height = 0, channels = 0;
  return stbi_info(file.c_str(), &width, &height, &channels) == 1 && width > 100 && height > 100;
}

}  // namespace

TEST_CASE("run plots: loss, accuracy and the last epoch's confusion matrix are drawn as PNGs") {
  const RunFolder run("three");
  run.write_metrics(epoch_line(1, 2.0, 0.3) + epoch_line(2, 1.5, 0.6) + epoch_line(3, 1.2, 0.5, true));
  const auto epochs = train::read_epoch_lines(run.path());
  REQUIRE(epochs.size() == 3);
  const auto plots = train::write_run_plots(run.path(), epochs);
  REQUIRE(plots.size() == 3);
  CHECK(plots[0] == run.path() / "loss.png");
  CHECK(plots[1] == run.path() / "accuracy.png");
  CHECK(plots[2] == run.path() / "confusion_matrix.png");
  for (const auto& plot : plots) CHECK(is_png(plot));
}

TEST_CASE("run plots: the summary names the best held-out epoch, the totals and the last numbers") {
  const RunFolder run("summary");
  run.write_metrics(epoch_line(1, 2.0, 0.3) + epoch_line(2, 1.5, 0.6) + epoch_line(3, 1.2, 0.5));
  const train::RunSummary summary = train::summarize_run(train::read_epoch_lines(run.path()));
  CHECK(summary.epochs_done == 3);
  CHECK(summary.epochs_planned == 3);
  CHECK(summary.has_eval);
  CHECK(summary.best_eval_accuracy == doctest::Approx(0.6));
  CHECK(summary.best_epoch == 2);
  CHECK(summary.last_eval_accuracy == doctest::Approx(0.5));
  CHECK(summary.last_train_loss == doctest::Approx(1.2));
  CHECK(summary.seconds == doctest::Approx(6.0));
  const std::string text = summary.text();
  CHECK(text.find("best        held-out accuracy 60.0% at epoch 2") != std::string::npos);
  CHECK(summary.to_json().at("best_epoch") == 2);
}

TEST_CASE("run plots: with --eval-every, the last held-out numbers are the last evaluated epoch's") {
  const RunFolder run("eval-every");
  const std::string unevaluated =
      R"({"epoch":3,"epochs":3,"train_loss":1.1,"train_accuracy":0.7,"seconds":2,"images_per_second":100})"
      "\n";
  run.write_metrics(epoch_line(1, 2.0, 0.3) + epoch_line(2, 1.5, 0.6, true) + unevaluated);
  const auto epochs = train::read_epoch_lines(run.path());
  const train::RunSummary summary = train::summarize_run(epochs);
  CHECK(summary.last_eval_accuracy == doctest::Approx(0.6));
  CHECK(summary.last_eval_epoch == 2);
  CHECK(summary.last_train_loss == doctest::Approx(1.1));
  CHECK(summary.text().find("accuracy 60.0% (at epoch 2)") != std::string::npos);
  CHECK(summary.to_json().at("eval_epoch") == 2);
  const auto plots = train::write_run_plots(run.path(), epochs);  // epoch 2's confusion matrix
  REQUIRE(plots.size() == 3);
  CHECK(is_png(plots[2]));
}

TEST_CASE("run plots: a resumed run's repeated epoch counts once, the later line winning") {
  const RunFolder run("resumed");
  run.write_metrics(epoch_line(1, 2.0, 0.3) + epoch_line(2, 1.5, 0.6) + epoch_line(2, 1.4, 0.7) +
                    epoch_line(3, 1.2, 0.5));
  const auto epochs = train::read_epoch_lines(run.path());
  REQUIRE(epochs.size() == 3);
  CHECK(epochs[1].at("train_loss") == 1.4);
}

TEST_CASE("run plots: a run without a held-out split draws no confusion matrix") {
  const RunFolder run("train-only");
  run.write_metrics(
      R"({"epoch":1,"epochs":2,"train_loss":2.0,"train_accuracy":0.2,"seconds":1,"images_per_second":9})"
      "\n");
  const auto epochs = train::read_epoch_lines(run.path());
  CHECK(train::write_run_plots(run.path(), epochs).size() == 2);
  CHECK_FALSE(train::summarize_run(epochs).has_eval);
}

}  // namespace train_run_plots_test
