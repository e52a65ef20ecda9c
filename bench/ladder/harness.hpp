// What both ladder benchmarks share (gemm_ladder.cpp against cuBLAS, conv2d_ladder.cpp against cuDNN):
// checked CUDA calls, device buffers, the rotating input copies that keep operands out of L2, the event
// timing, the check of a result against the vendor's, and the command-line options they have in common.
//
// How a case is timed (time_runs):
//   1. Warm-up: two untimed runs (lazy module loading, cuBLAS/cuDNN heuristics, clocks ramping up); the last
//      one is timed with events to size what follows.
//   2. Samples: CUDA events around a batch of back-to-back runs, sized so a sample lasts about 0.5 ms (one
//      run for slow kernels, up to 200 for a 3-microsecond one), since an event pair resolves about half a
//      microsecond. The batch is enqueued behind a gate kernel (launch_gate.cu) that holds the stream until
//      every launch of the sample is queued: the runs then execute back to back and the sample measures the
//      device, not how fast the host can launch (cuDNN spends microseconds of host time per call).
//   3. Samples repeat until the case's budget is spent (at least 5, or 3 for a run slower than a fifth of
//      the budget; at most 200). Reported: the median per-run time over samples, and the minimum.
//   Every run reads the next copy of the inputs (RotatingInputs): the copies together hold at least three
//   times the L2 cache, so no run finds its operands in L2 from the run before (an H100's 50 MiB L2 holds a
//   whole 2048x2048 fp32 GEMM). The output is one buffer, poisoned (NaN) before the checked run and again
//   before the timing, never timed.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "core/bfloat16.hpp"
#include "core/cuda_runtime.hpp"
#include "core/error.hpp"
#include "kernels/ladder/precision.hpp"

namespace kiln::bench::ladder {

using kernels::ladder::Precision;
using kernels::ladder::precision_name;

// ---- checked CUDA calls ----------------------------------------------------------------------------------

inline void check_cuda(cudaError_t status, const char* call, const char* file, int line) {
  if (status != cudaSuccess)
    kiln::fail("CUDA: ", call, " failed: ", cudaGetErrorName(status), ": ", cudaGetErrorString(status), " (",
               file, ":", line, ")");
}
// LADDER_CUDA(cudaMalloc(&p, bytes)): throws a kiln::Error naming the call when it fails.
#define LADDER_CUDA(call) ::kiln::bench::ladder::check_cuda((call), #call, __FILE__, __LINE__)

// After a row failed: whether the device still works. A kernel that faulted (an illegal address) leaves
// the context broken for good, and every later call fails: the program then stops, keeping the rows so far.
inline bool device_still_usable() {
  cudaGetLastError();  // clears a non-sticky launch error
  if (cudaDeviceSynchronize() == cudaSuccess) return true;
  return cudaDeviceSynchronize() == cudaSuccess;  // a sticky error fails again
}

// ---- device memory ----------------------------------------------------------------------------------------

// cudaMalloc'd bytes (256-byte aligned), freed with the object.
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  explicit DeviceBuffer(std::size_t bytes) : bytes_(bytes) {
    if (bytes > 0) LADDER_CUDA(cudaMalloc(&data_, bytes));
  }
  ~DeviceBuffer() {
    if (data_ != nullptr) cudaFree(data_);  // unchecked: a destructor must not throw
  }
  DeviceBuffer(DeviceBuffer&& other) noexcept
      : data_(std::exchange(other.data_, nullptr)), bytes_(std::exchange(other.bytes_, 0)) {}
  DeviceBuffer& operator=(DeviceBuffer&& other) noexcept {
    std::swap(data_, other.data_);
    std::swap(bytes_, other.bytes_);
    return *this;
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  void* get() const { return data_; }
  template <typename T>
  T* as() const {
    return static_cast<T*>(data_);
  }
  std::size_t bytes() const { return bytes_; }

  // Every byte 0xff: as float, a NaN, so an element the kernel failed to write cannot pass the check.
  void poison() const {
    if (bytes_ > 0) LADDER_CUDA(cudaMemset(data_, 0xff, bytes_));
  }
  void upload(const void* host, std::size_t bytes, std::size_t offset = 0) const {
    KILN_CHECK(offset + bytes <= bytes_, "DeviceBuffer::upload: ", bytes, " bytes at ", offset, " overflow ",
               bytes_);
    LADDER_CUDA(cudaMemcpy(static_cast<char*>(data_) + offset, host, bytes, cudaMemcpyHostToDevice));
  }
  void download(void* host, std::size_t bytes) const {
    KILN_CHECK(bytes <= bytes_, "DeviceBuffer::download: ", bytes, " bytes from a buffer of ", bytes_);
    LADDER_CUDA(cudaMemcpy(host, data_, bytes, cudaMemcpyDeviceToHost));
  }

 private:
  void* data_ = nullptr;
  std::size_t bytes_ = 0;
};

inline std::size_t round_up(std::size_t bytes, std::size_t multiple) {
  return (bytes + multiple - 1) / multiple * multiple;
}

// Copies of one case's inputs, each tensor starting on 256 bytes, `copies` of them in one allocation with
// copies x (bytes of one set) >= 3 x L2, and at least 2 (so consecutive runs never share inputs).
class RotatingInputs {
 public:
  RotatingInputs(const std::vector<std::size_t>& tensor_bytes, std::size_t l2_bytes) {
    std::size_t set_bytes = 0;
    for (std::size_t bytes : tensor_bytes) {
      offsets_.push_back(set_bytes);
      set_bytes += round_up(std::max<std::size_t>(bytes, 1), 256);
    }
    set_bytes_ = set_bytes;
    const std::size_t wanted = (3 * l2_bytes + set_bytes - 1) / set_bytes;
    copies_ = static_cast<int>(std::max<std::size_t>(2, wanted));
    buffer_ = DeviceBuffer(set_bytes_ * static_cast<std::size_t>(copies_));
  }

