// Where the time goes, op by op: kiln's profiler, in the spirit of torch.profiler's per-op table.
//
// Every kernel dispatch function (kernels/<family>/dispatch.cpp, the one place each op picks its kernel)
// opens a Scope. While a Session is open on the calling thread, each outermost Scope on that thread is
// timed and added to its row: the op, its device, its element type and, for a few ops, a detail (the
// convolution's geometry, the elementwise op's name), so that one table says which op of which layer, on
// which device and in which precision, took the time. The ops whose arithmetic is their cost (convolutions
// and matrix products) also count their floating-point operations, so that a row says how fast it ran, and
// so that a dry run of a network (models/summary.hpp) counts its FLOPs from the shapes its ops computed.
// Scopes inside another (a dispatch that dispatches again) are part of the outer one's time and are not
// counted twice. Other threads are not recorded: the data loader's threads and OpenMP's workers run with no
// Session of their own.
//
// How a scope is timed depends on where its op runs:
//   CPU    the wall time of the scope (the kernels are synchronous: they have finished when it closes);
//   CUDA   the device time between two timing events recorded on the compute stream at the scope's start
//          and end (cuda::StreamInterval), resolved when the Session finishes: the host never waits at a
//          scope. On a GPU the host queues work ahead, so a scope's time is when the device reached its
//          end minus when it reached its start: the op's kernels, and any time the device spent waiting
//          for the host to queue them (a step bound by launching shows up as time in the ops it launches).
// A Scope on a CUDA stream that is being captured into a graph records nothing (the graph's replays are not
// the capture), so a Session does not see inside a CUDA graph.
//
// Cost: with no Session on the thread a Scope is a thread-local read. With one, a clock read or two event
// records per op (on a GPU about a microsecond of host time each), which slows a step bound by launching.
//
//   profiler::Session session(device);           // synchronizes a CUDA device first
//   ... run the work ...
//   const profiler::Profile profile = session.finish();  // synchronizes again, resolves the events
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/device.hpp"
#include "core/dtype.hpp"

namespace kiln::profiler {

// One row: every measured scope with the same op, detail, device and element type.
struct OpTime {
  std::string op;      // the dispatch function: "conv2d_forward"
  std::string detail;  // "" or what tells calls of one op apart ("16->32 3x3 s2 @32x32 n128")
  Device device = Device::cpu();
  std::optional<DType> dtype;  // the element type the op computes in; none where it has none
  std::int64_t calls = 0;
  double milliseconds = 0.0;  // summed over the calls
  // Summed over the calls: 2 a multiply-add of the op's nominal arithmetic (a convolution's direct
  // products, whichever algorithm ran: Winograd's rate is then comparable with the others', as in cuDNN's
  // and PyTorch's figures). 0 for the ops that do not count theirs (the memory-bound ones).
  std::int64_t flops = 0;
};

struct Profile {
  std::vector<OpTime> ops;         // the rows, the most time first
  double wall_milliseconds = 0.0;  // from the Session's start to its finish, on the host's clock
  // The time the rows account for; the rest of wall_milliseconds went to what no scope measures (the
  // autograd engine's bookkeeping, Python-free but not free; allocating; waiting for data).
  double op_milliseconds() const;
  // The rows' floating-point operations (OpTime::flops) together.
  std::int64_t flops() const;
};

class Recorder;

// Records this thread's scopes from construction to finish(). One at a time per thread.
class Session {
 public:
  // `device`: where the work runs; a CUDA device is synchronized here and in finish(), so that the wall
  // time covers the work the session queued and nothing queued before it.
  explicit Session(Device device);
  ~Session();
  Session(const Session&) = delete;
  Session& operator=(const Session&) = delete;

  // Stops recording and returns the table (waits for the device's timing events). Once only.
  Profile finish();

 private:
  std::unique_ptr<Recorder> recorder_;
  Device device_;
  std::chrono::steady_clock::time_point start_;
};

// Times the enclosing block as one call of `op` when the thread has a Session and no enclosing Scope.
class Scope {
 public:
  Scope(std::string_view op, Device device, std::optional<DType> dtype);
  ~Scope();
  Scope(const Scope&) = delete;
  Scope& operator=(const Scope&) = delete;

  // Whether this scope is being timed: worth building a detail string for.
  bool measuring() const { return measuring_; }
  // The row's detail (only while measuring; otherwise ignored).
  void set_detail(std::string detail);
  // This call's floating-point operations (OpTime::flops; only while measuring).
  void set_flops(std::int64_t flops);

 private:
  Recorder* recorder_ = nullptr;  // the thread's, when it had one at construction
  bool measuring_ = false;
  std::size_t record_ = 0;  // this call's slot in the recorder
};

}  // namespace kiln::profiler
