// Observers for tests of train::train: one that keeps the run's plan (what on_start reported) and one that
// interrupts a run after its first epoch's checkpoint is written, as a crash would.
#pragma once

#include <nlohmann/json.hpp>  // the full type: Recorder holds a json by value
#include <stdexcept>

#include "train/trainer.hpp"

namespace kiln::testing {

class Recorder : public train::TrainingObserver {
 public:
  void on_start(const nlohmann::json& start) override { plan = start; }
  nlohmann::json plan;
};

class InterruptAfterFirstEpoch : public train::TrainingObserver {
 public:
  void on_epoch(const train::EpochSummary&) override { throw std::runtime_error("simulated interruption"); }
};

}  // namespace kiln::testing
