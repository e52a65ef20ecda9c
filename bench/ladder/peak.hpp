// This GPU's arithmetic peaks, measured (peak.cu), so the ladder benchmarks can say "% of peak" honestly:
// a datasheet's number assumes a clock the card may not hold, and for tensor cores assumes the instruction
// that reaches it (on Hopper, wgmma). Each peak is the best of a few runs of a kernel that does nothing but
// the instruction, from registers, on every multiprocessor with enough independent work to hide its latency.
//
//   fp32  FFMA: 8 independent fused multiply-add chains per thread, 2048 threads per multiprocessor.
//   tf32  mma.sync.m16n8k8 (TF32 in, float accumulate), 8 independent accumulator tiles per warp.
//   bf16  mma.sync.m16n8k16 (bfloat16 in, float accumulate), likewise.
//   bf16 wgmma  wgmma.m64n128k16 (Hopper, sm_90a: kernels/ladder/wgmma.cuh) from tiles in shared memory,
//         two accumulators per warpgroup, one committed group always in flight; 0 where the build or the
//         device has no wgmma (kernels/ladder/hopper.hpp).
//
// On an H100 or H200 mma.sync does not reach the tensor cores' full rate, which takes wgmma, and cuBLAS /
// cuDNN use wgmma there. So bf16 rows are measured against the wgmma peak where there is one: the tensor
// cores' real ceiling, which the ladder's mma.sync steps cannot reach and its wgmma step can. tf32 rows are
// measured against the mma.sync peak (wgmma.cuh has no tf32 form yet), so a vendor tf32 row may pass 100%;
// the programs say so in their header.
#pragma once

#include "kernels/ladder/precision.hpp"

namespace kiln::bench::ladder {

struct Peaks {
  double fp32_tflops = 0.0;  // FFMA
  double tf32_tflops = 0.0;  // mma.sync m16n8k8 tf32
  double bf16_tflops = 0.0;  // mma.sync m16n8k16 bf16
  double bf16_wgmma_tflops = 0.0;  // wgmma m64n128k16 bf16; 0 where unavailable
};

// Runs the four kernels on cuda:0 (about 0.7 s; `quick`: about 0.2 s). Throws a kiln::Error if a CUDA call
// fails.
Peaks measure_peaks(bool quick);

// The peak a row in `precision` is measured against: fp32 rows against FFMA, tf32 rows against mma.sync,
// bf16 rows against wgmma where measured, else mma.sync.
inline double peak_tflops(const Peaks& peaks, kernels::ladder::Precision precision) {
  switch (precision) {
    case kernels::ladder::Precision::Fp32:
      return peaks.fp32_tflops;
    case kernels::ladder::Precision::Tf32:
      return peaks.tf32_tflops;
    case kernels::ladder::Precision::Bf16:
      return peaks.bf16_wgmma_tflops > 0.0 ? peaks.bf16_wgmma_tflops : peaks.bf16_tflops;
  }
  return 0.0;
}

}  // namespace kiln::bench::ladder
