// The transforms of Winograd's minimal filtering (Lavin & Gray, "Fast Algorithms for Convolutional Neural
// Networks", 2015) for a 3x3 kernel, one trait per tile size and stride: the algebra alone, which
// winograd_kernel.hpp runs over blocks of tiles, vectorized along the channels.
//
// Each 2x2 block of outputs, a tile, comes from the 4x4 input patch d under it:
//
//   Y = A^T [ sum over ci of (G g G^T) (.) (B^T d B) ] A          (.) elementwise, g = w[co, ci] (3x3)
//
//   B^T = [1  0 -1  0]    G = [1    0    0  ]    A^T = [1  1  1  0]
//         [0  1  1  0]        [1/2  1/2  1/2]          [0  1 -1 -1]
//         [0 -1  1  0]        [1/2 -1/2  1/2]
//         [0  1  0 -1]        [0    0    1  ]
//
// U = G g G^T depends on the weights alone and V = B^T d B on the input alone, so the sum over the input
// channels falls apart into 16 independent products, one per position p of the 4x4:
//
//   M_p[t][co] = sum over ci of V_p[t][ci] * U_p[ci][co]
//
// 16 multiplies make a tile's 4 outputs where the direct method takes 36: 2.25x fewer. The transforms are
// adds and subtracts, done once per patch and channel rather than once per output channel.
//
// F(4x4, 3x3) makes a 4x4 tile from the 6x6 patch under it with 36 multiplies where the direct method takes
// 144 (F4x4). At stride 2 the patch splits by phase (F2x2Stride2, F4x4Stride2: 25 multiplies per 2x2
// outputs, 81 per 4x4), and backward-data at stride 2 and padding 1 splits by the phase of the input
// gradient (F2x2Stride2Data, F4x4Stride2Data).
#pragma once

namespace kiln::kernels::winograd {

// The weight maps' thirds, sixths, twelfths and twenty-fourths, as multiplications by the reciprocals
// rounded to double: a divide of eight doubles takes about 16 cycles where a multiply takes one, and
// F(4x4, 3x3)'s weight maps hold 81 of them for eight kernels (128 -> 128 at 4x4, batch 128, two threads of a
// Xeon with AMX: forward 1.72 -> 1.63 ms). Each product is within a double's rounding of the quotient, and
// the transform rounds to float once: a result differs from the divided one only where the double lies
// within that rounding of a float's rounding boundary, about one value in 2^29. (Halves and quarters are
// exact either way, and the compiler multiplies for them.)
inline constexpr double kThird = 1.0 / 3, kSixth = 1.0 / 6, kTwelfth = 1.0 / 12, kTwentyFourth = 1.0 / 24;

// The tile sizes. Each gives the 1-D maps that the 2-D transforms apply along the columns, then the rows:
//   input   B^T x   patch -> alpha floats, on vectors (patch = alpha but for the Stride2Data traits)
//   output  A^T x   alpha -> m, on vectors
//   weight  G g     3 -> alpha, in double (once per call, then rounded once), on a double or on
//                                 winograd_kernel.hpp's Doubles (eight lanes of double)
// and, for the weight gradient, their transposes (not in the Stride2Data traits, which serve backward-data):
//   gradient  A x     m -> alpha, on vectors
//   unweight  G^T y   alpha -> 3, in double
// (Every type here is a template on the vector trait V so that the AVX-512 and AVX2 objects never share a
// compiled function.)
template <typename V>
struct F2x2 {
  using Reg = typename V::Reg;
  static constexpr int m = 2, alpha = 4, positions = alpha * alpha;
  static constexpr int patch = alpha, step = m;  // a patch's input rows, and the rows from one to the next

