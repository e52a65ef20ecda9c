// The convolution ladder: one CUDA kernel per step and pass, from a loop per output element to implicit GEMM
// on tensor cores, each in its own file (NN_pass_name.cu) so it can be read, and changed, alone. README.md
// beside this file walks the steps: what each changes, why it is faster, what it measured. Every step is
// validated against the reference convolution (tests/cuda/conv2d_ladder_test.cpp) and timed against every
// cuDNN algorithm (bench/ladder/conv2d_ladder.cpp).
//
// The passes, as in conv2d.hpp, without the bias (a separate, memory-bound kernel):
//   forward          y  = conv(x, w)              launch(g, x,  w, y)
//   backward data    gx = d loss / d x, from gy   launch(g, gy, w, gx)
//   backward weight  gw = d loss / d w, from gy   launch(g, gy, x, gw)
// The output is float and overwritten (never read, so it may start as NaN: the tests poison it); every sum is
// float. The inputs are float for fp32 and tf32 steps and bfloat16 for bf16 steps (ladder/precision.hpp).
//
// Layouts. NCHW: x [N, C, H, W], w [K, C/groups, R, S], y [N, K, P, Q] (kiln's layout everywhere else).
// NHWC, channels last: x [N, H, W, C], w [K, R, S, C], y [N, P, Q, K]; a GEMM's reduction over (r, s, c) then
// reads contiguous channels, which is what tensor-core steps want. A step takes its layout as given:
// converting is the caller's business, outside the timed loop. Each launch runs on the compute stream and
// returns at once.
#pragma once

#include <span>
#include <string_view>

#include "kernels/conv2d/algorithm.hpp"
#include "kernels/conv2d/conv2d.hpp"
#include "kernels/ladder/precision.hpp"

namespace kiln::kernels::conv2d_ladder {

using ladder::Precision;

// A pass is one of the convolution's three directions, the same values the CPU kernels and the tuning use.
using Pass = Conv2dDirection;
enum class Layout { Nchw, Nhwc };

// "forward", "backward_data" or "backward_weight".
inline std::string_view pass_name(Pass pass) { return conv2d_direction_name(pass); }
constexpr std::string_view layout_name(Layout layout) { return layout == Layout::Nchw ? "nchw" : "nhwc"; }

// One rung. `first` and `second` are the pass's two inputs in the order above, float or bfloat16 as
// `precision` says, in `layout`.
struct Step {
  std::string_view name;         // "03_forward_implicit_gemm": the file, without .cu
  std::string_view summary;      // what this step changes from the one before, in a line
  std::string_view requirement;  // the geometries it takes beyond the general ones ("groups 1, C % 4 == 0"),
                                 // or "" for any
  Pass pass;
  Precision precision;
  Layout layout;
  bool (*takes)(const Conv2dGeometry& g);  // the requirement, as a test
  void (*launch)(const Conv2dGeometry& g, const void* first, const void* second, float* output);
  bool needs_wgmma = false;  // a Hopper step: runs only where ladder::wgmma_available() (ladder/hopper.hpp)
};

// The steps in ladder order, every pass; empty in a build without CUDA.
std::span<const Step> steps();

// Whether `step` runs `g` here: a valid geometry (positive sizes, an output of at least 1x1, channels
// divisible by groups), every tensor below 2^31 elements (the kernels index with int), step.takes(g), and for
// a Hopper step, a build and a device that have wgmma.
bool supports(const Step& step, const Conv2dGeometry& g);

// Throws a kiln::Error naming the step and what does not fit; every launcher calls it first.
void require_supported(std::string_view step_name, const Conv2dGeometry& g, bool step_takes_it,
                       std::string_view requirement);
// Throws a kiln::Error naming the step unless its inputs and output start on 16 bytes; the NHWC steps, whose
// copies move 16 bytes, call it too (supports() cannot see pointers).
void require_16_byte_operands(std::string_view step_name, const void* first, const void* second,
                              const float* output);

// The launchers, one per file, each with the `takes` test steps.cpp lists beside it.
// Forward: y = conv(x, w).
void launch_01_forward_naive(const Conv2dGeometry& g, const float* x, const float* w, float* y);
void launch_02_forward_shared_tiled(const Conv2dGeometry& g, const float* x, const float* w, float* y);
void launch_03_forward_implicit_gemm(const Conv2dGeometry& g, const float* x, const float* w, float* y);
void launch_04_forward_implicit_gemm_tf32(const Conv2dGeometry& g, const float* x, const float* w, float* y);
void launch_05_forward_implicit_gemm_bf16(const Conv2dGeometry& g, const bfloat16* x, const bfloat16* w,
                                          float* y);
void launch_06_forward_implicit_gemm_split_k(const Conv2dGeometry& g, const float* x, const float* w,
                                             float* y);
void launch_07_forward_wgmma_bf16(const Conv2dGeometry& g, const bfloat16* x, const bfloat16* w, float* y);
void launch_08_forward_tma_wgmma_bf16(const Conv2dGeometry& g, const bfloat16* x, const bfloat16* w,
                                      float* y);
// Backward data: gx from gy and w.
void launch_01_backward_data_naive(const Conv2dGeometry& g, const float* gy, const float* w, float* gx);
void launch_03_backward_data_implicit_gemm(const Conv2dGeometry& g, const float* gy, const float* w,
                                           float* gx);
void launch_04_backward_data_implicit_gemm_tf32(const Conv2dGeometry& g, const float* gy, const float* w,
                                                float* gx);
void launch_05_backward_data_implicit_gemm_bf16(const Conv2dGeometry& g, const bfloat16* gy,
                                                const bfloat16* w, float* gx);
void launch_06_backward_data_stride_phase(const Conv2dGeometry& g, const float* gy, const float* w,
                                          float* gx);
void launch_06_backward_data_stride_phase_bf16(const Conv2dGeometry& g, const bfloat16* gy, const bfloat16* w,
                                               float* gx);
void launch_07_backward_data_wgmma_bf16(const Conv2dGeometry& g, const bfloat16* gy, const bfloat16* w,
                                        float* gx);
void launch_08_backward_data_tma_wgmma_bf16(const Conv2dGeometry& g, const bfloat16* gy, const bfloat16* w,
                                            float* gx);
// Backward weight: gw from gy and x.
void launch_01_backward_weight_naive(const Conv2dGeometry& g, const float* gy, const float* x, float* gw);
void launch_03_backward_weight_implicit_gemm(const Conv2dGeometry& g, const float* gy, const float* x,
                                             float* gw);
void launch_04_backward_weight_implicit_gemm_tf32(const Conv2dGeometry& g, const float* gy, const float* x,
                                                  float* gw);
void launch_05_backward_weight_implicit_gemm_bf16(const Conv2dGeometry& g, const bfloat16* gy,
                                                  const bfloat16* x, float* gw);
void launch_07_backward_weight_wgmma_bf16(const Conv2dGeometry& g, const bfloat16* gy, const bfloat16* x,
                                          float* gw);
void launch_08_backward_weight_tma_wgmma_bf16(const Conv2dGeometry& g, const bfloat16* gy, const bfloat16* x,
                                              float* gw);

}  // namespace kiln::kernels::conv2d_ladder
