// Convolutions on planes of a few pixels as one GEMM over the batch, with the kernel unrolled.
//
// On a 2x2 plane (ResNet-18's last stage on 64x64 images and its third on 32x32, VGG's last block on 32x32)
// a padded 3x3 kernel reads every input pixel from every output pixel, each pair through its own tap, and
// nothing else: the convolution is a dense map from an image's whole input, IP = H*W positions of C_in
// channels, to its whole output, OP = OH*OW positions of C_out. Unrolled into the matrix
//
//   U [C_out*OP, C_in*IP],  U[(co, o), (ci, i)] = w[co, ci, kh, kw]  for the tap (kh, kw) by which output
//                                                                    o reads input i; 0 where none does
//
// (rows and columns ordered as an NCHW image lies, (c, p) at c*P + p, so the batch is a GEMM operand as it
// stands, X [N, C_in*IP], Y [N, C_out*OP]):
//
//   forward          Y [N, C_out*OP]  = X [N, C_in*IP] U^T   (+ bias)
//   backward-data    GX [N, C_in*IP]  = GY [N, C_out*OP] U
//   backward-weight  GU [C_out*OP, C_in*IP] = GY^T X,  then gw[co, ci, tap] = the sum of GU over the tap's
//                    (o, i) pairs, o in order
//
// Winograd F(2x2, 3x3) turns such a plane into one tile of 16 positions for 4 outputs, and the AMX tiles
// multiply a 4x4 phase grid for them: both pay 4x the work; here every multiply-add is one the convolution
// has (where the kernel reaches every pair: U dense). 512 -> 512 at 2x2, batch 128, 2 threads of a Xeon, ms,
// forward / backward-data / weight gradient: F(2x2, 3x3) 8.6 / 12.3 / 9.7, bfloat16 on AMX 14.0 / 13.4 /
// 13.4, this way 5.4 / 5.4 / 5.7 (float; bfloat16 widened to it 4.9 / 4.7 / 5.0).
//
// algorithm.cpp (rule 3) gives it planes of at most 4 positions, from a batch of 16, whose U is at least half
// full; U is built for every call (the weights change every step), kMaxUnrolledFloats at most. Channels-last
// tensors run behind dispatch.cpp's conversion to NCHW (a 2x2 plane's batch is a few hundred KiB): taken as
// they lie, their products would be summed in another order, (p, c) for (c, p), and the bits would not be the
// NCHW bits.
#include <algorithm>
#include <cstdint>
#include <vector>

#include "kernels/conv2d/conv2d.hpp"
#include "kernels/conv2d/im2col.hpp"  // im2col_valid_outputs
#include "kernels/cpu_scratch.hpp"
#include "kernels/gemm/gemm.hpp"

namespace kiln::kernels::unrolled_gemm {
namespace {

// Positions of one image's plane, input and output, and where (channel, position) sits in it.
struct Planes {
  std::int64_t in_positions, out_positions, in_floats, out_floats;

