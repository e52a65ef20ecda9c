// The measured choice of what runs a CUDA convolution (cuda_tuning.hpp): on the first call for a shape,
// every candidate runs on the call's own tensors, is checked against the library path and timed; the fastest
// that agrees serves the shape from then on.
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <type_traits>
#include <vector>

#include "core/cuda_runtime.hpp"
#include "core/error.hpp"
#include "core/storage.hpp"
#include "kernels/conv2d/conv2d.hpp"
#include "kernels/conv2d/cuda_ladder_conv2d.hpp"
#include "kernels/conv2d/cuda_tuning.hpp"
#include "kernels/conv2d/ladder/ladder.hpp"

namespace kiln::kernels::cuda {
namespace {

using conv2d_ladder::Step;

// Timed runs per candidate; the median is kept, so one run disturbed by the host or the clock does not
// decide. The first, untimed run is the agreement check, which also warms the caches and the allocator. On
// the CPU emulator (tests/emulation) one timed run: its times say nothing of a GPU's, and every candidate's
// runs cost seconds there.
#ifdef KILN_CUDA_EMULATION
constexpr int kTimedRuns = 1;
#else
constexpr int kTimedRuns = 5;
#endif

// One call of a pass: its two inputs, in the order of conv2d_ladder::Step, the bias (forward only, may be
// null) and the output.
template <typename T>
struct PassCall {
  Conv2dDirection direction;
  const Conv2dGeometry& g;
  const T* first;
  const T* second;
  const T* bias;
  T* output;
};

template <typename T>
constexpr std::string_view element_type_name() {
  if constexpr (std::is_same_v<T, bfloat16>) return "bfloat16";
  if constexpr (std::is_same_v<T, float>) return "float";
  return "double";
}

// ---- The candidates ---------------------------------------------------------------------------------------

constexpr bool is_depthwise(const Conv2dGeometry& g) {
  return g.groups == g.in_channels && g.groups == g.out_channels;
}

// The library path: the direct kernels for depthwise (either layout), im2col + cuBLAS GEMM for everything
// else, its column scratch at most workspace_bytes. (Qualified, as in cuda_conv2d.cu, so that
// argument-dependent lookup cannot reach a CPU kernel of the same name.)
template <typename T>
void run_library(const PassCall<T>& c, std::size_t workspace_bytes = kConv2dWorkspaceBytes) {
  if (c.g.channels_last && !is_depthwise(c.g)) {  // NCHW GEMMs: behind transposes (cuda_ladder_conv2d.hpp)
    return run_as_nchw<T>(
        c.direction, c.g, c.first, c.second, c.output,
        [&](const Conv2dGeometry& nchw, const T* first, const T* second, T* output) {
          run_library(PassCall<T>{c.direction, nchw, first, second, c.bias, output}, workspace_bytes);
        });
  }
  switch (c.direction) {
    case Conv2dDirection::Forward:
      if (is_depthwise(c.g))
        return kernels::cuda::depthwise_conv2d_forward(c.g, c.first, c.second, c.bias, c.output);
      return kernels::cuda::gemm_conv2d_forward(c.g, c.first, c.second, c.bias, c.output, workspace_bytes);
    case Conv2dDirection::BackwardData:
      if (is_depthwise(c.g))
        return kernels::cuda::depthwise_conv2d_backward_data(c.g, c.first, c.second, c.output);
      return kernels::cuda::gemm_conv2d_backward_data(c.g, c.first, c.second, c.output, workspace_bytes);
    case Conv2dDirection::BackwardWeight:
      if (is_depthwise(c.g))
        return kernels::cuda::depthwise_conv2d_backward_weight(c.g, c.first, c.second, c.output);
      return kernels::cuda::gemm_conv2d_backward_weight(c.g, c.first, c.second, c.output, workspace_bytes);
  }
}
// The library path as measuring runs it: in chunks of at most kMeasuringWorkspaceBytes of columns.
template <typename T>
void run_library_measuring(const PassCall<T>& c) {
  run_library(c, kMeasuringWorkspaceBytes);
}

// `step`, or the library path when it is null.
template <typename T>
void run_candidate(const Step* step, const PassCall<T>& c) {
  if (step == nullptr) return run_library(c);
  run_ladder_step(*step, c.g, c.first, c.second, c.bias, c.output);
}

// The ladder steps that can serve this call, in ladder order.
template <typename T>
std::vector<const Step*> ladder_candidates(const PassCall<T>& c) {
  std::vector<const Step*> candidates;
  for (const Step& step : conv2d_ladder::steps()) {
    if (step.pass == c.direction && ladder_step_serves<T>(step, c.g)) candidates.push_back(&step);
  }
  return candidates;
}

// ---- Device memory and time -------------------------------------------------------------------------------

void check(cudaError_t status, const char* call) {
  if (status != cudaSuccess) fail("conv2d tuning: ", call, " failed: ", cudaGetErrorString(status));
}

// `count` elements of T from the current device, on the host.
template <typename T>
std::vector<T> host_copy(const T* values, std::int64_t count) {
  std::vector<T> host(static_cast<std::size_t>(count));
  kiln::cuda::copy_bytes(host.data(), Device::cpu(), values, Device::cuda(kiln::cuda::current_device()),
                         host.size() * sizeof(T));
  return host;
}

// The same, widened to double (exactly).
template <typename T>
std::vector<double> to_host(const T* values, std::int64_t count) {
  const std::vector<T> host = host_copy(values, count);
  return std::vector<double>(host.begin(), host.end());
}

// A device copy of |values| (exact in every type: only the sign changes).
template <typename T>
std::shared_ptr<Storage> absolute_copy(const T* values, std::int64_t count) {
  std::vector<T> host = host_copy(values, count);
  for (T& value : host) {
    if (static_cast<double>(value) < 0) value = T(-static_cast<double>(value));
  }
  const Device device = Device::cuda(kiln::cuda::current_device());
  std::shared_ptr<Storage> copy = Storage::allocate(host.size() * sizeof(T), device);
  kiln::cuda::copy_bytes(copy->data(), device, host.data(), Device::cpu(), host.size() * sizeof(T));
  return copy;
}

bool all_finite(const std::vector<double>& values) {
  return std::all_of(values.begin(), values.end(), [](double v) { return std::isfinite(v); });
}

// kTimedRuns pairs of events, destroyed with it (also when a check throws midway).
class EventPairs {
 public:
  EventPairs() {
    for (cudaEvent_t& event : events_) check(cudaEventCreate(&event), "cudaEventCreate");
  }
  ~EventPairs() {
    for (cudaEvent_t event : events_)
      if (event != nullptr) cudaEventDestroy(event);
  }
  EventPairs(const EventPairs&) = delete;
  EventPairs& operator=(const EventPairs&) = delete;
  cudaEvent_t start(int run) const { return events_[2 * run]; }
  cudaEvent_t stop(int run) const { return events_[2 * run + 1]; }

