#include "train/interrupt.hpp"

#include <atomic>

namespace kiln::train {
namespace {

// Lock-free, so reading and writing it in a signal handler is safe.
std::atomic<bool> stop_requested{false};
static_assert(std::atomic<bool>::is_always_lock_free);

extern "C" void on_stop_signal(int signal) {
  stop_requested.store(true, std::memory_order_relaxed);
  std::signal(signal, SIG_DFL);  // the next one ends the process (signal() is async-signal-safe)
}

}  // namespace

StopOnInterrupt::StopOnInterrupt() {
  clear_interrupt();
  struct sigaction action {};
  action.sa_handler = on_stop_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;  // a read or write the signal lands in goes on rather than failing
  // A signal ignored when kiln started (a background job of a script, nohup) stays ignored.
  const auto install = [&](int signal, struct sigaction& previous) {
    sigaction(signal, nullptr, &previous);
    if (previous.sa_handler != SIG_IGN) sigaction(signal, &action, nullptr);
  };
  install(SIGINT, previous_interrupt_);
  install(SIGTERM, previous_terminate_);
}

StopOnInterrupt::~StopOnInterrupt() {
  sigaction(SIGINT, &previous_interrupt_, nullptr);
  sigaction(SIGTERM, &previous_terminate_, nullptr);
}

bool interrupt_requested() { return stop_requested.load(std::memory_order_relaxed); }
void request_interrupt() { stop_requested.store(true, std::memory_order_relaxed); }
void clear_interrupt() { stop_requested.store(false, std::memory_order_relaxed); }

}  // namespace kiln::train
