// RUNDIR/metrics.jsonl, a run's log: one JSON object per epoch, appended by the trainer as each epoch
// ends ({"epoch": 3, "train_loss": ..., "eval_accuracy": ..., "confusion_matrix": [...], ...}), read back by
// the plots (run_plots.hpp) and `kiln report`. Appending keeps every epoch a run has finished, whatever
// happens to the next; a crash in the middle of an append leaves at most the last line cut short, which
// --resume's rewrite drops.
#pragma once

#include <filesystem>
#include <nlohmann/json_fwd.hpp>  // declarations only; the full json.hpp costs each includer ~2 s
#include <vector>

namespace kiln::train {

// Appends `line` (one epoch's numbers) to RUNDIR/metrics.jsonl. Throws kiln::Error naming the file when it
// cannot be written.
void append_metrics_line(const std::filesystem::path& run_dir, const nlohmann::json& line);

// The epoch lines of RUNDIR/metrics.jsonl, in epoch order. Throws kiln::Error naming the file (and the line)
// when it is missing, unreadable, holds a line that is not a JSON object, or holds no epoch line. When a run
// was resumed after a crash, an epoch can appear twice; the later line wins.
std::vector<nlohmann::json> read_epoch_lines(const std::filesystem::path& run_dir);

// On --resume: RUNDIR/metrics.jsonl rewritten (atomically) to the checkpoint's epochs, `history` (one
// object each, with "epoch"), one line each: the log's own last whole line for the epoch (it holds the
// confusion matrix, which the checkpoint's history leaves out), else the history's. A line cut short by a
// crash in the middle of an append, and epochs past the checkpoint's (a last.kiln restored from an older
// copy), are dropped, so the resumed epochs' lines follow whole ones.
void rewrite_metrics_log(const std::filesystem::path& run_dir, const std::vector<nlohmann::json>& history);

}  // namespace kiln::train
