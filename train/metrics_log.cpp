#include "train/metrics_log.hpp"

#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "core/error.hpp"
#include "train/atomic_file.hpp"

namespace kiln::train {
namespace {

namespace fs = std::filesystem;

fs::path log_file(const fs::path& run_dir) { return run_dir / "metrics.jsonl"; }

// What a line that is not a JSON object means: to a reader, a log that was edited or damaged, an error naming
// the line; to --resume's rewrite, most likely an append a crash cut short, dropped.
enum class MalformedLine { Error, Dropped };

// The log's epoch lines by epoch number (a later line for an epoch replaces an earlier one); lines without an
// integer "epoch" are left out. An unreadable file reads as empty.
std::map<std::int64_t, nlohmann::json> epoch_lines(const fs::path& file, MalformedLine malformed) {
  std::map<std::int64_t, nlohmann::json> by_epoch;
  std::ifstream in(file);
  std::string text;
  for (int number = 1; std::getline(in, text); ++number) {
    if (text.empty()) continue;
    nlohmann::json line = nlohmann::json::parse(text, nullptr, false);
    if (!line.is_object()) {
      KILN_CHECK(malformed == MalformedLine::Dropped, file.string(), ":", number, ": not a JSON object");
      continue;
    }
    if (!line.contains("epoch") || !line["epoch"].is_number_integer()) continue;
    const auto epoch = line["epoch"].get<std::int64_t>();  // before the line is moved from
    by_epoch[epoch] = std::move(line);
  }
  return by_epoch;
}

}  // namespace

void append_metrics_line(const fs::path& run_dir, const nlohmann::json& line) {
  std::ofstream out(log_file(run_dir), std::ios::app);
  out << line.dump() << '\n';
  // The line sits in the stream's buffer until close writes it: a full disk fails there, and a destructor
  // would swallow that.
  out.close();
  KILN_CHECK(!out.fail(), "cannot append to ", log_file(run_dir).string(), " (is the disk full?)");
}

std::vector<nlohmann::json> read_epoch_lines(const fs::path& run_dir) {
  const fs::path file = log_file(run_dir);
  KILN_CHECK(std::ifstream(file).good(), file.string(),
             ": cannot read the run's metrics (is this a kiln run folder?)");
  std::map<std::int64_t, nlohmann::json> by_epoch = epoch_lines(file, MalformedLine::Error);
  KILN_CHECK(!by_epoch.empty(), file.string(), ": holds no epoch yet");
  std::vector<nlohmann::json> epochs;
  for (auto& [epoch, line] : by_epoch) epochs.push_back(std::move(line));
  return epochs;
}

void rewrite_metrics_log(const fs::path& run_dir, const std::vector<nlohmann::json>& history) {
  const std::map<std::int64_t, nlohmann::json> logged =
      epoch_lines(log_file(run_dir), MalformedLine::Dropped);
  std::string text;
  for (const nlohmann::json& entry : history) {
    const auto found = logged.find(entry.at("epoch").get<std::int64_t>());
    text += (found != logged.end() ? found->second : entry).dump() + '\n';
  }
  write_file_atomically(log_file(run_dir), text, "metrics log");
}

}  // namespace kiln::train
