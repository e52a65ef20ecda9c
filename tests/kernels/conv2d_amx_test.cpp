// The AMX bfloat16 convolutions (kernels/conv2d/amx_bf16_conv.hpp) against the float reference, on
// channels-last activations, over odd shapes: output widths that are not a multiple of the 16-position tile
// (and narrower than one), small planes at batches of 16 and more (whose tile rows go across images),
// stride 2, padding 0 to 3, dilation 2, 1x1 and 5x5 filters, batch 1, channel counts that take the 16- and
// the 32-channel tile steps or are padded to 16 (the 3-channel stem, 20), with and without a bias; backward
// data over every kind of stride phase; the weight gradient over several chunks of images and across images,
// on 1 and 2 threads alike.
//
// The values are multiples of 1/8 (inputs) and 1/16 (weights) small enough that every product and every
// partial sum is exact in float, whatever the order: AMX's sums of pairs and the reference's double sums then
// hold the same exact value, so its one rounding to bfloat16 must agree bit for bit. (With general values the
// orders would differ in float rounding; the exactness is what makes the comparison strict.)
//
// Where this process may not use AMX (no AMX on the CPU, or the kernel refuses the permission), the cases
// skip, saying so.
#include <doctest/doctest.h>

#include <cstdint>
#include <cstring>
#include <iterator>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "core/bfloat16.hpp"
#include "core/device.hpp"
#include "kernels/amx/amx.hpp"
#include "kernels/conv2d/amx_bf16_conv.hpp"
#include "kernels/conv2d/conv2d.hpp"
#include "kernels/cpu_level.hpp"
#include "kernels/parallel.hpp"
#include "tests/support/bfloat16_testing.hpp"
#include "tests/support/conv2d_ladder_cases.hpp"
#include "tests/support/fast_kernel_testing.hpp"