  static void input(const Reg (&x)[patch], Reg (&out)[alpha]) {
    out[0] = V::sub(x[0], x[2]);
    out[1] = V::add(x[1], x[2]);
    out[2] = V::sub(x[2], x[1]);
    out[3] = V::sub(x[1], x[3]);
  }
  static void output(const Reg (&x)[alpha], Reg (&out)[m]) {
    out[0] = V::add(V::add(x[0], x[1]), x[2]);
    out[1] = V::sub(V::sub(x[1], x[2]), x[3]);
  }
  template <typename D>
  static void weight(const D (&g)[3], D (&out)[alpha]) {
    out[0] = g[0];
    out[1] = 0.5 * (g[0] + g[1] + g[2]);
    out[2] = 0.5 * (g[0] - g[1] + g[2]);
    out[3] = g[2];
  }
  // The weight gradient's two maps, the transposes of output and weight: A x and G^T y.
  static void gradient(const Reg (&x)[m], Reg (&out)[alpha]) {
    out[0] = x[0];
    out[1] = V::add(x[0], x[1]);
    out[2] = V::sub(x[0], x[1]);
    out[3] = V::neg(x[1]);
  }
  template <typename D>
  static void unweight(const D (&y)[alpha], D (&out)[3]) {
    out[0] = y[0] + 0.5 * (y[1] + y[2]);
    out[1] = 0.5 * (y[1] - y[2]);
    out[2] = 0.5 * (y[1] + y[2]) + y[3];
  }
};

//   B^T = [4  0 -5  0  1  0]    G = [ 1/4     0     0  ]    A^T = [1  1  1  1  1  0]
//         [0 -4 -4  1  1  0]        [-1/6  -1/6  -1/6  ]          [0  1 -1  2 -2  0]
//         [0  4 -4 -1  1  0]        [-1/6   1/6  -1/6  ]          [0  1  1  4  4  0]
//         [0 -2 -1  2  1  0]        [ 1/24  1/12  1/6  ]          [0  1 -1  8 -8  1]
//         [0  2 -1 -2  1  0]        [ 1/24 -1/12  1/6  ]
//         [0  4  0 -5  0  1]        [ 0     0     1    ]
template <typename V>
struct F4x4 {
  using Reg = typename V::Reg;
  static constexpr int m = 4, alpha = 6, positions = alpha * alpha;
  static constexpr int patch = alpha, step = m;