  int copies() const { return copies_; }
  std::size_t total_bytes() const { return buffer_.bytes(); }
  void* tensor(int copy, int index) const {
    return buffer_.as<char>() + static_cast<std::size_t>(copy) * set_bytes_ +
           offsets_.at(static_cast<std::size_t>(index));
  }
  // Uploads tensor `index` of copy 0 from the host. Call replicate() once every tensor is filled.
  void fill(int index, const void* host, std::size_t bytes) const {
    LADDER_CUDA(cudaMemcpy(tensor(0, index), host, bytes, cudaMemcpyHostToDevice));
  }
  // Copies copy 0 into every other copy, doubling: the copies are contiguous, so copies [0, n) go to
  // [n, 2n) in one call (thousands of copies of a small layer's inputs take a dozen calls).
  void replicate() const {
    for (int done = 1; done < copies_; done *= 2) {
      const int count = std::min(done, copies_ - done);
      LADDER_CUDA(cudaMemcpy(tensor(done, 0), tensor(0, 0), set_bytes_ * static_cast<std::size_t>(count),
                             cudaMemcpyDeviceToDevice));
    }
  }

 private:
  std::vector<std::size_t> offsets_;
  std::size_t set_bytes_ = 0;
  int copies_ = 0;
  DeviceBuffer buffer_;
};

// ---- the device ------------------------------------------------------------------------------------------

struct DeviceInfo {
  std::string description;  // "NVIDIA H200 (sm_90, 139.8 GiB)"
  int multiprocessors = 0;
  std::size_t l2_bytes = 0;
};

inline DeviceInfo query_device(const std::string& description) {
  DeviceInfo info;
  info.description = description;
  int value = 0;
  LADDER_CUDA(cudaDeviceGetAttribute(&value, cudaDevAttrMultiProcessorCount, 0));
  info.multiprocessors = value;
  LADDER_CUDA(cudaDeviceGetAttribute(&value, cudaDevAttrL2CacheSize, 0));
  info.l2_bytes = static_cast<std::size_t>(value);
  return info;
}

inline double mebibytes(std::size_t bytes) { return static_cast<double>(bytes) / (1024.0 * 1024.0); }

// ---- timing -----------------------------------------------------------------------------------------------

// The gate (launch_gate.cu): gate_hold() enqueues on the default stream a kernel that spins until
// gate_release() or until `timeout_ms` of device time passed. gate_timed_out(), read once the work behind
// the gate has finished, says whether it gave up waiting: the host took longer than the timeout to enqueue
// the sample (or a call blocked on the stream), so the sample includes the wait and is not trusted.
void gate_hold(double timeout_ms);
void gate_release();
bool gate_timed_out();

struct TimingOptions {
  double budget_ms = 50.0;  // timed samples stop once they have taken this long (see the minimum below)
  double sample_ms = 0.5;   // a sample's target length: runs per sample = sample_ms / one run, in [1, 200]
  int max_samples = 200;
  bool gate = true;  // --no-gate: samples without the gate kernel (then launch rate counts too)
};

struct Timing {
  double median_ms = 0.0;  // per run: the median over samples of (sample time / runs in it)
  double min_ms = 0.0;
  int samples = 0;
  int runs_per_sample = 0;
  bool gated = false;  // whether the samples were gated (false after a gate timeout: see above)
};

class EventPair {
 public:
  EventPair() {
    LADDER_CUDA(cudaEventCreate(&start_));
    LADDER_CUDA(cudaEventCreate(&stop_));
  }
  ~EventPair() {
    cudaEventDestroy(start_);
    cudaEventDestroy(stop_);
  }
  EventPair(const EventPair&) = delete;
  EventPair& operator=(const EventPair&) = delete;
  void start() { LADDER_CUDA(cudaEventRecord(start_, 0)); }
  void stop() { LADDER_CUDA(cudaEventRecord(stop_, 0)); }
  double elapsed_ms() {
    LADDER_CUDA(cudaEventSynchronize(stop_));
    float ms = 0.0f;
    LADDER_CUDA(cudaEventElapsedTime(&ms, start_, stop_));
    return ms;
  }

