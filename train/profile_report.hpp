// `kiln train --profile STEPS`: a window of training steps timed op by op (core/profiler.hpp), as a table
// for the terminal and as RUNDIR/profile.json.
//
// The window: STEPS steps of the run's first epoch from its third step on (the first two pay for what a
// run does once: on a GPU, measuring every convolution shape; everywhere, the caching allocator's first
// blocks), or to the epoch's end if it is shorter. Every op is timed where it runs; a row is one op in one
// precision on one device with one detail (a convolution's geometry, an elementwise op's name), its time
// summed over the window and shown per step; for convolutions and matrix products, the rate too (GFLOP/s, of
// the direct convolution's arithmetic whatever algorithm ran). What no op accounts for (the autograd engine's
// bookkeeping, allocating, the host's time between ops; on a GPU, little, since the device's clock is what
// counts there) is the table's last row.
#pragma once

#include <cstdint>
#include <nlohmann/json_fwd.hpp>  // declarations only
#include <string>
#include <string_view>

#include "core/profiler.hpp"

namespace kiln::train {

inline constexpr std::string_view kProfileFile = "profile.json";
// The steps of the first epoch the window skips (the top of the file).
inline constexpr std::int64_t kProfileSkippedSteps = 2;

struct ProfileReport {
  profiler::Profile profile;
  std::int64_t epoch = 0;       // 0-based
  std::int64_t first_step = 0;  // 0-based, within the epoch
  std::int64_t steps = 0;       // in the window
  std::int64_t images = 0;      // trained on in the window

  // {"epoch", "first_step", "steps", "images", "wall_ms", "op_ms", "ops": [{"op", "detail", "device",
  // "dtype", "calls", "ms", "flops"}, ...]}: 1-based epoch and step, times and FLOPs summed over the window
  // (flops 0 for the ops that do not count theirs).
  nlohmann::json to_json() const;
  // The table, the most time first, at most `max_rows` op rows (and a line saying how many more there are),
  // then a line of each op's share of the step, its rows together.
  std::string table(std::size_t max_rows) const;
};

}  // namespace kiln::train
