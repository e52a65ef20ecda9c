// The pictures and the summary of a training run, from RUNDIR/metrics.jsonl's epoch lines (metrics_log.hpp):
// kiln train redraws them after epochs (at most every 5 seconds, and after its last), `kiln report RUNDIR` on
// demand.
//
//   RUNDIR/loss.png              train and held-out loss per epoch
//   RUNDIR/accuracy.png          train and held-out accuracy (and held-out macro recall) per epoch
//   RUNDIR/confusion_matrix.png  the last evaluated epoch's held-out confusion matrix (when the run has a
//                                held-out split)
//   RUNDIR/label_metrics.png     multi-label runs, instead of the accuracy and confusion-matrix pictures:
//                                held-out mAP, macro F1 and exact match per epoch
#pragma once

#include <filesystem>
#include <nlohmann/json_fwd.hpp>  // declarations only; the full json.hpp costs each includer ~2 s
#include <string>
#include <vector>

#include "plot/canvas.hpp"

namespace kiln::train {

// Writes `picture` as a PNG at `path`, atomically (train/atomic_file.hpp: a temporary file, fsync,
// rename). Throws kiln::Error naming the file when it cannot be written.
void save_png(const plot::Canvas& picture, const std::filesystem::path& path);

// Draws the plots above into run_dir and returns their paths. Each is written atomically. Those of the four
// that the run does not draw (an earlier run's in the same folder) are removed.
std::vector<std::filesystem::path> write_run_plots(const std::filesystem::path& run_dir,
                                                   const std::vector<nlohmann::json>& epochs);

// The run in a few lines: epochs, the best held-out accuracy and its epoch, the last epoch's numbers,
// total training time and throughput.
struct RunSummary {
  std::int64_t epochs_done = 0, epochs_planned = 0;
  double last_train_loss = 0, last_train_accuracy = 0;
  bool has_eval = false;
  // The last evaluated epoch's held-out numbers (the last epoch's, unless --eval-every skipped it).
  double last_eval_loss = 0, last_eval_accuracy = 0, best_eval_accuracy = 0;
  std::int64_t last_eval_epoch = 0, best_epoch = 0;
  double seconds = 0, images_per_second = 0;  // total training time; mean images/s over the epochs
  nlohmann::json to_json() const;
  std::string text() const;
};
RunSummary summarize_run(const std::vector<nlohmann::json>& epochs);

}  // namespace kiln::train