  explicit Planes(const Conv2dGeometry& g)
      : in_positions(g.in_height * g.in_width),
        out_positions(g.out_height() * g.out_width()),
        in_floats(g.in_channels * in_positions),
        out_floats(g.out_channels * out_positions) {}
  std::int64_t in_index(std::int64_t c, std::int64_t p) const { return c * in_positions + p; }
  std::int64_t out_index(std::int64_t c, std::int64_t p) const { return c * out_positions + p; }
};

// (output position, input position, tap) for every pair the kernel joins: tap by tap in kernel order, each
// tap's outputs in order, over the output rows and columns im2col's ranges say the tap reaches.
struct Pair {
  std::int64_t out, in, tap;
};
std::vector<Pair> pairs_of(const Conv2dGeometry& g) {
  std::vector<Pair> pairs;
  for (std::int64_t kh = 0; kh < g.kernel_h; ++kh) {
    const std::int64_t row_offset = kh * g.dilation_h - g.pad_h;
    const Im2colRange rows = im2col_valid_outputs(row_offset, g.stride_h, g.in_height, g.out_height());
    for (std::int64_t kw = 0; kw < g.kernel_w; ++kw) {
      const std::int64_t column_offset = kw * g.dilation_w - g.pad_w;
      const Im2colRange columns = im2col_valid_outputs(column_offset, g.stride_w, g.in_width, g.out_width());
      for (std::int64_t oh = rows.begin; oh < rows.end; ++oh) {
        for (std::int64_t ow = columns.begin; ow < columns.end; ++ow)
          pairs.push_back({oh * g.out_width() + ow,
                           (oh * g.stride_h + row_offset) * g.in_width + ow * g.stride_w + column_offset,
                           kh * g.kernel_w + kw});
      }
    }
  }
  return pairs;
}

// body(u_entry, w_entry) for each entry of U a tap fills and the weight it holds, w [C_out, C_in, KH*KW]:
// U's rows of each co on one thread (its rows and its weights its own), each co's pairs in order.
template <typename UFloat, typename WFloat, typename Body>
void for_each_tap_entry(const Conv2dGeometry& g, const Planes& planes, const std::vector<Pair>& pairs,
                        UFloat* u, WFloat* w, Body body) {
  const std::int64_t taps = g.kernel_h * g.kernel_w;
#pragma omp parallel for schedule(static) if (planes.out_floats * planes.in_floats >= (std::int64_t{1} << 18))
  for (std::int64_t co = 0; co < g.out_channels; ++co) {
    for (const Pair& pair : pairs) {
      UFloat* row = u + planes.out_index(co, pair.out) * planes.in_floats;
      WFloat* taps_of_co = w + co * g.in_channels * taps + pair.tap;
      for (std::int64_t ci = 0; ci < g.in_channels; ++ci)
        body(row[planes.in_index(ci, pair.in)], taps_of_co[ci * taps]);
    }
  }
}

// u = U for w: zeros where no tap reaches, the pairs' taps elsewhere.
void unroll(const Conv2dGeometry& g, const Planes& planes, const std::vector<Pair>& pairs, const float* w,
            float* u) {
  if (static_cast<std::int64_t>(pairs.size()) < planes.in_positions * planes.out_positions)
    std::fill(u, u + planes.out_floats * planes.in_floats, 0.0f);
  for_each_tap_entry(g, planes, pairs, u, w, [](float& entry, const float& weight) { entry = weight; });
}

}  // namespace

bool serves(const Conv2dGeometry& g) {
  const Planes planes(g);
  return g.groups == 1 && planes.out_floats * planes.in_floats <= kMaxUnrolledFloats;
}

double density(const Conv2dGeometry& g) {
  const Planes planes(g);
  return static_cast<double>(pairs_of(g).size()) /
         static_cast<double>(std::max<std::int64_t>(1, planes.in_positions * planes.out_positions));
}

void conv2d_forward(const Conv2dGeometry& g, const float* x, const float* w, const float* bias, float* y) {
  const Planes planes(g);
  const CpuScratch u = cpu_scratch(planes.out_floats * planes.in_floats);
  unroll(g, planes, pairs_of(g), w, u.get());
  // y [N, out] = x [N, in] . U^T, U stored [out, in].
  const GemmGeometry product{.m = g.batch,
                             .n = planes.out_floats,
                             .k = planes.in_floats,
                             .trans_b = true,
                             .lda = planes.in_floats,
                             .ldb = planes.in_floats,
                             .ldc = planes.out_floats};
  gemm<float>(Device::cpu(), product, 1.0f, x, u.get(), 0.0f, y);
  if (!bias) return;
  for (std::int64_t n = 0; n < g.batch; ++n) {
    float* image = y + n * planes.out_floats;
    for (std::int64_t co = 0; co < g.out_channels; ++co) {
      for (std::int64_t o = 0; o < planes.out_positions; ++o) image[planes.out_index(co, o)] += bias[co];
    }
  }
}

void conv2d_backward_data(const Conv2dGeometry& g, const float* gy, const float* w, float* gx) {
  const Planes planes(g);
  const CpuScratch u = cpu_scratch(planes.out_floats * planes.in_floats);
  unroll(g, planes, pairs_of(g), w, u.get());
  // gx [N, in] = gy [N, out] . U.
  const GemmGeometry product{.m = g.batch,
                             .n = planes.in_floats,
                             .k = planes.out_floats,
                             .lda = planes.out_floats,
                             .ldb = planes.in_floats,
                             .ldc = planes.in_floats};
  gemm<float>(Device::cpu(), product, 1.0f, gy, u.get(), 0.0f, gx);
}

void conv2d_backward_weight(const Conv2dGeometry& g, const float* gy, const float* x, float* gw) {
  const Planes planes(g);
  const CpuScratch gu = cpu_scratch(planes.out_floats * planes.in_floats);
  // GU [out, in] = gy^T [out, N] . x [N, in].
  const GemmGeometry product{.m = planes.out_floats,
                             .n = planes.in_floats,
                             .k = g.batch,
                             .trans_a = true,
                             .lda = planes.out_floats,
                             .ldb = planes.in_floats,
                             .ldc = planes.in_floats};
  gemm<float>(Device::cpu(), product, 1.0f, gy, x, 0.0f, gu.get());
  // Fold GU's pairs back onto the taps: a tap's pairs added in output order (a 2x2 plane's taps have 1 to 4).
  std::fill(gw, gw + g.out_channels * g.in_channels * g.kernel_h * g.kernel_w, 0.0f);
  for_each_tap_entry(g, planes, pairs_of(g), static_cast<const float*>(gu.get()), gw,
                     [](const float& entry, float& gradient) { gradient += entry; });
}

}  // namespace kiln::kernels::unrolled_gemm
