// This machine's FP32 peak, measured, so benchmarks can report "% of peak" honestly.
//
// A CPU's peak is cores x clock x FLOP per cycle. Inside a virtual machine the clock is not reported
// (and turbo moves it), so instead of multiplying datasheet numbers we run the one loop that reaches
// peak by construction: many independent fused multiply-adds on registers, no memory traffic. Twelve
// independent accumulators cover FMA latency (4 cycles) x throughput (2 per cycle) with room to spare.
// The widest vector the CPU supports is used (AVX-512, else AVX2); on AMD Zen 4, 512-bit FMAs run as two
// 256-bit halves, on Zen 5 (this repository's machine: 228 GFLOP/s a core, 64 FLOP a cycle) at full
// width, and this measurement shows which rather than assuming it.
#pragma once

namespace kiln::bench {

// GFLOP/s of FP32 multiply-adds (2 FLOP each) summed over `threads` OpenMP threads. Measured once per
// thread count per process and cached; takes about 0.2 s the first time.
double fp32_peak_gflops(int threads);

}  // namespace kiln::bench
