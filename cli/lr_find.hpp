// kiln train DATA ... --lr-find: the learning-rate range test (train/lr_range_test.hpp) in place of the
// run, on the same options. Prints the curve (every few steps), the stop, and the suggested --lr; writes
// RUNDIR/lr_find.png (the losses against log10 of the rate, the suggestion marked) and RUNDIR/lr_find.json.
// With --json, one {"event": "lr_range_step", ...} line per step and the result as one object.
#pragma once

#include "train/lr_range_test.hpp"
#include "train/trainer.hpp"

namespace kiln::cli {

void run_lr_find(const train::TrainConfig& config, const train::LrRangeOptions& options, bool json);

}  // namespace kiln::cli
