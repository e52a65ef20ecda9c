// How the CUDA backend picks what runs each convolution: by measuring, once per shape, on the GPU at hand.
//
// On a CUDA device a convolution pass has candidates:
//   the library path   im2col + cuBLAS GEMM (cuda_conv2d.cu), or the direct depthwise kernels when
//                      groups == C_in == C_out (cuda_depthwise.cu); runs every geometry and element type
//   the ladder steps   every step of the convolution ladder (kernels/conv2d/ladder) for that pass that takes
//                      the geometry and computes in the tensors' own precision: the fp32 steps for float, the
//                      bf16 steps for bfloat16. The tf32 steps are never candidates: they would round float
//                      operands to 10 mantissa bits where the user asked for float. Run on kiln's NCHW
//                      tensors by cuda_ladder_conv2d.hpp.
//
// Under the Measured policy (the default), the first call for a (pass, geometry, element type, device) runs
// every candidate on that call's own tensors. The library path goes first: its output is the yardstick. Each
// ladder step's output must agree with it within agreement_tolerance (below), a bound no correct kernel can
// exceed, or the step is rejected whatever its speed: a kernel that is wrong on this GPU (the ladders were
// validated in a CPU emulator, tests/emulation, before they ever met one) costs speed, never correctness.
// The fastest candidate left, by the median of several timed runs, serves that shape from then on, and the
// call's output is the chosen candidate's. Measuring costs a few milliseconds per shape, once per process.
// It also costs device memory, at the first step, where the activations are all alive: a copy of |each input|
// and a magnitude output (the yardstick's, below), and the library path's im2col columns. Those columns are
// cut to kMeasuringWorkspaceBytes while measuring, where the library path otherwise takes up to
// kConv2dWorkspaceBytes: measured on an H200, ResNet-20's first step in bf16 peaked 73 MiB above its steady
// state, the float columns of one backward-data over the whole batch (72 MiB). The library path is timed as
// it ran, in those smaller chunks, which can only make it look slower than it runs afterwards.
//
// A choice depends on timings, so two runs may pick differently for a shape near a tie and then differ in
// the last bits; each candidate alone gives the same bits on every run. The Library policy always takes the
// library path, for runs that must repeat bit for bit (`kiln train --cuda-conv library`).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "kernels/conv2d/algorithm.hpp"
#include "kernels/conv2d/conv2d.hpp"
#include "kernels/conv2d/ladder/ladder.hpp"

namespace kiln::kernels::cuda {

enum class ConvPolicy { Measured, Library };

// The im2col column scratch of the library path's runs while a shape is measured (above).
inline constexpr std::size_t kMeasuringWorkspaceBytes = std::size_t{16} << 20;

// The policy for every CUDA convolution of this process from now on; choices already measured are kept.
void set_conv_policy(ConvPolicy policy);
ConvPolicy conv_policy();

// ---- The agreement rule ------------------------------------------------------------------------------
//
// Two correct results of one output element, the library's and a candidate's, each differ from the exact
// sum by at most their float summation error, (terms + 4) * 2^-23 * magnitude, where magnitude is the sum
// of |a| * |b| over the element's terms (plus |bias|), and terms is the length of the longest such sum:
// C/groups * KH * KW forward, C_out/groups * KH * KW for backward-data, N * OH * OW for backward-weight. A
// bfloat16 output adds its one rounding, at most 2^-8 of the value, to each. So a correct candidate stays
// within
//     |candidate - library| <= per_magnitude * magnitude + per_value * max(|candidate|, |library|)
// in any summation order. A kernel with an indexing or synchronization error misses it by orders of
// magnitude, and a NaN never meets it.
struct AgreementTolerance {
  double per_magnitude = 0;
  double per_value = 0;
};
AgreementTolerance agreement_tolerance(std::int64_t terms, bool bfloat16_output);
// The length of the longest sum behind one output element of `direction` (above).
std::int64_t reduction_terms(const Conv2dGeometry& g, Conv2dDirection direction);
// The first index where `candidate` breaks the rule against `library`, or -1 when it agrees everywhere. The
// three spans have the same length.
std::int64_t first_disagreement(std::span<const double> library, std::span<const double> candidate,
                                std::span<const double> magnitude, AgreementTolerance tolerance);

// ---- What was measured ---------------------------------------------------------------------------------

inline constexpr std::string_view kLibraryCandidate = "library";

struct ConvTrial {
  std::string candidate;       // kLibraryCandidate or a ladder step's name
  double median_milliseconds;  // of the timed runs; 0 when rejected before timing
  std::string rejected;        // why it may not serve this shape ("" when it may)
};
struct ConvChoice {
  Conv2dGeometry geometry;
  Conv2dDirection direction;
  std::string element_type;  // "float", "bfloat16", "double"
  int device = 0;
  std::string chosen;                         // the candidate that serves it
  const conv2d_ladder::Step* step = nullptr;  // the step `chosen` names; null for the library path
  std::vector<ConvTrial> trials;              // empty when the library path was the only candidate
};
// Whether ladder step `step` can serve a convolution over `g` whose tensors hold `element_type` ("float",
// "bfloat16", "double"): its precision is the tensors' own (fp32 for float, bf16 for bfloat16; nothing for
// double, and never tf32), an NCHW step (it writes its float output in place) only for float, and it takes g
// in this build, on this device (conv2d_ladder::supports).
bool ladder_step_serves(const conv2d_ladder::Step& step, const Conv2dGeometry& g, std::string_view element_type);

// The candidate `name` names (kLibraryCandidate, or a ladder step's name) as a choice for (direction, g,
// element_type): null for the library path, else the step. Throws a kiln::Error saying why when no such
// candidate can serve that shape in this build, on this device (replaying a choices file, say).
const conv2d_ladder::Step* conv_candidate_named(std::string_view name, Conv2dDirection direction,
                                                std::string_view element_type, const Conv2dGeometry& g);

// Every shape this process has chosen for, in the order first seen.
std::vector<ConvChoice> conv_choices();
// Forgets every choice, so the next call of each shape measures again (tests).
void forget_conv_choices();
// Records a choice, the first for its shape (cuda_tuning.cu after measuring; a replayed choices file before
// the first call), and finds one again.
void record_conv_choice(ConvChoice choice);
struct RecordedChoice {
  bool found = false;
  const conv2d_ladder::Step* step = nullptr;  // null: the library path
};
RecordedChoice find_conv_choice(const Conv2dGeometry& g, Conv2dDirection direction,
                                std::string_view element_type, int device);

// ---- The CUDA dispatch (cuda_tuning.cu, built with CUDA) -----------------------------------------------
//
// One function per pass, as conv2d.hpp's dispatch calls them: device pointers, NCHW, T float, double or
// bfloat16; the output is overwritten. Under the Measured policy the first call of a shape measures (and
// synchronizes the device); every later call only launches.
template <typename T>
void tuned_conv2d_forward(const Conv2dGeometry& g, const T* x, const T* w, const T* bias, T* y);
template <typename T>
void tuned_conv2d_backward_data(const Conv2dGeometry& g, const T* gy, const T* w, T* gx);
template <typename T>
void tuned_conv2d_backward_weight(const Conv2dGeometry& g, const T* gy, const T* x, T* gw);

}  // namespace kiln::kernels::cuda
