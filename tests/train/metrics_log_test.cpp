// RUNDIR/metrics.jsonl: appended epoch lines read back in epoch order, the errors that name the file and the
// line, and --resume's rewrite, which keeps whole logged lines and drops a torn one.
#include "train/metrics_log.hpp"

#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>

#include "core/error.hpp"
#include "tests/support/scratch_folder.hpp"

namespace train_metrics_log_test {

namespace fs = std::filesystem;
using namespace kiln;

namespace {

fs::path log_of(const testing::ScratchFolder& run) { return run.path() / "metrics.jsonl"; }

void write_log(const testing::ScratchFolder& run, const std::string& text) {
  std::ofstream(log_of(run)) << text;
}

std::string read_log(const testing::ScratchFolder& run) {
  std::ostringstream text;
  text << std::ifstream(log_of(run)).rdbuf();
  return text.str();
}

}  // namespace

TEST_CASE("metrics log: appended lines read back by epoch, a repeated epoch's later line winning") {
  const testing::ScratchFolder run("kiln-metrics-log-test", "read");
  train::append_metrics_line(run.path(), {{"epoch", 1}, {"train_loss", 2.0}});
  train::append_metrics_line(run.path(), {{"event", "note"}});  // not an epoch line: left out
  train::append_metrics_line(run.path(), {{"epoch", 2}, {"train_loss", 1.5}});
  train::append_metrics_line(run.path(), {{"epoch", 2}, {"train_loss", 1.25}});  // resumed after a crash
  const std::vector<nlohmann::json> epochs = train::read_epoch_lines(run.path());
  REQUIRE(epochs.size() == 2);
  CHECK(epochs[0]["epoch"] == 1);
  CHECK(epochs[1]["train_loss"] == 1.25);
}

TEST_CASE("metrics log: an append the disk refuses is an error, not a lost line") {
  const testing::ScratchFolder run("kiln-metrics-log-test", "full");
  // /dev/full takes the open and fails every write with ENOSPC, as a full disk does.
  REQUIRE(fs::exists("/dev/full"));
  fs::create_symlink("/dev/full", log_of(run));
  CHECK_THROWS_WITH_AS(train::append_metrics_line(run.path(), {{"epoch", 1}}),
                       doctest::Contains(("cannot append to " + log_of(run).string()).c_str()), Error);
}

TEST_CASE("metrics log: errors name the file and the line") {
  const testing::ScratchFolder run("kiln-metrics-log-test", "errors");
  CHECK_THROWS_WITH_AS(train::read_epoch_lines(run.path()),
                       doctest::Contains((log_of(run).string() + ": cannot read").c_str()), Error);
  write_log(run, R"({"epoch":1})"
                 "\nnot json\n");
  CHECK_THROWS_WITH_AS(train::read_epoch_lines(run.path()),
                       doctest::Contains((log_of(run).string() + ":2: not a JSON object").c_str()), Error);
  write_log(run, R"({"event":"start"})"
                 "\n");
  CHECK_THROWS_WITH_AS(train::read_epoch_lines(run.path()), doctest::Contains("holds no epoch yet"), Error);
}

TEST_CASE("metrics log: --resume's rewrite keeps the checkpoint's epochs, whole") {
  const testing::ScratchFolder run("kiln-metrics-log-test", "rewrite");
  // The checkpoint's history: epochs 1 to 3, without the confusion matrices the log's lines hold.
  const std::vector<nlohmann::json> history{{{"epoch", 1}, {"train_loss", 2.0}},
                                            {{"epoch", 2}, {"train_loss", 1.5}},
                                            {{"epoch", 3}, {"train_loss", 1.0}}};
  SUBCASE("the log's own lines where whole, the history's for a line a crash cut short") {
    write_log(run, R"({"epoch":1,"train_loss":2.0,"confusion":[[1]]})"
                   "\n"
                   R"({"epoch":2,"train_loss":1.5,"confusion":[[2]]})"
                   "\n"
                   R"({"epoch":3,"train_lo)");
    train::rewrite_metrics_log(run.path(), history);
    CHECK(read_log(run) == R"({"confusion":[[1]],"epoch":1,"train_loss":2.0})"
                           "\n"
                           R"({"confusion":[[2]],"epoch":2,"train_loss":1.5})"
                           "\n"
                           R"({"epoch":3,"train_loss":1.0})"
                           "\n");
  }
  SUBCASE("epochs past the checkpoint's are dropped") {
    write_log(run, R"({"epoch":4,"train_loss":0.5})"
                   "\n");
    train::rewrite_metrics_log(run.path(), history);
    CHECK(train::read_epoch_lines(run.path()).size() == 3);
    CHECK(read_log(run).find(R"("epoch":4)") == std::string::npos);
  }
  SUBCASE("no log at all: the history's lines") {
    train::rewrite_metrics_log(run.path(), history);
    CHECK(train::read_epoch_lines(run.path()) == history);
  }
}

}  // namespace train_metrics_log_test
