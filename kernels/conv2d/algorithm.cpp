// The per-shape choice of convolution algorithm (see algorithm.hpp for the list).
//
// The rules, in order, and why:
//   1. At the Reference CPU level, the reference loops: that level exists to run the oracle everywhere.
//   2. Depthwise (groups == C_in == C_out) goes to the direct kernel. As a GEMM, each group would be a
//      [1, KH*KW] x [KH*KW, OH*OW] product: too thin for a GEMM to get anywhere near peak, and im2col would
//      copy the input KH*KW times to feed it. The direct kernel reads each input row once per tap from L1.
//      Its weight-gradient keeps one vector accumulator per tap, so it takes kernels of at most 32 taps.
//      Two direct kernels: Depthwise vectorizes along each channel's output row, DepthwiseChannels along the
//      channels, a block of them at a time (depthwise_channels_kernel.hpp). DepthwiseChannels takes every
//      pass with at least 16 channels except the stride-1 forward and backward-data of planes of 256 output
//      positions or more (and the strided forward and stride-2 backward-data, below), which read and write
//      rows long enough for Depthwise's vectors and which both kernels run at the memory's pace (Depthwise 1
//      to 10% ahead), unless the activations are channels-last (no conversion then; the two kernels' forward
//      and stride-1 backward-data give the same bits, so channels-last still gives the NCHW bits). Measured,
//      AVX-512, 1 thread, batch 128, MobileNet's layers, ms, Depthwise vs DepthwiseChannels (forward /
//      backward-data / backward-weight):
//        32 at 32x32            2.62 / 2.60 / 5.99  vs  2.72 / 2.62 / 2.48
//        64 at 32x32, stride 2  4.66 / 7.48 / 8.72  vs  2.84 / 2.94 / 2.93  (backward-data phase by phase)
//        128 at 16x16           2.48 / 2.52 / 6.03  vs  2.72 / 2.67 / 2.66
//        512 at 4x4             2.86 / 3.00 / 4.90  vs  0.47 / 0.46 / 0.79
//        1024 at 2x2            3.61 / 3.90 / 6.14  vs  0.71 / 0.71 / 0.95
//      A 4x4 plane's rows fill a quarter of a zmm, and each plane pays a setup its 144 multiply-adds cannot
//      carry; a pixel of 16 channels fills one whole. Since Depthwise runs 3x3 and 5x5 kernels 8 output
//      rows at a time (each input row loaded once for the rows it meets), at stride 2 down the rows too
//      (and its stride-2 column phases split by vectors), it also takes the forward pass of strided
//      planes of 256 output positions or more, and the stride-2 backward-data of gx planes as large (the
//      forward pass over gy upsampled). 2 threads of a Xeon with AMX, batch 128, ms, Depthwise vs
//      DepthwiseChannels (forward / backward-data):
//        32 at 32x32             0.74 / 0.71  vs  1.87 / 1.86
//        64 at 32x32, stride 2   1.10         vs  1.73        (56x56 -> 28x28: 1.32 vs 1.89)
//        128 at 16x16, stride 2  1.08         vs  0.88        (8x8 outputs: half a zmm a row)
//        256 at 8x8              1.17 / 1.24  vs  0.90 / 0.96
//   3. A 1x1 kernel with stride 1 and no padding goes to Pointwise: the image is already the GEMM operand.
//      Planes of at most 4 positions, in and out (2x2), one group, whose unrolled kernel U fills at least
//      half of its matrix, go to UnrolledGemm from a batch of 16: one GEMM of the batch by U
//      (unrolled_gemm.cpp). F(2x2, 3x3) makes a 2x2 plane one tile of 16 positions, 4x the products the
//      convolution has, and im2col's GEMM has 4 columns an image. Measured, 2 threads of a Xeon, ms,
//      forward / backward-data / weight gradient, 3x3 kernels padded by 1 at 2x2, batch 128:
//        512 -> 512   F(2x2, 3x3) 8.6 / 12.3 / 9.7    UnrolledGemm 5.4 / 5.4 / 5.7
//        256 -> 256               2.6 / 3.1 / 2.2                  1.27 / 1.32 / 1.29
//        64 -> 64                 0.15 / 0.16 / 0.17               0.10 / 0.11 / 0.11
//        32 -> 32     im2col+GEMM 0.34 / 0.38 / 0.36               0.030 / 0.033 / 0.033
//      and 64 -> 64 at batch 4 / 8 / 16, forward, im2col+GEMM 0.036 / 0.062 / 0.123 against 0.048 / 0.050 /
//      0.051 (building U costs about what a batch of 8 does). A ResNet-18 step on 32x32 images went from
//      132 to 103 ms (its third stage at 2x2), on 64x64 ones from 420 to 360 ms (fourth), 302 to 227 in bf16.
//      Output planes of at most 5x5 beyond those, one group, at least 128 channels a side and 8 images, go
//      to TapGemm: a GEMM over the batch for each tap and run of output positions it reaches
//      (tap_gemm.cpp), which multiplies no padding. Winograd's 2x2 tiles overhang an odd plane (16 outputs
//      for a 3x3 one's 9, 36 for 5x5's 25) and its stride-2 form splits small planes into smaller phases;
//      where they fit an even plane at stride 1 (4x4) it keeps the plane below 256 channels. 6x6 planes go
//      to TapGemm in the forward and backward-data of layers narrower than 512 channels, where Winograd's
//      2.25x fewer products still lose to its transforms. Measured, 2 threads of a Xeon with AVX-512, ms,
//      the rule's choice before (Winograd at these sizes) vs TapGemm, forward / backward-data / weight
//      gradient:
//        batch 64   512->512 at 3x3      12.8 / 16.3 / 15.6   vs  7.3 / 7.3 / 6.5    (ResNet-18, 96x96)
//                   256->512 s2 at 6x6   9.9 / 12.1 / 11.4    vs  4.8 / 4.8 / 4.7
//                   256->256 at 3x3      4.8 / 5.3 / 3.6      vs  2.1 / 1.9 / 1.7
//                   128->128 at 3x3      0.73 / 0.97 / 1.05   vs  0.53 / 0.59 / 0.51
//                   512->512 at 5x5      26.5 / 27.8 / 30.3   vs  21.8 / 21.6 / 21.1  (160x160)
//                   256->256 at 5x5      9.3 / 10.4 / 6.5     vs  5.6 / 5.5 / 5.9
//                   128->128 at 5x5      1.49 / 1.62 / 1.97   vs  1.54 / 1.55 / 1.69
//                   512->512 at 4x4      12.6 / 16.5 / 15.8   vs  13.3 / 13.5 / 12.7  (128x128)
//                   256->256 at 6x6      8.98 / 9.63 / 6.22   vs  7.69 / 8.07 / 8.30  (96x96)
//                   128->256 s2 at 12x12 8.46 / 8.15 / 5.68   vs  5.25 / 5.63 / 6.25
//                   512->512 at 6x6      24.9 / 28.8 / 31.1   vs  31.0 / 30.2 / 31.0  (Winograd keeps it)
//        batch 128  256->256 at 4x4      8.3 / 9.1 / 6.7      vs  6.0 / 6.1 / 6.7
//                   128->128 at 4x4      1.67 / 1.85 / 1.86   vs  1.83 / 1.79 / 1.97  (Winograd keeps it)
//                   128->256 s2 at 4x4   1.79 / 2.36 / 1.89   vs  1.04 / 1.14 / 1.07  (32x32)
//        batch 8    512->512 at 3x3      2.53 / 2.79 / 1.59   vs  1.86 / 1.87 / 1.54
//      and where it loses: 64 channels (64->64 at 4x4, batch 128, 0.35 / 0.37 / 0.56 vs 0.61 / 0.59 / 0.56),
//      batch 1 or 4 (512->512 at 3x3: 0.57 / 1.05 / 0.62 vs 1.39 / 1.17 / 1.03), larger planes (512->512 at
//      7x7 38.0 / 44.4 / 44.4 vs 42.5 / 41.7 / 45.6; 6x6's weight gradient, above), 2x2 planes at 64 channels
//      against UnrolledGemm (0.12 vs 0.17), and 1x1 kernels at stride 2 on larger planes (64->128 at
//      24x24, 1.0 vs 2.8: the input's transpose costs more than the product).
//   4. Stride-1 convolutions the strip holds (pad <= dilation * (K - 1)) with at least 8 input and 8
//      output channels per group and at least 4096 output positions in the batch go to Direct. It skips
//      im2col's KH*KW-fold copy (and col2im's scattered adds), and its weight gradient visits only real
//      outputs. Below 8 channels its tiles are mostly empty (backward-data of a 3-channel input computes 3
//      of 8 rows); below 4096 positions the per-call weight repacking and the strip's junk positions
//      (21% at 8x8) outweigh what it saves. The weight gradient needs only the 8 output channels: its tiles
//      run along output channels and taps, so a 3-channel input just has fewer taps (3->16 at 32x32, batch
//      128, 2 threads: 1.04 ms against im2col + GEMM's 1.72). Measured, batch 128, 2 threads, ms, im2col+GEMM
//      vs direct (forward / backward-data / backward-weight):
//        16->16 at 32x32   5.5 / 6.7 / 6.7  vs  4.0 / 3.9 / 4.6      3->16 at 32x32  0.9 / 1.3 / 1.6  vs
//        32->32 at 16x16   4.0 / 5.1 / 5.9  vs  3.9 / 4.0 / 4.1                      1.0 / 2.1 / 1.9
//        64->64 at 8x8     4.4 / 4.7 / 5.8  vs  4.1 / 4.3 / 3.9      (1 thread: im2col+GEMM kept C_in = 3)
//        128->128 at 8x8  21.8 / 18.0 / 37.4 vs 16.2 / 15.5 / 20.6
//      and at batch 1, 64->64 at 8x8 (64 positions): 0.13 / 0.06 / 0.11 vs 0.21 / 0.24 / 0.10.
//      Stems (fewer than 8 input channels) with at least 32 output channels take Direct for the forward
//      too: their im2col copy (27 floats an output position) leaves the GEMM waiting on memory, which two
//      threads share, so it hardly gains from the second thread. Measured on 2 Zen 5 cores, ms, im2col +
//      GEMM vs Direct, 2 threads, batch 32 / 128: 3->32 at 32x32 (the VGG-style and MobileNet-style
//      stems) AVX-512 0.42-0.53 / 1.70-2.04 vs 0.34-0.39 / 1.41-1.69, AVX2 0.54-0.56 / 2.18 vs 0.49-0.50 /
//      2.12-2.13; in a vgg_small training step 1.94-2.10 vs 1.64-1.68. ResNet's 3->16 keeps im2col + GEMM:
//      level in `conv2d_bench` (AVX-512, 0.58-0.73 vs 0.69-0.82 at batch 128), it lost in a training step
//      (0.79-0.85 vs 1.04-1.07), though AVX2 gave Direct the lead (1.30 vs 1.03-1.04). On one thread
//      im2col + GEMM keeps the lead (AVX-512, batch 128: 3->32 1.84 vs 2.33), and at batch 1 too.
//      With a 5x5 kernel (25 taps or more) im2col copies 25 floats per input channel and output position,
//      and Direct takes every pass of a layer with fewer than 8 input or output channels, at any batch
//      (stride 1, inside the strip): LeNet-5's layers, ms,
//      im2col + GEMM vs Direct, 2 threads, batch 1 / 32 / 128 (`conv2d_bench --all-algorithms
//      --benchmark_filter=lenet5`), AVX-512:
//        3->6 at 32x32    forward 0.041 / 0.19 / 0.73-0.80 vs 0.015 / 0.14 / 0.52-0.54, backward-data
//                         0.057 / 0.31 / 1.21-1.29 vs 0.023 / 0.25 / 0.98-0.99, weight gradient 0.046 /
//                         0.41-0.42 / 1.58-1.63 vs 0.026 / 0.27 / 1.04-1.05
//        6->16 at 14x14   forward 0.021 / 0.17 / 0.45-0.47 vs 0.016 / 0.11 / 0.40-0.42, backward-data
//                         0.023 / 0.20 / 0.62-0.63 vs 0.021 / 0.16 / 0.52-0.53, weight gradient 0.017 /
//                         0.34 / 0.76-0.84 vs 0.011 / 0.12 / 0.31
//      and AVX2 alike but for 6->16's forward at batch 128 (0.66 vs 0.74); one thread too (3->6 forward /
//      weight gradient at batch 128 1.45-1.53 / 3.30 vs 1.01-1.02 / 2.20-2.25).
//   5. Winograd (winograd_kernel.hpp) takes 3x3 convolutions at stride 1, dilation 1, groups 1 with at least
//      16 input and 16 output channels and 2048 output positions in the batch (backward-data: pad <= 2):
//      F(4x4, 3x3) when neither side has more than 128 channels (the weight gradient from 8192 positions),
//      otherwise F(2x2, 3x3) for the forward and backward-data, and for the weight gradient when both sides
//      have at least 64 channels; and F(2x2, 3x3) from 512 positions when both sides have at least 64
//      channels (below). F(2x2, 3x3) makes 2 x 2 outputs with 16 multiplies instead of 36; its
//      transforms cost a fixed amount per channel and tile, so its lead grows with the channels. Measured,
//      AVX-512, 2 threads, batch 128, ms, the algorithm that served the pass before vs F(2x2, 3x3) (forward
//      / backward-data):
//        16->16 at 32x32   4.22 / 4.24  vs  3.65 / 3.75
//        32->32 at 16x16   3.65 / 3.79  vs  2.50 / 2.57
//        64->64 at 8x8     3.56 / 3.70  vs  2.17 / 2.10
//        128->128 at 8x8  11.8 / 12.7   vs  6.44 / 6.81   (vgg_small)
//        32->64 at 16x16   6.42 / 6.20  vs  4.19 / 4.33
//      and at batch 32, 64->64 at 8x8 (2048 positions): 1.06 / 1.08 vs 0.74 / 0.76. AVX2 the same way
//      (64->64 at 8x8: 6.64 / 6.72 vs 2.36 / 2.22). At batch 1, 16->16 at 32x32 (1024 positions), the
//      forward lost (0.067 vs 0.049 ms).
//      F(4x4, 3x3) makes 4 x 4 outputs with 36 multiplies, 1.78x fewer again. Measured, 2 threads / 1
//      thread, ms, F(2x2, 3x3) vs F(4x4, 3x3), forward and backward-data (the 16->16 and 32->32 rows from
//      before the position stride of winograd_kernel.hpp, which moved neither of them much there):
//        batch 128  16->16 at 32x32   3.36 / 3.28  vs  2.43 / 2.40                     (2 threads)
//                   32->32 at 16x16   2.11 / 2.29  vs  1.63 / 1.70                     (2 threads)
//                   64->64 at 8x8     1.00 / 0.95  vs  0.74 / 0.71,  1.93 / 1.82 vs 1.47 / 1.50
//                   64->128 at 8x8    1.75 / 1.79  vs  1.33 / 1.52,  3.30 / 3.41 vs 2.23 / 2.80
//                   128->128 at 8x8   3.53 / 3.52  vs  2.79 / 2.84,  6.54 / 6.57 vs 5.17 / 5.04
//        batch 32   64->64 at 8x8     0.28 / 0.28  vs  0.26 / 0.26,  0.49 / 0.50 vs 0.43 / 0.42
//                   128->128 at 8x8   0.98 / 1.00  vs  0.90 / 0.94,  1.69 / 1.71 vs 1.49 / 1.49
//      and AVX2, batch 128: 16->16 3.64 / 3.44 vs 2.99 / 2.74, 32->32 2.68 / 2.45 vs 1.99 / 2.06, 64->64
//      2.52 / 2.34 vs 2.27 / 2.00. Its transformed weights (36 x C_in x C_out floats: 2.4 MB at 128 x 128)
//      leave L2 past 64 channels and are re-read for every block of tiles, and still it wins at 128. Past
//      128 channels (9.4 MB of them at 256 x 256) it still takes the forward and backward-data wherever its
//      4x4 tiles overhang the plane by at most a seventh (sides of 7, 8, 11, 12, 14, 15, 16 and up): ms,
//      2 threads, F(2x2, 3x3) vs F(4x4, 3x3), forward / backward-data, AVX-512:
//        batch 128  256->256 at 8x8      32.4 / 28.3   vs  19.5 / 20.5    (ResNet-18 on 128x128 photos)
//        batch 64   512->512 at 8x8      41.5 / 42.9   vs  33.9 / 38.3
//                   512->512 at 7x7      38.6 / 43.8   vs  32.1 / 37.4    (ResNet-18 on 224x224)
//                   256->256 at 24x24    124 / 113     vs  86.0 / 90.9    (VGG-11 on 96x96)
//                   512->512 at 12x12    81.6 / 81.5   vs  61.6 / 67.3
//                   256->256 at 14x14    46.0 / 45.5   vs  34.5 / 35.9
//                   256->256 at 12x12    30.8 / 31.5   vs  30.8 / 31.4
//        batch 32   256->256 at 16x16    26.5 / 28.7   vs  17.5 / 19.7
//                   512->512 at 14x14    58.5 / 59.9   vs  57.4 / 62.1
//      and AVX2: 256->256 at 8x8 43.8 / 48.4 vs 30.8 / 35.5, 512->512 at 7x7 57.6 / 61.1 vs 51.8 / 55.6,
//      256->256 at 16x16 51.1 / 52.0 vs 35.0 / 36.6, at 12x12 57.6 / 57.8 vs 49.8 / 49.5. Where the tiles
//      overhang more it loses (256->256 at 10x10, batch 64, 25.0 / 25.8 vs 29.4 / 31.3; 512->512 at 6x6
//      24.5 / 28.3 vs 32.9 / 37.3): F(2x2, 3x3) keeps those. Its weight gradient past 128 channels takes the
//      planes its tiles cover exactly (sides multiples of 4), from 8192 positions: ms, F(2x2, 3x3) vs
//      F(4x4, 3x3), batch 64 unless said, 128->256 at 24x24 (VGG-11 on 96x96) 56.3 vs 32.3, 256->512 at
//      12x12 47.0 vs 34.2, 512->512 at 12x12 100 vs 76.0, batch 128 128->256 at 8x8 12.5 vs 7.5, batch 32
//      256->512 at 16x16 38.3 vs 27.8; level at 256->256 (batch 128 at 8x8 19.7 vs 20.3, at 24x24 89.4 vs
//      90.1); and where the tiles overhang, 256->256 at 14x14 32.5 vs 36.1, at 6x6 6.8 vs 10.9.
//      The weight gradient transforms both x and gy per tile and sums over the tiles, so it needs more
//      tiles to pay: below 8192 positions F(2x2, 3x3) wins, and below 64 channels as well Direct keeps it
//      (unmeasured there since the position stride). Measured, batch 128, ms, 2 threads / 1 thread, Direct
//      vs F(2x2, 3x3) vs F(4x4, 3x3):
//        16->16 at 32x32   2.52 / 4.86   2.63 / 4.75   1.78 / 3.26
//        32->32 at 16x16   2.15 / 3.90   1.86 / 3.33   1.26 / 2.20
//        64->64 at 8x8     2.47 / 3.87   1.35 / 2.37   1.26 / 1.96
//        64->128 at 8x8    4.97 / 7.97   3.30 / 4.68   3.12 / 3.61    (vgg_small)
//        128->128 at 8x8   9.13 / 18.0   5.60 / 8.64   4.18 / 6.67    (vgg_small)
//      and at batch 32 (2048 positions), 64->64 at 8x8: 0.63 / 0.97, 0.44 / 0.71, 0.56 / 0.77; 128->128
//      2.60 / 4.00, 2.23 / 2.69, 2.79 / 2.82. AVX2 agrees at 2 threads, batch 128 (128->128 at 8x8, F(2x2,
//      3x3) vs F(4x4, 3x3), the three passes: 6.86 / 7.23 / 7.93 vs 4.69 / 5.02 / 5.78).
//      (Open: on 2 cores of a Xeon with AMX, after the weight transforms lost their stalls, F(4x4, 3x3)
//      took the weight gradient from 2048 positions: ms, F(2x2, 3x3) vs F(4x4, 3x3), batch 128, 64->64 at
//      4x4 0.47 vs 0.38, 128->128 at 4x4 1.65 vs 1.21, batch 32, 64->64 at 8x8 0.42 vs 0.33-0.40. The rule
//      keeps 8192 until the Zen 5 figures above are measured again.)
//      At stride 2 the same kernel splits each patch by phase (winograd_transforms.hpp's F2x2Stride2 and
//      F4x4Stride2: 25 multiplies per 2x2 outputs, or 81 per 4x4, where the direct method takes 36 or 144),
//      and Winograd takes the forward with the same minimums: F(4x4, 3x3) from 8192 positions with at most
//      32 channels each side (its U, 81 x C_in x C_out floats, is 0.66 MB at 32 -> 64), else F(2x2, 3x3).
//      Measured, batch 128, ms, 1 thread / 2 threads, im2col + GEMM vs F(2x2, 3x3) vs F(4x4, 3x3):
//        16->32 at 32x32   4.89 / 2.25   3.93 / 2.02   3.34 / 1.75
//        32->64 at 16x16   4.23 / 2.33   3.29 / 1.64   3.96 / 2.38
//      and at batch 32 (2 threads), 16->32 0.56 / 0.55 / 0.58 (1 thread: F(2x2, 3x3) 0.81, F(4x4, 3x3)
//      0.79), 32->64 (2048 positions) 0.91 / 0.57 / 1.17; at batch 1 im2col + GEMM wins (0.075 / 0.081 /
//      0.195, 0.106 / 0.219 / 0.731); AVX2, 2 threads, batch 128: 16->32 4.57 / 2.99 / 2.84, 32->64 3.39
//      / 2.30 / 2.62. The stride-2 weight gradient took F(2x2, 3x3) with the same minimums (Direct takes it
//      now up to 32 input channels, below). Measured, ms, 2 threads / 1 thread, im2col + GEMM vs Direct vs
//      F(2x2, 3x3) vs F(4x4, 3x3):
//        batch 128  16->32 at 32x32   2.51 / 3.86   1.95 / 3.47   1.78 / 3.25   1.96 / 3.05
//                   32->64 at 16x16   2.30 / 2.99   1.79 / 2.95   1.36 / 2.24   1.67 / 2.46
//        batch 32   16->32 at 32x32   0.96 / 0.79   0.54 / 0.73   0.46 / 0.71   0.55 / 0.69
//                   32->64 at 16x16   0.81 / 0.65   0.54 / 0.71   0.41 / 0.62   0.65 / 0.81
//      and AVX2, 2 threads, batch 128: 16->32 4.43 / - / 3.28 / 3.11, 32->64 3.73 / - / 2.52 / 2.71.
//      (Direct then read the strip by phases. On the stride-1 strip (direct_strip.hpp's StridedOutputs) it
//      drew level: two Zen 5 cores, median of 5 interleaved runs, F(2x2, 3x3) vs Direct, 2 threads / 1
//      thread, batch 32, then 128: 16->32 0.43 / 0.62, 1.45 / 2.53 vs 0.34 / 0.58, 1.34 / 2.53; 32->64
//      0.39 / 0.55, 1.29 / 1.94 vs 0.37 / 0.57, 1.30 / 2.37; AVX2 16->32 2.27 / 4.21 vs 2.26 / 4.39 at batch
//      128. But in a ResNet-20 training step 16->32's weight gradient took 1.59-1.75 ms on Direct against
//      1.55-1.75 on F(2x2, 3x3), Direct's strip copy reading x from memory as Winograd's transforms do; and
//      on bfloat16 or channels-last tensors Direct would widen or transpose first. Winograd kept it.)
//      Then Direct's weight tiles grew, from 6 taps to 12 at AVX-512 (avx512_direct.cpp), from 4 to 6 at
//      AVX2 (avx2_direct.cpp), and Direct takes the stride-2 weight gradient of NCHW tensors up to 32 input
//      channels. A Xeon with AMX, AVX-512, 2 threads / 1 thread, ms, F(2x2, 3x3) vs Direct: batch 128,
//      16->32 1.68-1.95 / 3.32-3.93 vs 1.33-1.50 / 2.64-2.80, 32->64 1.76-1.83 / 3.17-3.45 vs 1.34-1.37 /
//      2.48-2.59; batch 32, 16->32 0.47-0.54 vs 0.34-0.38, 32->64 0.38-0.41 vs 0.35-0.37; in a ResNet-20
//      training step (kiln train --profile, alternating builds) 2.23-2.42 ms a layer vs 1.64-1.99; 32->64
//      from 48x48, batch 64, 7.49-7.54 vs 5.02-5.26. Wider inputs keep F(2x2, 3x3): 128->256 from 12x12,
//      batch 64, 4.51-4.62 vs 5.50-5.59, from 8x8, batch 128, 4.00-4.08 vs 5.21-5.24; 64->128 from 24x24,
//      batch 64, 5.73-5.88 vs 4.94-5.41 alone but 6.46-6.70 vs 6.76-7.03 in ResNet-18's training step on
//      96x96 photos (Direct's strip copy reading x from memory). AVX2, 2 threads, batch 128 / 32: 16->32
//      2.05-2.18 / 0.52-0.57 vs 1.86-1.93 / 0.50, 32->64 2.30-2.31 vs 1.89-1.93 (with AVX2's 4-tap tile
//      Direct had lost 16->32, 2.45 vs 2.84). Channels-last tensors keep F(2x2, 3x3). bfloat16 NCHW tensors
//      without AMX follow (widened to the float Direct where Winograd ran on them): at AVX-512 the two
//      layers took 2.21 + 2.21 ms a step before, 2.52-2.62 + 1.78-1.83 after. Backward-data at padding 1
//      (F2x2Stride2Data, F4x4Stride2Data: tiles of 4x4 or 8x8 input-gradient pixels) takes F(4x4, 3x3) from
//      16384 positions with at most 32 channels each side, else F(2x2, 3x3) when the input has at least 32
//      channels; otherwise DirectChannels (rule 6a) keeps it. Measured, ms, 1 thread / 2 threads,
//      DirectChannels vs F(2x2, 3x3) vs F(4x4, 3x3):
//        batch 128  16->32 at 32x32   7.21 / 3.36   6.40 / 3.07   5.05 / 3.02
//                   32->64 at 16x16   4.94 / 2.68   3.73 / 1.89   4.63 / 3.00
//        batch 32   16->32 at 32x32   1.25 / 0.71   1.34 / 0.77   1.33 / 0.94
//                   32->64 at 16x16   1.17 / 0.73   1.02 / 0.54   1.79 / 0.87
//      and AVX2, 2 threads, batch 128: 16->32 3.99 / 3.18 / 3.58, 32->64 3.41 / 2.53 / 2.84.
//      The wide layers of small planes (ResNet-18 and vgg11 on 32x32 images: 2x2 and 4x4 planes of 64 to
//      512 channels) have few positions, and there im2col + GEMM ran at 65-90 GFLOP/s (its GEMM's columns
//      come in blocks of one plane, 4 or 16 wide) while F(2x2, 3x3) kept its lead from 512 positions.
//      Measured, two Zen 5 cores, median of 9, ms, im2col + GEMM vs F(2x2, 3x3) vs the rule's choice before
//      when not im2col (forward / backward-data / backward-weight):
//        batch 128  64->64 at 2x2     1.50 / 1.29 / 1.42   vs  0.19 / 0.24 / 0.20
//                   256->256 at 2x2   9.22 / 6.37 / 5.07   vs  1.85 / 2.33 / 1.80
//                   512->512 at 2x2   17.2 / 22.6 / 15.5   vs  8.69 / 10.8 / 8.54
//        batch 32   64->64 at 4x4     0.52 / 0.65 / 0.53   vs  0.16 / 0.17 / 0.14
//                   128->128 at 4x4   1.28 / 1.54 / 1.24   vs  0.60 / 0.71 / 0.52  (F(4x4): 0.94 / 1.00 /
//                   0.83) 256->256 at 4x4   4.60 / 4.29 / 3.43   vs  2.01 / 2.34 / 1.77
//        batch 8    64->64 at 8x8     0.28 / 0.39 / 0.28   vs  0.13 / 0.16 / 0.14
//                   128->128 at 8x8   0.79 / 1.00 / 0.75   vs  0.52 / 0.63 / 0.47
//        batch 16   64->64 at 8x8     DirectChannels 0.29 / 0.27, im2col + GEMM 0.54  vs  0.19 / 0.22 / 0.20
//      and at 128 positions (batch 32 at 2x2) im2col + GEMM keeps it (256->256: 1.63 / 1.47 / 1.26 vs 1.37 /
//      1.76 / 1.62; 512->512 4.29 / 4.33 / 3.45 vs 5.49 / 6.82 / 5.91).
//   6. DirectChannels (direct_channels_kernel.hpp) reads the same strip one output row at a time, vectorized
//      along the output channels, so it computes no junk; its backward-data runs the input gradient phase
//      by phase, so it takes any stride. It goes
//      a. to strided backward-data with at least 8 input and 8 output channels per group and 1024 output
//         positions, which otherwise would be im2col + GEMM and col2im's overlapping adds. Measured, 2
//         threads, ms, im2col + GEMM vs DirectChannels: 16->32 at 32x32 (stride 2), batch 128, 3.37 vs 2.71,
//         batch 32, 0.77 vs 0.57; 32->64 at 16x16 2.55 vs 2.01, 0.59 vs 0.57. Only where the kernel's
//         windows overlap (a stride below the dilated kernel's extent along some axis): otherwise each input
//         pixel takes one tap, col2im adds nothing up, and the GEMM wins. Two Zen 5 cores, each call on the
//         next of 24 copies of the operands, ms, im2col + GEMM vs DirectChannels, 2 threads / 1 thread,
//         batch 128 (64 for the third): 1x1 s2 (a projection shortcut) 16->32 at 32x32 0.50 / 0.82 vs 0.95
//         / 1.47, 32->64 at 16x16 0.36 / 0.55 vs 0.78 / 1.08, 64->128 at 16x16 0.49 / 0.71 vs 0.82 / 1.30;
//         3x3 s3 16->32 at 33x33 1.80 / 2.79 vs 2.33 / 3.01; 2x2 s2 32->64 at 32x32 3.64 / 6.41 vs 3.72 /
//         6.37. (The overlapping 3x3 s2 16->32 at 32x32, which Winograd takes at this batch: 2.63 / 4.70 vs
//         1.92 / 3.32.)
//      b. in place of rule 4, to the forward and backward-data passes whose output has at least 16 channels
//         per group and 1024 positions in the batch. Measured, ms, Direct vs DirectChannels (forward /
//         backward-data), AVX-512, 2 threads:
//           batch 128   32->32 at 16x16   3.81 / 4.00  vs  3.61 / 3.42
//                       64->64 at 8x8     4.11 / 4.15  vs  3.17 / 3.39
//                       128->128 at 8x8        - / 15.8 vs       - / 12.0
//           batch 16    64->64 at 8x8     0.89 / 0.83  vs  0.64 / 0.49   (im2col + GEMM 1.26 / 0.81)
//         and 16->16 at 32x32, batch 128, on 1 thread (2 threads are too noisy here to split them):
//         7.83 / 7.93 vs 7.56 / 6.97, and again 8.28 / 8.27 vs 6.83 / 7.88. AVX2 (4 positions x 16
//         channels), 2 threads, batch 128: 32->32 4.83 / 4.57 vs 4.43 / 4.15; 64->64 4.93 / 4.39 vs
//         4.14 / 3.97; 16->16 a tie (5.16 / 5.34 vs 4.93 / 5.24, 4.87 / 5.45 vs 5.06 / 5.48). At batch 1,
//         16->16 at 32x32 (1024 positions) takes 0.04 / 0.05 ms against im2col + GEMM's 0.07 / 0.07, but
//         with 64 or 256 positions (8x8, 16x16) im2col + GEMM is as fast or ahead. Strided forwards are
//         rule c's, or im2col + GEMM's.
//      c. to strided forwards that Winograd does not take, with at least 16 output channels per group and
//         1024 positions, whose im2col columns are deep: kernels of 25 taps or more (5x5, 7x7), or 64 or more
//         floats per output position (C_in / groups x taps: a 3x3 from 8 input channels). At a stride its
//         tiles walk the stride-1 strip s floats apart (direct_strip.hpp's StridedOutputs); on the strip
//         split into phases, whose copy cost more than the tiles, the same layers took 1.2-2.4x longer
//         (16->32 3x3 s2 at 32x32 2.57 -> 1.48 ms, 3x3 s3 16->32 at 33x33 2.24 -> 1.18, a 1x1 at stride 2
//         1.60 -> 0.66), and im2col + GEMM kept every 3x3. Measured on two Zen 5 cores, each call on the
//         next of up to 24 copies of the operands, median of 7 alternated runs, batch 128 unless said, ms,
//         im2col + GEMM vs DirectChannels, AVX-512 2 threads / 1 thread / AVX2 2 threads:
//           3x3 s3 16->32 at 33x33        1.78 / 3.34 / 2.30   vs  1.19 / 2.14 / 1.57
//           3x3 s2 d2 16->32 at 32x32     1.80 / 3.44 / 3.47   vs  1.47 / 2.66 / 2.48
//           3x3 s2 d2 32->64 at 16x16     1.76 / 3.76 / 2.79   vs  1.26 / 2.85 / 2.50
//           3x3 s2 8->16 at 32x32         0.74 / 1.35 / 1.15   vs  0.61 / 1.11 / 0.83
//           2x2 s2 16->16 at 32x32        0.97 / 2.21 / 1.57   vs  0.73 / 2.14 / 1.30
//           3x3 s2 8->32 at 64x64, b 32   1.07-1.32 / 1.56 / 1.88  vs  1.30-1.38 / 1.42 / 1.57  (its one
//           loss)
//         and at batch 8, 3x3 s3 16->32 (968 positions, under the minimum) 0.22 vs 0.08; at batch 1 (121 to
//         256 positions) the two are level. im2col + GEMM keeps shallow columns: 3->32 3x3 s2 (27 floats)
//         0.40 / 0.73 / 0.68 vs 0.41 / 0.76 / 0.76, 4->64 3x3 s2 at 64x64, batch 32 (36 floats) 1.22 / 1.32
//         / 1.52 vs 1.40 / 2.52 / 1.72, 1x1 projections (one tap: the GEMM on the subsampled pixels) 16->32
//         0.54 / 1.04 / 0.84 vs 0.66 / 1.18 / 0.99; and 8 output channels per group, half of each AVX-512
//         vector empty: 3x3 s2 in 4 groups 32->32 2.37 / 4.59 / 3.90 vs 2.33 / 4.36 / 3.17, in 8 groups
//         64->64 at 16x16 1.75-1.93 / 4.08 / 2.45 vs 1.96-2.31 / 4.78 / 2.20. ResNet's stride-2 3x3 layers
//         stay with Winograd (rule 5: 16->32 at 32x32 1.15 vs 1.50, 32->64 at 16x16 0.94 vs 1.22). The 5x5
//         and 7x7 kernels, measured on the phases (`conv2d_bench --all-algorithms
//         --benchmark_filter=forward/strided`, median of 3), AVX-512 2 threads / 1 thread / AVX2 2 threads,
//         batch 1, 32, 128:
//           7x7 s2 3->64 at 64x64    0.170, 2.87, 11.4 / 0.132, 4.43, 17.7 / 0.227, 4.33, 16.8
//                                vs  0.112, 2.37, 8.64 / 0.112, 3.68, 15.3 / 0.141, 4.26, 17.9
//           5x5 s2 32->64 at 32x32   3.61, 14.7 / 6.30, 25.1 / 6.55, 24.4  (batch 32, 128)
//                                vs  3.24, 12.1 / 5.66, 21.5 / 5.94, 23.3
//         (at batch 1 the 5x5 layer's 256 positions keep im2col + GEMM: 0.177 vs 0.185 on one thread), and
//         on the stride-1 strip DirectChannels took 8.32 -> 7.74 and 12.1 -> 9.83 of them at batch 128.
//   7. Strided weight gradients that Winograd does not take (kernels other than 3x3, few channels, strides
//      other than 2, dilation, groups) go to Direct when the kernel has more than one tap and the batch at
//      least 512 output positions. Its tiles walk the stride-1 strip s floats apart (direct_strip.hpp's
//      StridedOutputs), where im2col copies KH*KW floats per input channel and output position. Measured,
//      two Zen 5 cores, each call on the next of 24 copies of the operands, median of 3 runs of 30, ms
//      (`conv2d_bench --all-algorithms --benchmark_filter=backward_weight/strided` times four of them),
//      im2col + GEMM vs Direct, AVX-512 2 threads / 1 thread / AVX2 2 threads, batch 128 unless said:
//        5x5 s2 3->32 at 64x64, batch 64    2.41 / 4.02 / 3.94  vs  1.36 / 2.47 / 2.30
//        5x5 s2 32->64 at 32x32, batch 64   9.70 / 13.8 / 14.3  vs  6.47 / 12.1 / 11.2
//        7x7 s2 3->64 at 64x64, batch 32    3.57 / 5.29 / 5.79  vs  2.22 / 4.00 / 3.96
//        5x5 s2 3->6 at 32x32               0.75 / 1.28 / 0.81  vs  0.52 / 0.93 / 0.53
//        3x3 s2 8->16 at 32x32              1.13 / 1.83 / 1.47  vs  0.71 / 1.22 / 0.98
//        3x3 s2 16->4 at 32x32              1.73 / 2.77 / 1.90  vs  1.13 / 2.15 / 1.12
//        3x3 s3 16->32 at 33x33             1.91 / 3.35 / 3.08  vs  1.17 / 2.10 / 1.53
//      and groups and dilation alike (2 threads / 1 thread): 3x3 s2 in 4 groups 32->32 at 32x32 4.06 / 6.48
//      vs 3.42 / 4.90, in 8 groups 64->128 at 16x16 3.02 / 4.83 vs 2.00 / 2.65, dilation 2 16->32 at 32x32
//      2.42 / 4.05 vs 1.78 / 2.87. At batch 8: 3x3 s2 16->4 (2048 positions) 0.26 vs 0.11, 3x3 s3 16->32
//      (968) 0.23 vs 0.10.
//      At batch 1 with 256 positions im2col + GEMM wins where the layer is small (5x5 s2 3->6 at 32x32
//      0.007 vs 0.014, 3x3 s2 16->4 0.014 vs 0.023), and with 1024 Direct does (7x7 s2 3->64 at 64x64 0.24
//      vs 0.10); the minimum lies between. A 1x1 kernel at stride 2 (a projection shortcut) is a plain GEMM
//      on the subsampled pixels and stays with im2col + GEMM, the two mixed: 64->128 at 16x16 0.91 vs 0.68 on
//      2 threads but 1.08 vs 1.18 on one, 32->64 0.52 vs 0.55, and at batch 1 0.003 vs 0.015.
//   8. Everything else goes to im2col + GEMM, which handles any stride, padding, dilation and groups.
//      Direct runs strided forwards too (through the strip's phases), but at stride 2 im2col + GEMM stays
//      ahead: 1 thread, batch 128, ms, im2col+GEMM vs direct: 16->32 at 32x32 forward 4.46 vs 5.37; 32->64
//      at 16x16 4.15 vs 4.80.