  static void input(const Reg (&x)[patch], Reg (&out)[alpha]) {
    const Reg four = V::broadcast(4.0f), minus_four = V::broadcast(-4.0f), minus_five = V::broadcast(-5.0f);
    const Reg a = V::fmadd(minus_four, x[2], x[4]);  // x4 - 4 x2
    const Reg b = V::fmadd(minus_four, x[1], x[3]);  // x3 - 4 x1
    const Reg c = V::sub(x[4], x[2]);
    const Reg e = V::add(V::sub(x[3], x[1]), V::sub(x[3], x[1]));  // 2 (x3 - x1)
    out[0] = V::fmadd(four, x[0], V::fmadd(minus_five, x[2], x[4]));
    out[1] = V::add(a, b);
    out[2] = V::sub(a, b);
    out[3] = V::add(c, e);
    out[4] = V::sub(c, e);
    out[5] = V::fmadd(four, x[1], V::fmadd(minus_five, x[3], x[5]));
  }
  static void output(const Reg (&x)[alpha], Reg (&out)[m]) {
    const Reg sum12 = V::add(x[1], x[2]), difference12 = V::sub(x[1], x[2]);
    const Reg sum34 = V::add(x[3], x[4]), difference34 = V::sub(x[3], x[4]);
    out[0] = V::add(V::add(x[0], sum12), sum34);
    out[1] = V::fmadd(V::broadcast(2.0f), difference34, difference12);
    out[2] = V::fmadd(V::broadcast(4.0f), sum34, sum12);
    out[3] = V::add(V::fmadd(V::broadcast(8.0f), difference34, difference12), x[5]);
  }
  template <typename D>
  static void weight(const D (&g)[3], D (&out)[alpha]) {
    out[0] = g[0] / 4;
    out[1] = -(g[0] + g[1] + g[2]) * kSixth;
    out[2] = -(g[0] - g[1] + g[2]) * kSixth;
    out[3] = g[0] * kTwentyFourth + g[1] * kTwelfth + g[2] * kSixth;
    out[4] = g[0] * kTwentyFourth - g[1] * kTwelfth + g[2] * kSixth;
    out[5] = g[2];
  }
  static void gradient(const Reg (&x)[m], Reg (&out)[alpha]) {
    const Reg even = V::add(x[0], x[2]), odd = V::add(x[1], x[3]);
    // even4 = x0 + 4 x2, odd4 = x1 + 4 x3
    const Reg even4 = V::fmadd(V::broadcast(4.0f), x[2], x[0]),
              odd4 = V::fmadd(V::broadcast(4.0f), x[3], x[1]);
    out[0] = x[0];
    out[1] = V::add(even, odd);
    out[2] = V::sub(even, odd);
    out[3] = V::fmadd(V::broadcast(2.0f), odd4, even4);   // x0 + 2 x1 + 4 x2 + 8 x3
    out[4] = V::fmadd(V::broadcast(-2.0f), odd4, even4);  // x0 - 2 x1 + 4 x2 - 8 x3
    out[5] = x[3];
  }
  template <typename D>
  static void unweight(const D (&y)[alpha], D (&out)[3]) {
    out[0] = y[0] / 4 - (y[1] + y[2]) * kSixth + (y[3] + y[4]) * kTwentyFourth;
    out[1] = (y[2] - y[1]) * kSixth + (y[3] - y[4]) * kTwelfth;
    out[2] = (y[3] + y[4] - y[1] - y[2]) * kSixth + y[5];
  }
};

// F(2x2, 3x3) at stride 2, by phases. Output j of a tile reads patch elements 2j, 2j + 1 and 2j + 2 of a
// 5-wide patch (the next tile's patch starts 4 further on). Split the patch by parity: the even elements
// e = (d0, d2, d4) meet taps 0 and 2, the odd ones o = (d1, d3) tap 1 alone,
//
//   y_j = e_j g0 + e_{j+1} g2 + o_j g1
//
// The first part is a stride-1 correlation with a 2-tap kernel, F(2, 2): 3 multiplies for 2 outputs
// (M0 = (e0 - e1) g0, M1 = e1 (g0 + g2), M2 = (e2 - e1) g2; y0 = M0 + M1, y1 = M1 + M2); the second is 2
// plain products. So 5 multiplies in 1-D where the direct sum takes 6, 25 in 2-D where it takes 36, and
// every constant is 0 or +-1:
//
//   B^T = [1  0 -1  0  0]    G = [1  0  0]    A^T = [1  1  0  1  0]
//         [0  0  1  0  0]        [1  0  1]          [0  1  1  0  1]
//         [0  0 -1  0  1]        [0  0  1]
//         [0  1  0  0  0]        [0  1  0]
//         [0  0  0  1  0]        [0  1  0]
template <typename V>
struct F2x2Stride2 {
  using Reg = typename V::Reg;
  static constexpr int m = 2, alpha = 5, positions = alpha * alpha;
  static constexpr int patch = alpha, step = 2 * m;