 private:
  cudaEvent_t events_[2 * kTimedRuns] = {};
};

// The median time of kTimedRuns runs of `run`, each between its own pair of events on the compute stream.
template <typename Run>
double median_milliseconds(const Run& run) {
  const EventPairs events;
  const auto stream = static_cast<cudaStream_t>(kiln::cuda::current_compute_stream());
  for (int i = 0; i < kTimedRuns; ++i) {
    check(cudaEventRecord(events.start(i), stream), "cudaEventRecord");
    run();
    check(cudaEventRecord(events.stop(i), stream), "cudaEventRecord");
  }
  check(cudaEventSynchronize(events.stop(kTimedRuns - 1)), "cudaEventSynchronize");
  std::vector<double> times;
  for (int i = 0; i < kTimedRuns; ++i) {
    float milliseconds = 0;
    check(cudaEventElapsedTime(&milliseconds, events.start(i), events.stop(i)), "cudaEventElapsedTime");
    times.push_back(milliseconds);
  }
  std::nth_element(times.begin(), times.begin() + kTimedRuns / 2, times.end());
  return times[kTimedRuns / 2];
}

// ---- The measurement --------------------------------------------------------------------------------------

// What the library path computes for this call, and the magnitude each element's error is measured against:
// the library path run again on |first|, |second| and |bias|, which is the sum of |a| * |b| (+ |bias|).
struct Yardstick {
  std::vector<double> values, magnitude;
};
template <typename T>
Yardstick yardstick(const PassCall<T>& c) {
  const PassTensors n = pass_tensors(c.direction, c.g);
  run_library_measuring(c);
  Yardstick result{to_host(c.output, n.output.elements()), {}};
  const auto first = absolute_copy(c.first, n.first.elements());
  const auto second = absolute_copy(c.second, n.second.elements());
  const auto bias = c.bias ? absolute_copy(c.bias, c.g.out_channels) : nullptr;
  const auto magnitude = Storage::allocate(static_cast<std::size_t>(n.output.elements()) * sizeof(T),
                                           Device::cuda(kiln::cuda::current_device()));
  const PassCall<T> absolute{c.direction,
                             c.g,
                             static_cast<const T*>(first->data()),
                             static_cast<const T*>(second->data()),
                             bias ? static_cast<const T*>(bias->data()) : nullptr,
                             static_cast<T*>(magnitude->data())};
  run_library_measuring(absolute);
  result.magnitude = to_host(absolute.output, n.output.elements());
  return result;
}

// Runs `step` once, then checks its output against the yardstick: "" when it agrees, else why not. A step
// that fails to launch (too many resources on this GPU, say) is rejected; one that faults while running has
// lost the CUDA context for the whole process, and that is an error naming it.
template <typename T>
std::string disagreement(const Step& step, const PassCall<T>& c, const Yardstick& expected) {
  try {
    run_candidate(&step, c);
    kiln::cuda::synchronize(kiln::cuda::current_device());  // a fault in the step surfaces here
  } catch (const Error& error) {
    cudaGetLastError();  // clears an error that does not outlive the call (a bad launch configuration)
    if (cudaDeviceSynchronize() != cudaSuccess) {
      fail("conv2d tuning: ladder step ", step.name, " failed on this GPU and the CUDA context is lost (",
           error.what(), "); `--cuda-conv library` trains without the ladder's steps");
    }
    return error.what();
  }
  const std::vector<double> values = to_host(c.output, pass_tensors(c.direction, c.g).output.elements());
  const AgreementTolerance tolerance =
      agreement_tolerance(reduction_terms(c.g, c.direction), std::is_same_v<T, bfloat16>);
  const std::int64_t i = first_disagreement(expected.values, values, expected.magnitude, tolerance);
  if (i < 0) return "";
  const auto at = static_cast<std::size_t>(i);
  return "output element " + std::to_string(i) + " is " + std::to_string(values[at]) +
         " where the library has " + std::to_string(expected.values[at]) + " (magnitude " +
         std::to_string(expected.magnitude[at]) + ")";
}

// Measures every candidate for this call's shape, records the choice, and leaves the chosen candidate's
// output in c.output.
template <typename T>
void measure(const PassCall<T>& c) {
  const int device = kiln::cuda::current_device();
  ConvChoice choice{.geometry = c.g,
                    .direction = c.direction,
                    .element_type = std::string(element_type_name<T>()),
                    .device = device,
                    .chosen = std::string(kLibraryCandidate),
                    .step = nullptr,
                    .trials = {}};
  const std::vector<const Step*> steps = ladder_candidates(c);
  if (steps.empty()) {
    run_library(c);
    return record_conv_choice(std::move(choice));
  }
  const Yardstick expected = yardstick(c);
  if (!all_finite(expected.values) || !all_finite(expected.magnitude)) {
    // Inf or NaN in the tensors (a run diverging): nothing can be checked against them. The library path
    // serves this call, and the shape is measured again on the next.
    return run_library(c);
  }
  double best = median_milliseconds([&] { run_library_measuring(c); });
  choice.trials.push_back({std::string(kLibraryCandidate), best, ""});
  for (const Step* step : steps) {
    std::string rejected = disagreement(*step, c, expected);
    const double milliseconds = rejected.empty() ? median_milliseconds([&] { run_candidate(step, c); }) : 0.0;
    if (rejected.empty() && milliseconds < best) {
      best = milliseconds;
      choice.chosen = step->name;
      choice.step = step;
    }
    choice.trials.push_back({std::string(step->name), milliseconds, std::move(rejected)});
  }
  run_candidate(choice.step, c);
  record_conv_choice(std::move(choice));
}

template <typename T>
void dispatch(const PassCall<T>& c) {
  if (conv_policy() == ConvPolicy::Library) return run_library(c);
  const RecordedChoice recorded =
      find_conv_choice(c.g, c.direction, element_type_name<T>(), kiln::cuda::current_device());
  if (recorded.found) return run_candidate(recorded.step, c);
  // Measuring waits for the device, which a CUDA graph being captured (core/cuda_graph.hpp) cannot: inside
  // one, an unmeasured shape takes the library path, and is measured at its first call outside a capture.
  if (kiln::cuda::is_capturing(kiln::cuda::current_device())) return run_library(c);
  measure(c);
}

}  // namespace

template <typename T>
void tuned_conv2d_forward(const Conv2dGeometry& g, const T* x, const T* w, const T* bias, T* y) {
  dispatch(PassCall<T>{Conv2dDirection::Forward, g, x, w, bias, y});
}
template <typename T>
void tuned_conv2d_backward_data(const Conv2dGeometry& g, const T* gy, const T* w, T* gx) {
  dispatch(PassCall<T>{Conv2dDirection::BackwardData, g, gy, w, nullptr, gx});
}
template <typename T>
void tuned_conv2d_backward_weight(const Conv2dGeometry& g, const T* gy, const T* x, T* gw) {
  dispatch(PassCall<T>{Conv2dDirection::BackwardWeight, g, gy, x, nullptr, gw});
}

#define KILN_INSTANTIATE_TUNED_CONV2D(T)                                                          \
  template void tuned_conv2d_forward<T>(const Conv2dGeometry&, const T*, const T*, const T*, T*); \
  template void tuned_conv2d_backward_data<T>(const Conv2dGeometry&, const T*, const T*, T*);     \
  template void tuned_conv2d_backward_weight<T>(const Conv2dGeometry&, const T*, const T*, T*);
KILN_INSTANTIATE_TUNED_CONV2D(float)
KILN_INSTANTIATE_TUNED_CONV2D(double)
KILN_INSTANTIATE_TUNED_CONV2D(bfloat16)
#undef KILN_INSTANTIATE_TUNED_CONV2D

}  // namespace kiln::kernels::cuda
