// A one-line progress bar on stderr for long loops:
//   epoch 3/30 [##########..........] 98/196  loss 1.2345  1843 img/s  ETA 0:53
// It draws only when stderr is a terminal, and at most ten times a second, so logs and pipes stay clean.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace kiln::cli {

class ProgressBar {
 public:
  ProgressBar();
  // Redraws the bar for `done` of `total` units; `label` leads it, `details` follows it.
  void update(const std::string& label, std::int64_t done, std::int64_t total, const std::string& details);
  // Erases the bar so the next line prints cleanly.
  void clear();
  bool enabled() const { return enabled_; }

 private:
  bool enabled_;
  bool drawn_ = false;
  std::chrono::steady_clock::time_point last_draw_;
};

std::string format_duration(double seconds);  // "1:02:03" or "2:03"

}  // namespace kiln::cli