  static void input(const Reg (&x)[patch], Reg (&out)[alpha]) {
    out[0] = V::sub(x[0], x[2]);
    out[1] = x[2];
    out[2] = V::sub(x[4], x[2]);
    out[3] = x[1];
    out[4] = x[3];
  }
  static void output(const Reg (&x)[alpha], Reg (&out)[m]) {
    out[0] = V::add(V::add(x[0], x[1]), x[3]);
    out[1] = V::add(V::add(x[1], x[2]), x[4]);
  }
  template <typename D>
  static void weight(const D (&g)[3], D (&out)[alpha]) {
    out[0] = g[0];
    out[1] = g[0] + g[2];
    out[2] = g[2];
    out[3] = g[1];
    out[4] = g[1];
  }
  static void gradient(const Reg (&x)[m], Reg (&out)[alpha]) {
    out[0] = x[0];
    out[1] = V::add(x[0], x[1]);
    out[2] = x[1];
    out[3] = x[0];
    out[4] = x[1];
  }
  template <typename D>
  static void unweight(const D (&y)[alpha], D (&out)[3]) {
    out[0] = y[0] + y[1];
    out[1] = y[3] + y[4];
    out[2] = y[1] + y[2];
  }
};

// F(4x4, 3x3) at stride 2, the same way with a 9-wide patch (the next tile's starts 8 further on): the even
// elements e = (d0, d2, ..., d8) under taps 0 and 2 are F(4, 2), 5 multiplies for 4 outputs (Toom-Cook at
// 0, 1, -1, 2 and infinity), and the odd ones o = (d1, d3, d5, d7) under tap 1 are 4 plain products: 9 in
// 1-D where the direct sum takes 12, 81 for a 4x4 tile in 2-D where it takes 144. On the even part
// (the odd part is the identity, as above):
//
//   B^T = [2 -1 -2  1  0]    G = [ 1/2    0  ]    A^T = [1  1  1  1  0]
//         [0 -2 -1  1  0]        [-1/2  -1/2 ]          [0  1 -1  2  0]
//         [0  2 -3  1  0]        [-1/6   1/6 ]          [0  1  1  4  0]
//         [0 -1  0  1  0]        [ 1/6   1/3 ]          [0  1 -1  8  1]
//         [0  2 -1 -2  1]        [ 0     1   ]
template <typename V>
struct F4x4Stride2 {
  using Reg = typename V::Reg;
  static constexpr int m = 4, alpha = 9, positions = alpha * alpha;
  static constexpr int patch = alpha, step = 2 * m;

  static void input(const Reg (&x)[patch], Reg (&out)[alpha]) {
    const Reg two = V::broadcast(2.0f), minus_two = V::broadcast(-2.0f);
    const Reg e0 = x[0], e1 = x[2], e2 = x[4], e3 = x[6], e4 = x[8];
    const Reg d31 = V::sub(e3, e1);
    out[0] = V::fmadd(two, V::sub(e0, e2), d31);                        // 2 e0 - e1 - 2 e2 + e3
    out[1] = V::fmadd(minus_two, e1, V::sub(e3, e2));                   // -2 e1 - e2 + e3
    out[2] = V::fmadd(two, e1, V::fmadd(V::broadcast(-3.0f), e2, e3));  // 2 e1 - 3 e2 + e3
    out[3] = d31;                                                       // e3 - e1
    out[4] = V::fmadd(minus_two, d31, V::sub(e4, e2));                  // 2 e1 - e2 - 2 e3 + e4
    out[5] = x[1];
    out[6] = x[3];
    out[7] = x[5];
    out[8] = x[7];
  }
  static void output(const Reg (&x)[alpha], Reg (&out)[m]) {
    const Reg sum12 = V::add(x[1], x[2]), difference12 = V::sub(x[1], x[2]);
    out[0] = V::add(V::add(x[0], sum12), V::add(x[3], x[5]));
    out[1] = V::add(V::fmadd(V::broadcast(2.0f), x[3], difference12), x[6]);
    out[2] = V::add(V::fmadd(V::broadcast(4.0f), x[3], sum12), x[7]);
    out[3] = V::add(V::fmadd(V::broadcast(8.0f), x[3], difference12), V::add(x[4], x[8]));
  }
  template <typename D>
  static void weight(const D (&g)[3], D (&out)[alpha]) {
    out[0] = g[0] / 2;
    out[1] = -(g[0] + g[2]) / 2;
    out[2] = (g[2] - g[0]) * kSixth;
    out[3] = g[0] * kSixth + g[2] * kThird;
    out[4] = g[2];
    for (int j = 5; j < alpha; ++j) out[j] = g[1];
  }
  static void gradient(const Reg (&x)[m], Reg (&out)[alpha]) {
    // A's rows for the points 0, 1, -1 and 2 are F(4x4, 3x3)'s first four.
    Reg stride1[F4x4<V>::alpha];
    F4x4<V>::gradient(x, stride1);
    for (int j = 0; j < 4; ++j) out[j] = stride1[j];
    out[4] = x[3];
    for (int j = 0; j < m; ++j) out[5 + j] = x[j];
  }
  template <typename D>
  static void unweight(const D (&y)[alpha], D (&out)[3]) {
    out[0] = (y[0] - y[1]) / 2 + (y[3] - y[2]) * kSixth;
    out[1] = y[5] + y[6] + y[7] + y[8];
    out[2] = y[2] * kSixth + y[3] * kThird - y[1] / 2 + y[4];
  }
};

// Backward-data at stride 2 and padding 1, the transposed convolution, split by the phase of gx rather than
// of the patch: gx[2i] = gy[i] w1 and gx[2i + 1] = gy[i] w2 + gy[i + 1] w0 (along each axis). With the
// kernel flipped (g = (w2, w1, w0), direct::flipped_weights) and each row of gy read twice, d[2i] = d[2i + 1]
// = gy[i], that is the stride-2 forward's two parts, e_j g0 + e_{j+1} g2 (F(k, 2)) and o_j g1, kept apart
// rather than added: the first makes the odd gx, the second the even. So the input and weight maps are the
// forward's, on a patch of k + 1 rows of gy spread to 2k + 1, and a tile is m = 2k gx outputs, interleaved
// even, odd, even, ...; the next tile's gy rows start k further on. winograd::forward runs it over gy
// (backward_data in winograd_kernel.hpp).
template <typename V>
struct F2x2Stride2Data {
  using Reg = typename V::Reg;
  static constexpr int m = 4, alpha = 5, positions = alpha * alpha;
  static constexpr int patch = 3, step = 2;