#include "kernels/conv2d/algorithm.hpp"

#include <algorithm>

#include "kernels/conv2d/depthwise_kernel.hpp"

namespace kiln::kernels {
namespace {

constexpr std::int64_t kMaxDepthwiseTaps = 32;
constexpr std::int64_t kMinDepthwiseChannelsChannels = 16;
constexpr std::int64_t kMinDepthwisePlanePositions = 256;
constexpr std::int64_t kMaxUnrolledPositions = 4;
constexpr std::int64_t kMinUnrolledBatch = 16;
constexpr double kMinUnrolledDensity = 0.5;
constexpr std::int64_t kMaxTapGemmOutputSide = 5;
constexpr std::int64_t kMaxTapGemmWideOutputSide = 6;
constexpr std::int64_t kMaxTapGemmWidePlaneChannels = 512;
constexpr std::int64_t kMinTapGemmBatch = 8;
constexpr std::int64_t kMinTapGemmChannels = 128;
constexpr std::int64_t kMinTapGemmEvenPlaneChannels = 256;
constexpr std::int64_t kMinDirectChannels = 8;
constexpr std::int64_t kMinDirectPositions = 4096;
constexpr std::int64_t kMinDirectStemOutputChannels = 32;
constexpr std::int64_t kMinDirectWideKernelTaps = 25;
constexpr std::int64_t kMinDirectChannelsOutputChannels = 16;
constexpr std::int64_t kMinDirectChannelsPositions = 1024;
constexpr std::int64_t kMinDirectChannelsStridedColumnDepth = 64;
constexpr std::int64_t kMinDirectStridedWeightPositions = 512;
constexpr std::int64_t kMaxDirectStride2WeightInputChannels = 32;
constexpr std::int64_t kMinWinogradChannels = 16;
constexpr std::int64_t kMinWinogradWeightChannels = 64;
constexpr std::int64_t kMinWinogradPositions = 2048;
constexpr std::int64_t kMinWinogradFewPositions = 512;
constexpr std::int64_t kMinWinogradFewPositionsChannels = 64;
constexpr std::int64_t kMinWinograd4x4Positions = 8192;
constexpr std::int64_t kMaxWinograd4x4Channels = 128;
constexpr std::int64_t kMaxWinograd4x4OverhangSevenths = 8;  // tiles' extent <= 8/7 of the plane's side
constexpr std::int64_t kMaxWinograd4x4Stride2Channels = 32;
constexpr std::int64_t kMinWinograd4x4Stride2DataPositions = 16384;
constexpr std::int64_t kMinWinograd2x2Stride2DataChannels = 32;

// Whether F(4x4, 3x3)'s tiles cover an output side of `size` with little overhang: rule 5's wide layers.
bool winograd_4x4_tiles_fit(std::int64_t size) {
  const std::int64_t covered = (size + 3) / 4 * 4;
  return covered * 7 <= size * kMaxWinograd4x4OverhangSevenths;
}

bool is_depthwise(const Conv2dGeometry& g) {
  return g.groups == g.in_channels && g.groups == g.out_channels &&
         g.kernel_h * g.kernel_w <= kMaxDepthwiseTaps;
}

// Rule 3's planes for UnrolledGemm (one group: unrolled_gemm::serves).
bool unrolled_takes(const Conv2dGeometry& g, CpuLevel level) {
  return level != CpuLevel::Reference && g.batch >= kMinUnrolledBatch &&
         g.in_height * g.in_width <= kMaxUnrolledPositions &&
         g.out_height() * g.out_width() <= kMaxUnrolledPositions && unrolled_gemm::serves(g) &&
         unrolled_gemm::density(g) >= kMinUnrolledDensity;
}

// Rule 3's small planes for TapGemm: at most 5x5 outputs (6x6 in the forward and backward-data of layers
// narrower than 512 channels), wide layers, a batch to fill the GEMMs' rows; an even plane at stride 1,
// which Winograd's tiles fit, only from 256 channels.
bool tap_gemm_takes(const Conv2dGeometry& g, Conv2dDirection direction, CpuLevel level) {
  const std::int64_t narrowest = std::min(g.in_channels, g.out_channels);
  const std::int64_t widest = std::max(g.in_channels, g.out_channels);
  const bool even_plane = g.out_height() % 2 == 0 && g.out_width() % 2 == 0;
  const bool stride_1 = g.stride_h == 1 && g.stride_w == 1;
  const bool weight = direction == Conv2dDirection::BackwardWeight;
  const std::int64_t largest_side =
      !weight && widest < kMaxTapGemmWidePlaneChannels ? kMaxTapGemmWideOutputSide : kMaxTapGemmOutputSide;
  return level != CpuLevel::Reference && tap_gemm::serves(g) && g.batch >= kMinTapGemmBatch &&
         std::max(g.out_height(), g.out_width()) <= largest_side &&
         narrowest >= (even_plane && stride_1 ? kMinTapGemmEvenPlaneChannels : kMinTapGemmChannels);
}

bool is_pointwise(const Conv2dGeometry& g) {
  return g.kernel_h == 1 && g.kernel_w == 1 && g.stride_h == 1 && g.stride_w == 1 && g.pad_h == 0 &&
         g.pad_w == 0;
}

// What both Winograds take (winograd_kernel.hpp): a 3x3 kernel at dilation 1, groups 1, stride 1 or 2 (the
// same both ways). Forward and backward-weight at any padding; backward-data at stride 1 where it is the
// forward through the flipped kernel (direct_backward_data_fits: pad <= 2), at stride 2 at padding 1
// (F2x2Stride2Data, F4x4Stride2Data).
bool winograd_takes(const Conv2dGeometry& g, Conv2dDirection direction) {
  const bool stride_1_or_2 = g.stride_h == g.stride_w && (g.stride_h == 1 || g.stride_h == 2);
  if (g.kernel_h != 3 || g.kernel_w != 3 || !stride_1_or_2 || g.dilation_h != 1 || g.dilation_w != 1 ||
      g.groups != 1)
    return false;
  if (direction != Conv2dDirection::BackwardData) return true;
  return g.stride_h == 1 ? direct_backward_data_fits(g) : g.pad_h == 1 && g.pad_w == 1;
}

}  // namespace

std::string_view conv2d_algorithm_name(Conv2dAlgorithm algorithm) {
  switch (algorithm) {
    case Conv2dAlgorithm::Reference:
      return "reference";
    case Conv2dAlgorithm::Im2colGemm:
      return "im2col_gemm";
    case Conv2dAlgorithm::Pointwise:
      return "pointwise";
    case Conv2dAlgorithm::Depthwise:
      return "depthwise";
    case Conv2dAlgorithm::Winograd2x2:
      return "winograd_2x2";
    case Conv2dAlgorithm::Winograd4x4:
      return "winograd_4x4";
    case Conv2dAlgorithm::Direct:
      return "direct";
    case Conv2dAlgorithm::DirectChannels:
      return "direct_channels";
    case Conv2dAlgorithm::DepthwiseChannels:
      return "depthwise_channels";
    case Conv2dAlgorithm::UnrolledGemm:
      return "unrolled_gemm";
    case Conv2dAlgorithm::TapGemm:
      return "tap_gemm";
  }
  return "unknown";
}

std::string_view conv2d_direction_name(Conv2dDirection direction) {
  switch (direction) {
    case Conv2dDirection::Forward:
      return "forward";
    case Conv2dDirection::BackwardData:
      return "backward_data";
    case Conv2dDirection::BackwardWeight:
      return "backward_weight";
  }
  return "unknown";
}

bool conv2d_algorithm_supports(Conv2dAlgorithm algorithm, const Conv2dGeometry& g, Conv2dDirection direction,
                               CpuLevel level) {
  switch (algorithm) {
    case Conv2dAlgorithm::Reference:
      return true;
    case Conv2dAlgorithm::Im2colGemm:
      return true;
    case Conv2dAlgorithm::Pointwise:
      return is_pointwise(g);
    case Conv2dAlgorithm::Depthwise:
    case Conv2dAlgorithm::DepthwiseChannels:
      return is_depthwise(g) && level != CpuLevel::Reference;
    case Conv2dAlgorithm::Winograd2x2:
    case Conv2dAlgorithm::Winograd4x4:
      return level != CpuLevel::Reference && winograd_takes(g, direction);
    case Conv2dAlgorithm::Direct:
      return level != CpuLevel::Reference &&
             (direction != Conv2dDirection::BackwardData || direct_backward_data_fits(g));
    case Conv2dAlgorithm::DirectChannels:
      return level != CpuLevel::Reference && direction != Conv2dDirection::BackwardWeight;
    case Conv2dAlgorithm::UnrolledGemm:
      return level != CpuLevel::Reference && unrolled_gemm::serves(g);
    case Conv2dAlgorithm::TapGemm:
      return level != CpuLevel::Reference && tap_gemm::serves(g);
  }
  return false;
}

bool conv2d_algorithm_takes_channels_last(Conv2dAlgorithm algorithm) {
  return algorithm == Conv2dAlgorithm::Reference || algorithm == Conv2dAlgorithm::Winograd2x2 ||
         algorithm == Conv2dAlgorithm::Winograd4x4 || algorithm == Conv2dAlgorithm::DepthwiseChannels ||
         algorithm == Conv2dAlgorithm::Pointwise || algorithm == Conv2dAlgorithm::TapGemm;
}

Conv2dAlgorithm choose_conv2d_algorithm(const Conv2dGeometry& g, Conv2dDirection direction, CpuLevel level) {
  if (level == CpuLevel::Reference) return Conv2dAlgorithm::Reference;
  if (conv2d_algorithm_supports(Conv2dAlgorithm::Depthwise, g, direction, level)) {  // rule 2
    const bool stride_1 = g.stride_h == 1 && g.stride_w == 1;
    // The pass's output planes: y's, or gx's for backward-data.
    const bool forward = direction == Conv2dDirection::Forward;
    const std::int64_t positions = forward ? g.out_height() * g.out_width() : g.in_height * g.in_width;
    const bool depthwise_pass = forward ? stride_1 || depthwise::rows_kernel_serves(g)
                                        : direction == Conv2dDirection::BackwardData &&
                                              (stride_1 || depthwise::upsampled_backward_data_by_rows(g));
    const bool long_rows = depthwise_pass && positions >= kMinDepthwisePlanePositions;
    // Channels-last activations take DepthwiseChannels for the long rows too (no conversion): its forward
    // and backward-data add the same products in the same order as Depthwise's, so the bits are the NCHW
    // bits.
    const bool channels = g.in_channels >= kMinDepthwiseChannelsChannels;
    return channels && (!long_rows || g.channels_last) ? Conv2dAlgorithm::DepthwiseChannels
                                                       : Conv2dAlgorithm::Depthwise;
  }
  if (is_pointwise(g)) return Conv2dAlgorithm::Pointwise;
  if (unrolled_takes(g, level)) return Conv2dAlgorithm::UnrolledGemm;  // rule 3
  if (tap_gemm_takes(g, direction, level)) return Conv2dAlgorithm::TapGemm;
  const std::int64_t cg = g.in_channels_per_group(), cog = g.out_channels_per_group();
  const std::int64_t positions = g.batch * g.out_height() * g.out_width();
  // Below kMinWinogradPositions, down to kMinWinogradFewPositions, with wide layers on both sides: F(2x2).
  const bool few_positions = positions < kMinWinogradPositions;
  const bool winograd = winograd_takes(g, direction) && std::min(cg, cog) >= kMinWinogradChannels &&
                        (!few_positions || (positions >= kMinWinogradFewPositions &&
                                            std::min(cg, cog) >= kMinWinogradFewPositionsChannels));
  const bool weight = direction == Conv2dDirection::BackwardWeight;
  if (winograd && g.stride_h == 2) {  // rule 5, stride 2
    // The weight gradient: Direct on NCHW tensors of up to 32 input channels; F(2x2, 3x3) for wider ones,
    // and on channels-last tensors, which Winograd reads as they lie and Direct would transpose first.
    if (weight) {
      const bool direct = !g.channels_last && cg <= kMaxDirectStride2WeightInputChannels;
      return direct ? Conv2dAlgorithm::Direct : Conv2dAlgorithm::Winograd2x2;
    }
    const bool forward = direction == Conv2dDirection::Forward;
    const std::int64_t large_tile_positions =
        forward ? kMinWinograd4x4Positions : kMinWinograd4x4Stride2DataPositions;
    if (positions >= large_tile_positions && std::max(cg, cog) <= kMaxWinograd4x4Stride2Channels)
      return Conv2dAlgorithm::Winograd4x4;
    if (forward || cg >= kMinWinograd2x2Stride2DataChannels) return Conv2dAlgorithm::Winograd2x2;
  }
  if (winograd && g.stride_h == 1) {  // rule 5
    // Past 128 channels, the forward and backward-data where the tiles fit the pass's output plane (y's, or
    // gx's), the weight gradient where they cover y's exactly.
    const bool narrow = std::max(cg, cog) <= kMaxWinograd4x4Channels;
    const bool data = direction == Conv2dDirection::BackwardData;
    const bool tiles_fit = winograd_4x4_tiles_fit(data ? g.in_height : g.out_height()) &&
                           winograd_4x4_tiles_fit(data ? g.in_width : g.out_width());
    const bool tiles_exact = g.out_height() % 4 == 0 && g.out_width() % 4 == 0;
    const bool large_tiles =
        !few_positions &&
        (weight ? (narrow || tiles_exact) && positions >= kMinWinograd4x4Positions : narrow || tiles_fit);
    if (large_tiles) return Conv2dAlgorithm::Winograd4x4;
    if (!weight || std::min(cg, cog) >= kMinWinogradWeightChannels) return Conv2dAlgorithm::Winograd2x2;
  }
  const bool few_input_channels = cg < kMinDirectChannels, few_output_channels = cog < kMinDirectChannels;
  const bool few_channels = few_input_channels || few_output_channels;
  const bool strided = g.stride_h > 1 || g.stride_w > 1;
  const bool windows_overlap =
      g.stride_h < g.dilation_h * (g.kernel_h - 1) + 1 || g.stride_w < g.dilation_w * (g.kernel_w - 1) + 1;
  if (!few_channels && direction == Conv2dDirection::BackwardData && strided && windows_overlap &&
      positions >= kMinDirectChannelsPositions)
    return Conv2dAlgorithm::DirectChannels;  // rule 6a
  const std::int64_t taps = g.kernel_h * g.kernel_w;
  const bool wide_kernel = taps >= kMinDirectWideKernelTaps;
  const bool deep_columns = taps > 1 && cg * taps >= kMinDirectChannelsStridedColumnDepth;
  if (direction == Conv2dDirection::Forward && strided && (wide_kernel || deep_columns) &&
      cog >= kMinDirectChannelsOutputChannels && positions >= kMinDirectChannelsPositions)
    return Conv2dAlgorithm::DirectChannels;  // rule 6c
  // Rule 7: the strided weight gradients left, on the stride-1 strip.
  if (weight && strided && taps > 1 && positions >= kMinDirectStridedWeightPositions)
    return Conv2dAlgorithm::Direct;
  // Strided, or padded past the strip: Direct does not take it.
  if (!direct_backward_data_fits(g)) return Conv2dAlgorithm::Im2colGemm;
  // Few channels (an RGB stem, LeNet's layers), rule 4: a kernel of 25 taps or more makes im2col's copy
  // cost more than Direct's part-empty tiles, in every pass; otherwise backward-data would compute mostly
  // empty tiles, and the weight gradient's tiles are output channels by taps, so few input channels only
  // shorten them.
  if (few_channels) {
    if (wide_kernel) return Conv2dAlgorithm::Direct;
    if (direction == Conv2dDirection::BackwardData || few_output_channels) return Conv2dAlgorithm::Im2colGemm;
    const bool direct = weight || cog >= kMinDirectStemOutputChannels;
    return direct && positions >= kMinDirectPositions ? Conv2dAlgorithm::Direct : Conv2dAlgorithm::Im2colGemm;
  }
  // The channels of the pass's own output: backward-data's output is the input gradient.
  const std::int64_t pass_output_channels = direction == Conv2dDirection::BackwardData ? cg : cog;
  if (direction != Conv2dDirection::BackwardWeight &&
      pass_output_channels >= kMinDirectChannelsOutputChannels && positions >= kMinDirectChannelsPositions) {
    return Conv2dAlgorithm::DirectChannels;  // rule 6b
  }
  return positions >= kMinDirectPositions ? Conv2dAlgorithm::Direct : Conv2dAlgorithm::Im2colGemm;
}

}  // namespace kiln::kernels
