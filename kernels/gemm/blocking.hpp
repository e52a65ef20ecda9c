// Cache-blocking and register-blocking parameters of the fast float GEMM, one set per instruction set,
// chosen on this repository's machine, an AMD EPYC of CPU family 26 (Zen 5: L1d 48 KiB, L2 1 MiB per core,
// L3 32 MiB shared; two FMA pipes 512 bits wide, so two zmm or two ymm FMAs per cycle: peak_bench measures
// 228 GFLOP/s a core, 64 FLOP a cycle at about 3.6 GHz; FMA latency 4 cycles). The set was tuned when the
// machine was taken for a Zen 4, whose 512-bit FMAs run as two 256-bit halves; the reasoning below holds
// for both, with twice the FMA rate on Zen 5.
//
// The five loops of gemm_driver.hpp and what each block must fit (Goto & van de Geijn; BLIS):
//
//   jc: NC columns of C     B panel  KC x NC  packed once per (jc, pc) by each thread         -> L2
//   pc: KC of the depth     A block  MC x KC  packed once per (ic, pc)                        -> L2
//   ic: MC rows of C        B sliver KC x NR  reused by every MR-row tile of the A block        -> L1
//   jr: NR columns          A sliver MR x KC  streamed from L2, one per micro-tile
//   ir: MR rows             C tile   MR x NR  in registers for the whole KC loop
//
// Register budget of the micro-kernel: MR x NR / width accumulators, NR / width vectors of B, and one
// broadcast of A. Each k step loads NR / width vectors of B and MR scalars of A for MR x NR / width FMAs.
#pragma once

#include <cstdint>

namespace kiln::kernels::gemm_blocking {

// AVX-512: MR = 8, NR = 32 (two zmm). 16 accumulators + 2 B vectors + 1 broadcast = 19 of 32 zmm.
// - 16 independent FMA chains > latency 4 x throughput 2 zmm/cycle, so the FMA pipes never wait.
// - Per k step: 2 vector loads + 8 broadcast loads (vbroadcastss) for 16 FMAs (8 cycles on Zen 5),
//   1.25 loads a cycle, below the 2 zmm loads per cycle the core can issue.
// - MR = 8 divides the conv output-channel counts 16 / 32 / 64 and NR = 32 divides the spatial sizes
//   1024 / 256 / 64, so the ResNet-20 forward shapes have no partial tiles. 8 x 48 (24 accumulators)
//   would leave a partial sliver on every one of those N (1024 = 21 x 48 + 16; 64 = 48 + 16), and
//   16 x 16 needs 16 broadcasts per 16 FMAs.
//   Measured (1 thread, GFLOP/s per CPU-second on a loaded machine, so +-5%; MC = 128, B always packed;
//   a scratch program calling gemm_blocked with each blocking), 8x32 / 8x48 / 16x16 / 12x32:
//     squares 512..2048                 95-108 /  95-98 /  97-100 /  97-104   (all alike)
//     forward 16 x 1024 x 144           73     /  81    /  68     /  56
//     forward 16 x 1024 x 27            66-71  /  73    /  60-64  /  54
//     forward 64 x 64 x 576             91-93  /  66    /  94     /  78
//     backward-data 576 x 64 x 64       93-97  /  67    /  97-99  /  91
//     backward-weight 16 x 144 x 8192   57-61  /  60    /  71     /  44     (N = 144 = 9 x 16)
//   8 x 48 loses a third on N = 64; 16 x 16 wins only where N = 144 leaves 8 x 32 a half sliver.
//   KC 128 / 256 / 384 and MC 128 / 256 moved the numbers by less than the noise; MC = 256 was ahead
//   on 9 of 13 shapes.
// - KC = 256: the B sliver (256 x 32 floats = 32 KiB) is read once per micro-tile from L1/L2 while
//   the A sliver (8 x 256 = 8 KiB) streams; at two zmm FMAs per cycle the kernel needs only 128 bytes
//   of B per 8 cycles, which L2 sustains easily. A longer KC amortizes the C tile update (8 x 32
//   loads and stores per 8 x 32 x KC FMAs) over more work.
// - MC = 256: the A block is 256 x 256 x 4 B = 256 KiB, a quarter of L2, leaving room for the B
//   slivers streaming through L2. A multiple of MR, and M = 16 / 32 / 64 fit in one block.
// - NC = 512: the B panel is 256 x 512 x 4 B = 512 KiB, packed and then read back by the A block's row
//   tiles while it is still in L2 (half of Zen 5's 1 MiB, a quarter of Sapphire Rapids' 2 MiB), beside the
//   256 KiB A block. It was 3072 (a 3 MiB panel, meant for L3): products with many columns and few rows
//   then wrote their panel out past L2 and read it back from L3 for only M / MR row tiles each. Two cores
//   of a Xeon with AMX (Sapphire Rapids), GFLOP/s, medians of interleaved runs, NC 3072 / 1024 / 512:
//     64 x 8192 x 576 (an im2col-like product)        196 / 221 / 230   (1 thread: 96 / 110 / 114)
//     128 x 32768 x 128 (pointwise 128 -> 128 at 16x16)  236 / 261 / 261
//     512 x 2048 x 512 (pointwise 512 -> 512 at 4x4)      294 / 289 / 295
//     squares 1024 and 2048                             272-279 / 272-277 / 271-279
//   and at AVX2 (below, the same change) 2048^3 141 / 156 / 160, the pointwise 128 -> 128 159 / 174 / 172.
//   NC cuts only the columns, never the depth, so every C element has the same sums: the bits are unchanged.
struct Avx512 {
  static constexpr int mr = 8;
  static constexpr int nr = 32;
  static constexpr std::int64_t kc = 256;
  static constexpr std::int64_t mc = 256;
  static constexpr std::int64_t nc = 512;
};

// AVX2 + FMA: MR = 6, NR = 16 (two ymm). 12 accumulators + 2 B vectors + 1 broadcast = 15 of 16 ymm.
// - 12 independent FMA chains cover latency 4 x 2 FMAs/cycle = 8 in flight.
// - Per k step: 2 loads + 6 broadcasts for 12 FMAs (6 cycles). MR = 8 would need 16 accumulators,
//   more than the register file holds next to the B vectors.
// - KC = 256: the B sliver is 256 x 16 x 4 B = 16 KiB, half of L1. MC = 120 (a multiple of 6) keeps
//   the A block at 120 KiB of L2; NC as for AVX-512.
struct Avx2 {
  static constexpr int mr = 6;
  static constexpr int nr = 16;
  static constexpr std::int64_t kc = 256;
  static constexpr std::int64_t mc = 120;
  static constexpr std::int64_t nc = 512;
};

}  // namespace kiln::kernels::gemm_blocking