  static void input(const Reg (&x)[patch], Reg (&out)[alpha]) {
    const Reg spread[F2x2Stride2<V>::patch] = {x[0], x[0], x[1], x[1], x[2]};
    F2x2Stride2<V>::input(spread, out);
  }
  static void output(const Reg (&x)[alpha], Reg (&out)[m]) {
    out[0] = x[3];
    out[1] = V::add(x[0], x[1]);
    out[2] = x[4];
    out[3] = V::add(x[1], x[2]);
  }
  template <typename D>
  static void weight(const D (&g)[3], D (&out)[alpha]) {
    F2x2Stride2<V>::weight(g, out);
  }
};

// The same with F(4, 2): 8 gx outputs a tile from 5 rows of gy, 81 multiplies for 64 outputs where the
// direct sum takes 144 (a gx output has 1, 2, 2 or 4 taps).
template <typename V>
struct F4x4Stride2Data {
  using Reg = typename V::Reg;
  static constexpr int m = 8, alpha = 9, positions = alpha * alpha;
  static constexpr int patch = 5, step = 4;

  static void input(const Reg (&x)[patch], Reg (&out)[alpha]) {
    const Reg spread[F4x4Stride2<V>::patch] = {x[0], x[0], x[1], x[1], x[2], x[2], x[3], x[3], x[4]};
    F4x4Stride2<V>::input(spread, out);
  }
  static void output(const Reg (&x)[alpha], Reg (&out)[m]) {
    const Reg sum12 = V::add(x[1], x[2]), difference12 = V::sub(x[1], x[2]);
    out[0] = x[5];
    out[1] = V::add(V::add(x[0], sum12), x[3]);
    out[2] = x[6];
    out[3] = V::fmadd(V::broadcast(2.0f), x[3], difference12);
    out[4] = x[7];
    out[5] = V::fmadd(V::broadcast(4.0f), x[3], sum12);
    out[6] = x[8];
    out[7] = V::add(V::fmadd(V::broadcast(8.0f), x[3], difference12), x[4]);
  }
  template <typename D>
  static void weight(const D (&g)[3], D (&out)[alpha]) {
    F4x4Stride2<V>::weight(g, out);
  }
};

}  // namespace kiln::kernels::winograd
