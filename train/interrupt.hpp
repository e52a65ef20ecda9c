// Stopping a training run with Ctrl-C without losing what it has saved, or leaving in silence.
//
// While a StopOnInterrupt lives (kiln train holds one around the run), the first SIGINT or SIGTERM only
// sets a flag and puts the signal's default action back, so a second one ends the process at once. The
// trainer reads the flag after each training step and after each epoch's checkpoint and stops there by
// throwing Interrupted, whose message says where the run stood, which epoch last.kiln holds and how to go
// on (--resume). A step is never cut in half, and last.kiln is written atomically anyway
// (train/atomic_file.hpp), so the checkpoint on disk is always a whole epoch.
//
// Without a StopOnInterrupt (a program using the library that handles signals itself) the flag stays
// clear unless request_interrupt() sets it: tests use that to stop a run at a chosen step.
#pragma once

#include <csignal>

#include "core/error.hpp"

namespace kiln::train {

// The run stopped because it was asked to: not a failure of the run, so kiln exits 130 (as a shell reports
// a process ended by SIGINT) with this message rather than an error.
class Interrupted : public Error {
 public:
  using Error::Error;
};

class StopOnInterrupt {
 public:
  StopOnInterrupt();   // clears the flag, installs the handlers
  ~StopOnInterrupt();  // restores the handlers that were there before
  StopOnInterrupt(const StopOnInterrupt&) = delete;
  StopOnInterrupt& operator=(const StopOnInterrupt&) = delete;

 private:
  struct sigaction previous_interrupt_ {
  }, previous_terminate_{};
};

// Whether a stop was asked for since the last StopOnInterrupt was made (or clear_interrupt()).
bool interrupt_requested();
// Asks for a stop as a signal would (async-signal-safe).
void request_interrupt();
void clear_interrupt();

}  // namespace kiln::train
