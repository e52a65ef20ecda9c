#include "core/profiler.hpp"

#include <algorithm>
#include <chrono>
#include <exception>
#include <map>
#include <tuple>
#include <utility>

#include "core/cuda_runtime.hpp"
#include "core/error.hpp"

namespace kiln::profiler {

using Clock = std::chrono::steady_clock;

namespace {
double milliseconds_between(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration<double, std::milli>(to - from).count();
}
}  // namespace

// The calls one Session measured, in order. A CUDA call keeps its interval until finish() reads it; the
// intervals are not reused within a session (reusing one would mean waiting for its events). They are made
// ahead, kPreparedIntervals when the session starts and as many again whenever those run out, so that a
// scope's cost on the host is two event records, not the events' creation too.
class Recorder {
 public:
  static constexpr std::size_t kPreparedIntervals = 4096;

  explicit Recorder(Device device) : device_(device) {
    if (device.is_cuda()) prepare_intervals();
  }

  struct Call {
    std::string op, detail;
    Device device;
    std::optional<DType> dtype;
    std::int64_t flops = 0;
    double milliseconds = 0.0;                       // CPU calls, when they end
    std::unique_ptr<cuda::StreamInterval> interval;  // CUDA calls, read in finish()
  };

  int depth = 0;  // open scopes on the thread, measured or not

  std::size_t begin(std::string_view op, Device device, std::optional<DType> dtype) {
    Call call{std::string(op), {}, device, dtype, 0, 0.0, nullptr};
    if (device.is_cuda()) {
      call.interval = take_interval(device.index);
      call.interval->start();
    }
    calls_.push_back(std::move(call));
    call_start_ = Clock::now();
    return calls_.size() - 1;
  }

  void set_detail(std::size_t index, std::string detail) { calls_[index].detail = std::move(detail); }
  void set_flops(std::size_t index, std::int64_t flops) { calls_[index].flops = flops; }

  // Called from a destructor: an error is kept for finish() to throw.
  void end(std::size_t index) noexcept {
    Call& call = calls_[index];
    try {
      if (call.interval) {
        call.interval->stop();
      } else {
        call.milliseconds = milliseconds_between(call_start_, Clock::now());
      }
    } catch (const std::exception& error) {
      if (error_.empty()) error_ = error.what();
    }
  }

  // The rows: the calls summed by (op, detail, device, dtype), the most time first.
  std::vector<OpTime> rows() {
    if (!error_.empty()) fail("profiler: timing an op failed: ", error_);
    using Key = std::tuple<std::string, std::string, int, int, int>;
    std::map<Key, OpTime> rows;
    for (Call& call : calls_) {
      const double milliseconds = call.interval ? call.interval->milliseconds() : call.milliseconds;
      const Key key{call.op, call.detail, static_cast<int>(call.device.kind), call.device.index,
                    call.dtype ? static_cast<int>(*call.dtype) : -1};
      OpTime& row = rows[key];
      if (row.calls == 0) row = {call.op, call.detail, call.device, call.dtype, 0, 0.0, 0};
      ++row.calls;
      row.milliseconds += milliseconds;
      row.flops += call.flops;
    }
    std::vector<OpTime> sorted;
    sorted.reserve(rows.size());
    for (auto& [key, row] : rows) sorted.push_back(std::move(row));
    std::stable_sort(sorted.begin(), sorted.end(),
                     [](const OpTime& a, const OpTime& b) { return a.milliseconds > b.milliseconds; });
    return sorted;
  }

 private:
  std::unique_ptr<cuda::StreamInterval> take_interval(int device_index) {
    if (device_index != device_.index || !device_.is_cuda())  // another device than the session's: made now
      return std::make_unique<cuda::StreamInterval>(device_index);
    if (prepared_.empty()) prepare_intervals();
    std::unique_ptr<cuda::StreamInterval> interval = std::move(prepared_.back());
    prepared_.pop_back();
    return interval;
  }
  void prepare_intervals() {
    prepared_.reserve(prepared_.size() + kPreparedIntervals);
    for (std::size_t i = 0; i < kPreparedIntervals; ++i)
      prepared_.push_back(std::make_unique<cuda::StreamInterval>(device_.index));
  }

  Device device_;
  std::vector<std::unique_ptr<cuda::StreamInterval>> prepared_;  // not yet used
  std::vector<Call> calls_;
  Clock::time_point call_start_;  // the open measured call's (one at a time: only outermost scopes measure)
  std::string error_;
};

namespace {
thread_local Recorder* t_recorder = nullptr;  // the calling thread's open Session's
}  // namespace

double Profile::op_milliseconds() const {
  double total = 0.0;
  for (const OpTime& op : ops) total += op.milliseconds;
  return total;
}

std::int64_t Profile::flops() const {
  std::int64_t total = 0;
  for (const OpTime& op : ops) total += op.flops;
  return total;
}

Session::Session(Device device) : device_(device) {
  KILN_CHECK(t_recorder == nullptr, "profiler: this thread is already recording a profile");
  if (device.is_cuda()) cuda::synchronize(device.index);
  recorder_ = std::make_unique<Recorder>(device);
  t_recorder = recorder_.get();
  start_ = Clock::now();
}

Session::~Session() {
  if (recorder_ && t_recorder == recorder_.get()) t_recorder = nullptr;
}

Profile Session::finish() {
  KILN_CHECK(recorder_ != nullptr && t_recorder == recorder_.get(), "profiler: the session has finished");
  KILN_CHECK(recorder_->depth == 0, "profiler: finish() inside an op's scope");
  t_recorder = nullptr;
  if (device_.is_cuda()) cuda::synchronize(device_.index);
  Profile profile;
  profile.wall_milliseconds = milliseconds_between(start_, Clock::now());
  profile.ops = recorder_->rows();
  recorder_.reset();
  return profile;
}

Scope::Scope(std::string_view op, Device device, std::optional<DType> dtype) : recorder_(t_recorder) {
  if (recorder_ == nullptr) return;
  if (recorder_->depth++ > 0) return;  // inside another measured (or skipped) scope: part of its time
  if (device.is_cuda() && cuda::is_capturing(device.index)) return;  // a graph's capture, not a run
  try {
    record_ = recorder_->begin(op, device, dtype);
  } catch (...) {
    --recorder_->depth;  // the destructor of a scope whose constructor throws does not run
    throw;
  }
  measuring_ = true;
}

Scope::~Scope() {
  if (recorder_ == nullptr) return;
  if (measuring_) recorder_->end(record_);
  --recorder_->depth;
}

void Scope::set_detail(std::string detail) {
  if (measuring_) recorder_->set_detail(record_, std::move(detail));
}

void Scope::set_flops(std::int64_t flops) {
  if (measuring_) recorder_->set_flops(record_, flops);
}

}  // namespace kiln::profiler