namespace kernels_conv2d_amx_test {

namespace {

using namespace kiln;
namespace kk = kiln::kernels;
using testing::converted;

bool amx_here() {
  if (kk::amx_bf16_usable()) return true;
  MESSAGE("skipping: this process may not use AMX bfloat16 tiles (CPU, operating system or KILN_AMX=0)");
  return false;
}

// count values k / divisor for k in [-span, span], spread by a hash of the index.
std::vector<float> exact_values(std::int64_t count, std::uint32_t seed, int span, float divisor) {
  std::vector<float> values;
  for (std::int64_t i = 0; i < count; ++i) {
    const std::uint32_t hash = (static_cast<std::uint32_t>(i) + seed) * 2654435761u >> 7;
    values.push_back(static_cast<float>(static_cast<int>(hash % (2 * span + 1)) - span) / divisor);
  }
  return values;
}
// "" when actual holds expected's values each rounded once to bfloat16, bit for bit.
std::string difference(const std::vector<bfloat16>& actual, const std::vector<float>& expected) {
  return testing::bfloat16_difference(actual, converted<bfloat16>(expected), 0);
}

// The case, for the failure message.
std::string describe(const kk::Conv2dGeometry& g) {
  std::ostringstream out;
  out << "C " << g.in_channels << " -> K " << g.out_channels << ", " << g.in_height << "x" << g.in_width
      << ", kernel " << g.kernel_h << " stride " << g.stride_h << " pad " << g.pad_h << " dilation "
      << g.dilation_h << ", batch " << g.batch << (g.channels_last ? "" : ", NCHW");
  return out.str();
}

// tests/support's convolution(), channels-last.
kk::Conv2dGeometry geometry(std::int64_t n, std::int64_t c, std::int64_t k, std::int64_t h, std::int64_t w,
                            std::int64_t kernel, std::int64_t stride, std::int64_t pad,
                            std::int64_t dilation) {
  kk::Conv2dGeometry g = testing::convolution(n, c, h, w, k, kernel, kernel, stride, pad, dilation);
  g.channels_last = true;
  return g;
}

const kk::Conv2dGeometry kCases[] = {
    geometry(2, 16, 16, 8, 8, 3, 1, 1, 1),    // the ResNet-20 stage-1 shape, small
    geometry(1, 32, 48, 7, 13, 3, 1, 1, 1),   // batch 1; 13 columns: one partial tile row; 32-channel steps
    geometry(3, 64, 16, 9, 20, 3, 2, 1, 1),   // stride 2: 10 output columns
    geometry(2, 16, 32, 6, 17, 1, 1, 0, 1),   // 1x1: 17 columns, a full tile row and one more
    geometry(1, 48, 16, 11, 11, 5, 1, 2, 1),  // 5x5, pad 2; 48 channels: three 16-channel steps
    geometry(2, 16, 16, 10, 10, 3, 1, 2, 2),  // dilation 2
    geometry(1, 16, 64, 5, 40, 3, 1, 0, 1),   // no padding; 38 columns: two full tile rows and a part
    geometry(2, 3, 16, 9, 18, 3, 1, 1, 1),    // the RGB stem: 3 channels padded to a tile's 16 with zeros
    geometry(1, 20, 16, 6, 7, 3, 2, 1, 1),    // 20 channels: one full 16-channel step and one padded
    // Nothing to pad: the tiles read the input where it lies (forward, and backward data's gy at 1x1).
    geometry(2, 32, 16, 4, 4, 1, 1, 0, 1),   // 1x1 over 32 positions, two whole tile rows
    geometry(1, 16, 16, 4, 18, 3, 1, 0, 1),  // 3x3 without padding: the last tile row reads the last element
};

// Planes of at most 8 columns at batches of 16 or more: the tiles' rows go across images
// (amx_bf16_conv.hpp's tile_rows_across_images), the taps outside the input skipped. Batches that are not
// a multiple of 16 (the last group overlaps the one before), planes down to 1x1 (one tap of nine reaches
// the input), channels padded to 16 (read from the padded copy, the others in place), stride 2, dilation 2,
// and padding wide enough that some outputs have no tap at all (the bias alone).
const kk::Conv2dGeometry kAcrossImagesCases[] = {
    geometry(16, 32, 32, 2, 2, 3, 1, 1, 1),  // ResNet-18's 2x2 stage, small: each output 4 taps of 9
    geometry(20, 16, 16, 4, 4, 3, 1, 1, 1),  // one block of output channels (four groups a pass); batch 20
    geometry(37, 48, 32, 1, 1, 3, 1, 1, 1),  // a 1x1 plane: the centre tap alone; three groups, overlapping
    geometry(18, 3, 16, 5, 5, 3, 1, 1, 1),   // the RGB stem: the padded copy, its zeros' taps skipped
    geometry(16, 16, 32, 7, 6, 3, 2, 1, 1),  // stride 2: 4x3 outputs, backward data's four phases
    geometry(17, 16, 16, 6, 6, 3, 1, 2, 2),  // dilation 2
    geometry(16, 16, 16, 3, 4, 3, 1, 3, 1),  // padding 3: the corner outputs reach no input
    geometry(16, 32, 64, 4, 4, 1, 2, 0, 1),  // a 1x1 projection at stride 2
    geometry(16, 16, 64, 3, 3, 3, 1, 1, 1),  // one block of input channels by four of output channels
    geometry(17, 64, 16, 2, 5, 3, 1, 1, 1),  // four blocks of input channels by one of output channels
};

// Few input channels: the reduction along a kernel row's window, kernel_w x C values (amx_bf16_conv.hpp's
// window_rows_serve). Runs of 9 (one 16-value step), 21, 24 and 25 (32: two column blocks in the weight
// gradient), one to three blocks of output channels, borders on both sides of a plane narrower than the
// kernel, output rows that end in a partial tile row, positions not a multiple of 32, dilation and stride
// down the rows only, several chunks of images, and a NaN in the input.
std::vector<kk::Conv2dGeometry> window_rows_cases() {
  std::vector<kk::Conv2dGeometry> cases = {
      geometry(9, 3, 16, 9, 18, 3, 1, 1, 1),   // the RGB 3x3 stem, batch 9: three chunks of images
      geometry(3, 3, 32, 12, 11, 7, 2, 3, 1),  // ResNet-18's 7x7 stride-2 stem, odd sizes
      geometry(1, 8, 16, 5, 7, 3, 1, 1, 1),    // 8 channels: a run of 24
      geometry(2, 5, 48, 9, 9, 5, 2, 2, 1),    // 5x5 of 5 channels: 25; three blocks of output channels
      geometry(1, 3, 16, 3, 2, 7, 1, 3, 1),    // a plane narrower than the kernel: both borders at once
      geometry(2, 1, 16, 6, 40, 3, 1, 0, 1),   // one channel, no padding; 38 columns
  };
  kk::Conv2dGeometry rows_apart = geometry(2, 3, 16, 10, 9, 3, 1, 2, 1);
  rows_apart.dilation_h = 2;  // dilation down the rows: the window's columns still adjacent
  rows_apart.stride_h = 2;
  cases.push_back(rows_apart);
  return cases;
}

TEST_CASE("amx bfloat16 conv2d, few input channels: forward and weight gradient along the window's rows") {
  if (!amx_here()) return;
  const testing::DispatchGuard guard;  // restores the thread count
  for (const kk::Conv2dGeometry& g : window_rows_cases()) {
    INFO(describe(g));
    REQUIRE(kk::amx::window_rows_serve(g));
    // One NaN in x: it reaches the outputs (and weight-gradient taps) whose windows hold it, and no other,
    // though the runs it lies beside share its tile rows.
    std::vector<float> x = exact_values(g.batch * g.in_channels * g.in_height * g.in_width, 10, 16, 8.0f);
    x[x.size() / 2] = std::numeric_limits<float>::quiet_NaN();
    const std::vector<float> w =
        exact_values(g.out_channels * g.in_channels * g.kernel_h * g.kernel_w, 11, 16, 16.0f);
    const std::vector<float> bias = exact_values(g.out_channels, 12, 8, 4.0f);
    const std::vector<float> gy =
        exact_values(g.batch * g.out_channels * g.out_height() * g.out_width(), 13, 8, 8.0f);
    std::vector<float> y(gy.size()), gw(w.size());
    kk::reference::conv2d_forward<float>(g, x.data(), w.data(), bias.data(), y.data());
    kk::reference::conv2d_backward_weight<float>(g, gy.data(), x.data(), gw.data());
    for (const int threads : {1, 2}) {
      INFO(threads << " threads");
      kk::set_compute_threads(threads);
      std::vector<bfloat16> y16(y.size(), bfloat16(-777.0f)), gw16(w.size(), bfloat16(-777.0f));
      kk::amx::conv2d_forward_bf16(g, converted<bfloat16>(x).data(), converted<bfloat16>(w).data(),
                                   converted<bfloat16>(bias).data(), y16.data());
      kk::amx::conv2d_backward_weight_bf16(g, converted<bfloat16>(gy).data(), converted<bfloat16>(x).data(),
                                           gw16.data());
      CHECK(difference(y16, y) == "");
      CHECK(difference(gw16, gw) == "");
    }
  }
  kk::Conv2dGeometry g = geometry(1, 16, 16, 8, 8, 3, 1, 1, 1);  // 16 channels fill the tiles' own steps
  CHECK_FALSE(kk::amx::window_rows_serve(g));
  g = geometry(1, 5, 16, 8, 8, 7, 1, 3, 1);  // a run of 35: past a 64-byte tile row
  CHECK_FALSE(kk::amx::window_rows_serve(g));
  g = geometry(1, 3, 16, 8, 8, 3, 1, 2, 2);  // dilated along the rows: the window's columns apart
  CHECK_FALSE(kk::amx::window_rows_serve(g));
}

TEST_CASE("amx bfloat16 conv2d: small planes at batches of 16 or more take their tile rows across images") {
  for (const kk::Conv2dGeometry& g : kAcrossImagesCases) {
    INFO(describe(g));
    CHECK(kk::amx::tile_rows_across_images(g.batch, g.out_width()));
  }
  CHECK_FALSE(kk::amx::tile_rows_across_images(15, 4));    // a batch short of a tile
  CHECK_FALSE(kk::amx::tile_rows_across_images(128, 16));  // a plane that fills the rows along it
}

TEST_CASE("amx bfloat16 conv2d forward: the exact sums rounded once, bit for bit, with and without a bias") {
  if (!amx_here()) return;
  std::vector<kk::Conv2dGeometry> cases(std::begin(kCases), std::end(kCases));
  cases.insert(cases.end(), std::begin(kAcrossImagesCases), std::end(kAcrossImagesCases));
  for (const kk::Conv2dGeometry& g : cases) {
    INFO(describe(g));
    REQUIRE(kk::amx::conv2d_forward_bf16_serves(g));
    // A NaN in the last input column of the last image: it reaches only the outputs whose windows hold it,
    // whether tile rows run along rows past the output's edge (their extra positions dropped) or across
    // images (a tap outside the input skipped).
    std::vector<float> x = exact_values(g.batch * g.in_channels * g.in_height * g.in_width, 1, 16, 8.0f);
    x[x.size() - 1] = std::numeric_limits<float>::quiet_NaN();
    const std::vector<float> w =
        exact_values(g.out_channels * g.in_channels * g.kernel_h * g.kernel_w, 2, 16, 16.0f);
    const std::vector<float> bias = exact_values(g.out_channels, 3, 8, 4.0f);
    const std::int64_t outputs = g.batch * g.out_channels * g.out_height() * g.out_width();
    for (const bool with_bias : {false, true}) {
      INFO((with_bias ? "with a bias" : "no bias"));
      std::vector<float> expected(static_cast<std::size_t>(outputs));
      kk::reference::conv2d_forward<float>(g, x.data(), w.data(), with_bias ? bias.data() : nullptr,
                                           expected.data());
      std::vector<bfloat16> y(static_cast<std::size_t>(outputs), bfloat16(-777.0f));
      const std::vector<bfloat16> b16 = converted<bfloat16>(bias);
      kk::amx::conv2d_forward_bf16(g, converted<bfloat16>(x).data(), converted<bfloat16>(w).data(),
                                   with_bias ? b16.data() : nullptr, y.data());
      CHECK(difference(y, expected) == "");
    }
  }
}

// Across images, passes go by sets of output-channel blocks whose packed filter fits half of L2
// (amx_bf16_conv.cpp's blocks_in_l2): one set for these small filters, several under a 4 KiB L2, where
// every set is a pair of blocks (64 output channels: two sets). The forward and backward data hold the
// exact sums either way.
TEST_CASE("amx bfloat16 conv2d across images: the filter's blocks in sets that fit L2, bit for bit") {
  if (!amx_here()) return;
  const testing::L2SizeGuard small_l2(4 << 10);
  int cases = 0;
  for (const kk::Conv2dGeometry& g : kAcrossImagesCases) {
    if (g.out_channels < 64) continue;  // fewer than two sets of two blocks
    ++cases;
    INFO(describe(g));
    const std::vector<float> x =
        exact_values(g.batch * g.in_channels * g.in_height * g.in_width, 6, 16, 8.0f);
    const std::vector<float> gy =
        exact_values(g.batch * g.out_channels * g.out_height() * g.out_width(), 7, 16, 8.0f);
    const std::vector<float> w =
        exact_values(g.out_channels * g.in_channels * g.kernel_h * g.kernel_w, 8, 16, 16.0f);
    std::vector<float> y_expected(gy.size()), gx_expected(x.size());
    kk::reference::conv2d_forward<float>(g, x.data(), w.data(), nullptr, y_expected.data());
    kk::reference::conv2d_backward_data<float>(g, gy.data(), w.data(), gx_expected.data());
    std::vector<bfloat16> y(gy.size(), bfloat16(-777.0f)), gx(x.size(), bfloat16(-777.0f));
    kk::amx::conv2d_forward_bf16(g, converted<bfloat16>(x).data(), converted<bfloat16>(w).data(), nullptr,
                                 y.data());
    CHECK(difference(y, y_expected) == "");
    if (!kk::amx::conv2d_backward_data_bf16_serves(g)) continue;
    kk::amx::conv2d_backward_data_bf16(g, converted<bfloat16>(gy).data(), converted<bfloat16>(w).data(),
                                       gx.data());
    CHECK(difference(gx, gx_expected) == "");
  }
  CHECK(cases == 2);
}

// Backward data's stride phases (amx_bf16_conv.cpp): strides 2 and 3 with odd sizes, where phases hold
// different counts of positions and taps; 1x1 at stride 2 and stride 2 at dilation 2, where some phases no
// tap reaches (zero); 5x5 at stride 2; padding 0, and padding beyond the filter's reach; gy's channels not a
// multiple of 16 (24, padded).
const kk::Conv2dGeometry kStrideCases[] = {
    geometry(2, 16, 32, 9, 9, 3, 2, 1, 1),    // ResNet's downsampling, odd size: phases of 5 and 4 rows
    geometry(1, 32, 16, 8, 8, 1, 2, 0, 1),    // 1x1, stride 2: three phases of four are zero
    geometry(2, 16, 16, 11, 13, 5, 2, 2, 1),  // 5x5, stride 2: phases of 3 and 2 taps
    geometry(1, 16, 16, 10, 10, 3, 2, 2, 2),  // stride 2, dilation 2: only one phase of four reached
    geometry(1, 16, 16, 10, 11, 3, 3, 1, 1),  // stride 3: one tap a phase
    geometry(2, 16, 48, 7, 7, 3, 2, 0, 1),    // no padding; 48 gy channels
    geometry(1, 16, 24, 8, 9, 3, 2, 1, 1),    // 24 gy channels, padded to 32
    geometry(1, 16, 16, 8, 8, 3, 1, 3, 1),    // padding 3 > (3 - 1): the transposed convolution's is < 0
};

// Every case above: along rows, at stride 2 and 3, across images.
std::vector<kk::Conv2dGeometry> all_cases() {
  std::vector<kk::Conv2dGeometry> cases(std::begin(kCases), std::end(kCases));
  cases.insert(cases.end(), std::begin(kStrideCases), std::end(kStrideCases));
  cases.insert(cases.end(), std::begin(kAcrossImagesCases), std::end(kAcrossImagesCases));
  return cases;
}

TEST_CASE("amx bfloat16 conv2d backward data, every stride phase: the exact sums rounded once, bit for bit") {
  if (!amx_here()) return;
  int served = 0;
  for (const kk::Conv2dGeometry& g : all_cases()) {
    if (!kk::amx::conv2d_backward_data_bf16_serves(g)) continue;  // C_in 3 or 20: not whole output blocks
    ++served;
    INFO(describe(g));
    const std::vector<float> gy =
        exact_values(g.batch * g.out_channels * g.out_height() * g.out_width(), 4, 16, 8.0f);
    const std::vector<float> w =
        exact_values(g.out_channels * g.in_channels * g.kernel_h * g.kernel_w, 5, 16, 16.0f);
    const std::int64_t inputs = g.batch * g.in_channels * g.in_height * g.in_width;
    std::vector<float> expected(static_cast<std::size_t>(inputs));
    kk::reference::conv2d_backward_data<float>(g, gy.data(), w.data(), expected.data());
    std::vector<bfloat16> gx(static_cast<std::size_t>(inputs), bfloat16(-777.0f));
    kk::amx::conv2d_backward_data_bf16(g, converted<bfloat16>(gy).data(), converted<bfloat16>(w).data(),
                                       gx.data());
    CHECK(difference(gx, expected) == "");
  }
  CHECK(served == 9 + 8 + 9);  // all but C_in 3 and 20
}

// Accumulating into a gradient so far (conv2d_backward_data_accumulate): each output rounded, then added
// to the old value and rounded again, the bits of a fresh gradient and a bfloat16 add; on every stride phase,
// both ways the tiles take their positions, and phases no tap reaches (which add nothing).
TEST_CASE(
    "amx bfloat16 conv2d backward data into a sum: a fresh gradient's bits, added, every stride phase") {
  if (!amx_here()) return;
  int served = 0;
  for (const kk::Conv2dGeometry& g : all_cases()) {
    if (!kk::amx::conv2d_backward_data_bf16_serves(g)) continue;
    ++served;
    INFO(describe(g));
    const std::vector<bfloat16> gy = converted<bfloat16>(
        testing::random_floats(g.batch * g.out_channels * g.out_height() * g.out_width(), 6));
    const std::vector<bfloat16> w = converted<bfloat16>(
        testing::random_floats(g.out_channels * g.in_channels * g.kernel_h * g.kernel_w, 7));
    const std::int64_t inputs = g.batch * g.in_channels * g.in_height * g.in_width;
    const std::vector<bfloat16> sum = converted<bfloat16>(testing::random_floats(inputs, 8));
    std::vector<bfloat16> fresh(static_cast<std::size_t>(inputs), bfloat16(-777.0f));
    kk::amx::conv2d_backward_data_bf16(g, gy.data(), w.data(), fresh.data());
    std::vector<bfloat16> expected(fresh.size());
    for (std::size_t i = 0; i < fresh.size(); ++i)
      expected[i] = bfloat16(static_cast<float>(sum[i]) + static_cast<float>(fresh[i]));
    std::vector<bfloat16> summed = sum;
    kk::amx::conv2d_backward_data_bf16(g, gy.data(), w.data(), summed.data(), true);
    CHECK(testing::bitwise_equal(summed, expected));
  }
  CHECK(served == 9 + 8 + 9);
}

TEST_CASE(
    "amx bfloat16 conv2d backward weight: the exact sums rounded once, bit for bit, on 1 and 2 threads") {
  if (!amx_here()) return;
  const testing::DispatchGuard guard;  // restores the thread count
  // Both ways of sharing the work (amx_bf16_weight_gradient.cpp), each over several chunks. The way
  // depends on the L2's size (conv2d_backward_weight_bf16_splits_passes): at 32 KiB, gradients of 16 KiB and
  // more go by pass, whatever this machine's L2.
  const testing::L2SizeGuard small_l2(32 << 10);
  // The small planes at batches of 16 or more reduce across images instead, where the kernel has more than
  // one tap and the input channels fill whole tiles (weight_gradient_across_images); the phase grid's
  // chunks of 2 images below give them the same bits.
  int by_chunk = 0, by_pass = 0, across_images = 0;
  std::vector<kk::Conv2dGeometry> cases(std::begin(kCases), std::end(kCases));
  cases.push_back(geometry(32, 16, 16, 8, 9, 3, 1, 1, 1));  // small gradient, 8 chunks of 4 images
  cases.push_back(
      geometry(20, 64, 64, 2, 9, 1, 1, 0, 1));  // pointwise at 2x9: a large gradient, small images
  cases.insert(cases.end(), std::begin(kAcrossImagesCases), std::end(kAcrossImagesCases));
  for (kk::Conv2dGeometry g : cases) {
    // Batch 9 of the small images is several chunks (at least 8 where the batch allows: chunks of 2 and
    // a last of 1), blocks of 32 grid positions that span rows and images, and a partial last block.
    g.batch = g.in_height * g.in_width < 100 && g.batch < 9 ? 9 : g.batch;
    const bool across = kk::amx::weight_gradient_across_images(g);
    CHECK(across ==
          (g.batch >= 16 && g.out_width() <= 8 && g.kernel_h * g.kernel_w > 1 && g.in_channels % 16 == 0));
    across_images += across ? 1 : 0;
    if (g.batch >= 9 && !across) {
      if (kk::amx::conv2d_backward_weight_bf16_splits_passes(g)) {
        ++by_pass;  // one chunk of its own (4 MiB chunks): the run with chunks of 2 images below makes five
      } else {
        CHECK(kk::amx::conv2d_backward_weight_bf16_images_per_chunk(g) < g.batch);
        ++by_chunk;
      }
    }
    INFO(describe(g));
    REQUIRE(kk::amx::conv2d_backward_weight_bf16_serves(g));
    const std::vector<float> gy =
        exact_values(g.batch * g.out_channels * g.out_height() * g.out_width(), 6, 8, 8.0f);
    const std::vector<float> x = exact_values(g.batch * g.in_channels * g.in_height * g.in_width, 7, 8, 8.0f);
    const std::int64_t weights = g.out_channels * g.in_channels * g.kernel_h * g.kernel_w;
    std::vector<float> expected(static_cast<std::size_t>(weights));
    kk::reference::conv2d_backward_weight<float>(g, gy.data(), x.data(), expected.data());
    // The shape's own chunks, then chunks of 2 images, whichever way the threads share them.
    for (const std::int64_t images_per_chunk : {std::int64_t{0}, std::int64_t{2}}) {
      INFO((images_per_chunk == 0 ? "the shape's chunks" : "chunks of 2 images"));
      std::vector<std::vector<bfloat16>> by_threads;
      for (const int threads : {1, 2}) {
        kk::set_compute_threads(threads);
        std::vector<bfloat16> gw(static_cast<std::size_t>(weights), bfloat16(-777.0f));
        kk::amx::conv2d_backward_weight_bf16(g, converted<bfloat16>(gy).data(), converted<bfloat16>(x).data(),
                                             gw.data(), images_per_chunk);
        CHECK(difference(gw, expected) == "");
        by_threads.push_back(gw);
      }
      CHECK(std::memcmp(by_threads[0].data(), by_threads[1].data(),
                        by_threads[0].size() * sizeof(bfloat16)) == 0);
    }
  }
  CHECK(by_chunk > 0);
  CHECK(by_pass > 0);
  CHECK(across_images == 8);  // kAcrossImagesCases but the stem's 3 channels and the 1x1 projection
}

// NCHW activations reach the tiles through the public dispatch, copied channels-last and back
// (kernels/conv2d/dispatch.cpp), where the input channels fill whole tiles: the same exact sums, bit for bit.
TEST_CASE("amx bfloat16 conv2d: NCHW activations through the dispatch, copied channels-last, bit for bit") {
  if (!amx_here()) return;
  const Device cpu = Device::cpu();
  int served = 0;
  for (kk::Conv2dGeometry g : kCases) {
    g.channels_last = false;
    if (g.in_channels % 16 != 0) continue;  // the stem and 20 channels keep the float path
    ++served;
    INFO(describe(g));
    const std::vector<float> x =
        exact_values(g.batch * g.in_channels * g.in_height * g.in_width, 1, 16, 8.0f);
    const std::vector<float> w =
        exact_values(g.out_channels * g.in_channels * g.kernel_h * g.kernel_w, 2, 16, 16.0f);
    const std::vector<float> gy =
        exact_values(g.batch * g.out_channels * g.out_height() * g.out_width(), 4, 8, 8.0f);
    std::vector<float> y(gy.size()), gx(x.size()), gw(w.size());
    kk::reference::conv2d_forward<float>(g, x.data(), w.data(), nullptr, y.data());
    kk::reference::conv2d_backward_data<float>(g, gy.data(), w.data(), gx.data());
    kk::reference::conv2d_backward_weight<float>(g, gy.data(), x.data(), gw.data());
    std::vector<bfloat16> y16(y.size(), bfloat16(-777.0f)), gx16(x.size(), bfloat16(-777.0f)),
        gw16(w.size(), bfloat16(-777.0f));
    kk::conv2d_forward<bfloat16>(cpu, g, converted<bfloat16>(x).data(), converted<bfloat16>(w).data(),
                                 nullptr, y16.data());
    kk::conv2d_backward_data<bfloat16>(cpu, g, converted<bfloat16>(gy).data(), converted<bfloat16>(w).data(),
                                       gx16.data());
    kk::conv2d_backward_weight<bfloat16>(cpu, g, converted<bfloat16>(gy).data(),
                                         converted<bfloat16>(x).data(), gw16.data());
    CHECK(difference(y16, y) == "");
    CHECK(difference(gx16, gx) == "");
    CHECK(difference(gw16, gw) == "");
  }
  CHECK(served == 9);
}

TEST_CASE("amx bfloat16 conv2d: what it does not serve takes the float path") {
  kk::Conv2dGeometry g = geometry(1, 16, 16, 8, 8, 3, 1, 1, 1);
  CHECK(kk::amx::conv2d_forward_bf16_serves(g));
  g.channels_last = false;  // NCHW activations: a position's channels are not contiguous
  CHECK_FALSE(kk::amx::conv2d_forward_bf16_serves(g));
  g = geometry(1, 16, 24, 8, 8, 3, 1, 1, 1);  // 24 output channels: not whole accumulators
  CHECK_FALSE(kk::amx::conv2d_forward_bf16_serves(g));
  g = geometry(1, 3, 16, 8, 8, 3, 1, 1, 1);  // the RGB stem: forward and weight gradient, not backward data
  CHECK(kk::amx::conv2d_forward_bf16_serves(g));
  CHECK(kk::amx::conv2d_backward_weight_bf16_serves(g));
  CHECK_FALSE(kk::amx::conv2d_backward_data_bf16_serves(g));
  g = geometry(1, 32, 32, 8, 8, 3, 1, 1, 1);
  g.groups = 2;
  CHECK_FALSE(kk::amx::conv2d_forward_bf16_serves(g));
  CHECK_FALSE(kk::amx::conv2d_backward_data_bf16_serves(g));
}

}  // namespace

}  // namespace kernels_conv2d_amx_test