 private:
  cudaEvent_t start_ = nullptr, stop_ = nullptr;
};

// `run(copy)` enqueues one run on the default stream that reads input copy `copy` (0 <= copy < copies);
// it must not synchronize. Returns the per-run times as described at the top of this file.
template <typename Run>
Timing time_runs(const TimingOptions& options, int copies, Run&& run) {
  int next_copy = 0;
  const auto launch = [&] {
    run(next_copy);
    next_copy = (next_copy + 1) % copies;
  };
  EventPair events;
  double one_run_ms = 0.0;
  for (int warmup = 0; warmup < 2; ++warmup) {
    events.start();
    launch();
    events.stop();
    one_run_ms = events.elapsed_ms();
    if (one_run_ms > options.budget_ms) break;  // one untimed run is enough for a slow kernel
  }
  Timing timing;
  timing.runs_per_sample =
      static_cast<int>(std::clamp(std::ceil(options.sample_ms / std::max(one_run_ms, 1e-4)), 1.0, 200.0));
  const int min_samples = one_run_ms * 5 > options.budget_ms ? 3 : 5;
  // The gate's timeout: ample for the host to enqueue a sample (200 launches), short enough that a library
  // call that blocks on the stream costs little before the gate is dropped for this case.
  constexpr double kGateTimeoutMs = 50.0;
  bool gated = options.gate;
  std::vector<double> per_run;
  double spent_ms = 0.0;
  while (static_cast<int>(per_run.size()) < min_samples ||
         (spent_ms < options.budget_ms && static_cast<int>(per_run.size()) < options.max_samples)) {
    if (gated) gate_hold(kGateTimeoutMs);
    events.start();
    for (int i = 0; i < timing.runs_per_sample; ++i) launch();
    events.stop();
    if (gated) gate_release();
    const double ms = events.elapsed_ms();  // waits for the sample, and so for the gate kernel before it
    if (gated && gate_timed_out()) {
      gated = false;  // the sample includes the gate's wait: drop the samples, time ungated from now on
      per_run.clear();
      spent_ms = 0.0;
      continue;
    }
    spent_ms += ms;
    per_run.push_back(ms / timing.runs_per_sample);
  }
  std::sort(per_run.begin(), per_run.end());
  const std::size_t n = per_run.size();
  timing.median_ms = n % 2 ? per_run[n / 2] : 0.5 * (per_run[n / 2 - 1] + per_run[n / 2]);
  timing.min_ms = per_run.front();
  timing.samples = static_cast<int>(n);
  timing.gated = gated;
  return timing;
}

// ---- inputs and the check ---------------------------------------------------------------------------------

// n values uniform in [-1, 1), each exactly representable in bfloat16. Every precision then multiplies the
// same values: converting them to bfloat16 or TF32 loses nothing, so one fp32 result from the vendor
// (products exact, float sums) is the reference for every row, and a row's error is its summation alone.
inline std::vector<float> random_bf16_exact(std::size_t n, std::uint64_t seed) {
  std::vector<float> values(n);
  std::uint64_t state = seed * 0x9e3779b97f4a7c15ull + 1;
  for (float& value : values) {
    state ^= state << 13;  // xorshift64: fast, and good enough for benchmark operands
    state ^= state >> 7;
    state ^= state << 17;
    const float uniform = static_cast<float>(state >> 40) * 0x1p-24f;  // [0, 1)
    value = static_cast<float>(bfloat16(2.0f * uniform - 1.0f));
  }
  return values;
}

inline std::vector<bfloat16> to_bf16(const std::vector<float>& values) {
  std::vector<bfloat16> result(values.size());
  for (std::size_t i = 0; i < values.size(); ++i) result[i] = bfloat16(values[i]);
  return result;
}

inline std::vector<float> absolute(const std::vector<float>& values) {
  std::vector<float> result(values.size());
  for (std::size_t i = 0; i < values.size(); ++i) result[i] = std::fabs(values[i]);
  return result;
}

// The largest error relative to the element's scale, sum |a| |b| over its products (the vendor's result on
// |inputs|): max_i |out_i - ref_i| / scale_i. A NaN (an element never written: the output was poisoned)
// counts as infinite.
inline double max_scaled_error(const float* out, const float* reference, const float* scale, std::size_t n) {
  double worst = 0.0;
  for (std::size_t i = 0; i < n; ++i) {
    const double difference = std::fabs(static_cast<double>(out[i]) - reference[i]);
    if (!(difference == difference)) return INFINITY;
    if (difference == 0.0) continue;
    worst = std::max(worst, difference / std::max(static_cast<double>(scale[i]), 1e-30));
  }
  return worst;
}

// The check's tolerance by precision, on that scaled error (bench/ladder/README: why these).
inline double tolerance(Precision precision) {
  switch (precision) {
    case Precision::Fp32:
      return 1e-4;
    case Precision::Tf32:
      return 4e-3;
    case Precision::Bf16:
      return 1e-3;
  }
  return 0.0;
}

// ---- the command line -------------------------------------------------------------------------------------

struct CommonOptions {
  bool quick = false;
  std::string json_path;
  std::vector<std::string> filters;         // ladder steps whose name contains one of these; empty: all
  bool precisions[3] = {true, true, true};  // indexed by Precision
  TimingOptions timing;
  std::uint64_t seed = 1;
};

inline bool wants(const CommonOptions& options, Precision precision) {
  return options.precisions[static_cast<int>(precision)];
}

inline bool step_selected(const CommonOptions& options, std::string_view step_name) {
  if (options.filters.empty()) return true;
  for (const std::string& filter : options.filters)
    if (step_name.find(filter) != std::string_view::npos) return true;
  return false;
}

inline std::vector<std::string> split_list(const std::string& list) {
  std::vector<std::string> parts;
  std::size_t start = 0;
  while (start <= list.size()) {
    const std::size_t comma = std::min(list.find(',', start), list.size());
    if (comma > start) parts.push_back(list.substr(start, comma - start));
    start = comma + 1;
  }
  return parts;
}

inline double number_value(const std::string& flag, const std::string& value) {
  char* end = nullptr;
  const double number = std::strtod(value.c_str(), &end);
  KILN_CHECK(!value.empty() && end == value.c_str() + value.size(), flag, " takes a number, not '", value,
             "'");
  return number;
}

inline const char* const kCommonUsage =
    "  --quick             a small subset with short budgets (the device check's)\n"
    "  --json FILE         also write every row, as JSON, to FILE\n"
    "  --filter A,B        only the ladder steps whose name contains A or B (the vendor rows always run)\n"
    "  --precision LIST    fp32,tf32,bf16 (default: all three)\n"
    "  --budget-ms MS      timed samples per row stop after this long (default 50; --quick: 15)\n"
    "  --no-gate           time without the gate kernel (then the host's launch rate counts too)\n"
    "  --seed N            the inputs' random seed (default 1)\n";

// Takes a common flag (and its value, advancing i); false for a flag that is not common.
inline bool parse_common_flag(int argc, char** argv, int& i, CommonOptions& options) {
  const std::string flag = argv[i];
  if (flag == "--quick") {
    options.quick = true;
    options.timing.budget_ms = 15.0;
    return true;
  }
  if (flag == "--no-gate") {
    options.timing.gate = false;
    return true;
  }
  if (flag != "--json" && flag != "--filter" && flag != "--precision" && flag != "--budget-ms" &&
      flag != "--seed")
    return false;
  KILN_CHECK(i + 1 < argc, flag, " needs a value");
  const std::string value = argv[++i];
  if (flag == "--json") {
    options.json_path = value;
  } else if (flag == "--filter") {
    options.filters = split_list(value);
  } else if (flag == "--precision") {
    for (bool& on : options.precisions) on = false;
    for (const std::string& name : split_list(value)) {
      bool known = false;
      for (Precision p : {Precision::Fp32, Precision::Tf32, Precision::Bf16}) {
        if (name == precision_name(p)) options.precisions[static_cast<int>(p)] = known = true;
      }
      KILN_CHECK(known, "--precision takes fp32, tf32 and bf16, not '", name, "'");
    }
  } else if (flag == "--budget-ms") {
    options.timing.budget_ms = number_value(flag, value);
    KILN_CHECK(options.timing.budget_ms >= 0, "--budget-ms must be >= 0");
  } else {
    options.seed = static_cast<std::uint64_t>(number_value(flag, value));
  }
  return true;
}

// ---- printing ---------------------------------------------------------------------------------------------

// "12.345" or "-" for a missing number, in a column of `width`.
inline std::string cell(double value, int decimals, bool present = true) {
  if (!present || !std::isfinite(value)) return "-";
  char text[64];
  std::snprintf(text, sizeof text, "%.*f", decimals, value);
  return text;
}

// Milliseconds with three significant decimals at every scale: 12.3, 1.234, 0.0123.
inline std::string milliseconds_cell(double ms, bool present = true) {
  if (!present || !std::isfinite(ms)) return "-";
  char text[64];
  if (ms >= 100)
    std::snprintf(text, sizeof text, "%.1f", ms);
  else if (ms >= 1)
    std::snprintf(text, sizeof text, "%.3f", ms);
  else
    std::snprintf(text, sizeof text, "%.4f", ms);
  return text;
}

inline std::string error_cell(double error) {
  if (!std::isfinite(error)) return "inf";
  char text[32];
  std::snprintf(text, sizeof text, "%.1e", error);
  return text;
}

// Writes `report` to the --json file, if one was asked for, saying on stderr when it cannot.
inline void write_json_report(const CommonOptions& options, const nlohmann::json& report,
                              const char* program) {
  if (options.json_path.empty()) return;
  std::ofstream file(options.json_path);
  file << report.dump(1) << "\n";
  if (!file) std::fprintf(stderr, "%s: cannot write %s\n", program, options.json_path.c_str());
}

// True, after saying so (and writing a report that says so), when there is no GPU to measure on: the program
// then exits 0, as in CI, which builds the benchmarks and never runs them.
inline bool no_device_to_measure(const CommonOptions& options, const char* program) {
  if (kiln::cuda::device_count() > 0) return false;
  std::printf("no CUDA device: nothing to measure\n");
  write_json_report(
      options, {{"program", program}, {"status", "no CUDA device"}, {"results", nlohmann::json::array()}},
      program);
  return true;
}

}  // namespace kiln::bench::ladder
