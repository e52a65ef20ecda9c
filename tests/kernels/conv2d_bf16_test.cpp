// Tests of conv2d in bfloat16 (kernels/conv2d/conv2d.hpp) on the CPU, in every direction (forward with and
// without bias, backward-data, backward-weight, backward-bias):
//   - the bfloat16 reference against the double and float references run on the same values (bfloat16
//     inputs, exact in every wider type): equal to the double one rounded to bfloat16 (both sum in double and
//     round once), within 1 bfloat16 ulp of the float one rounded to bfloat16 (a second rounding);
//   - dispatch (inputs widened to float, the fast float kernels, outputs rounded once) against the bfloat16
//     reference at every fast CPU level, the same bits on 1 and 2 threads, and exactly the reference at the
//     Reference level; NaN where the reference has it;
//   - the kernels that take bfloat16 tensors themselves (depthwise-channels, Winograd) bit for bit the float
//     kernels on widened copies, rounded once;
//   - raw::conv2d_* on bfloat16 tensors against the same calls in float.
// The odd geometries of conv2d_fast_test.cpp: 1x1 kernels at stride 1 and 2, 1x1 images, channels 3 / 5 /
// 17, stride 2 and 3, padding 0 / 1 / 2, dilation 2, groups 2, depthwise, batch 1, batches in chunks.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "core/bfloat16.hpp"
#include "core/op_options.hpp"
#include "core/raw.hpp"
#include "core/tensor.hpp"
#include "kernels/amx/amx.hpp"
#include "kernels/conv2d/algorithm.hpp"
#include "kernels/conv2d/amx_bf16_conv.hpp"
#include "kernels/conv2d/conv2d.hpp"
#include "kernels/cpu_level.hpp"
#include "kernels/parallel.hpp"
#include "tests/support/bfloat16_testing.hpp"
#include "tests/support/fast_kernel_testing.hpp"
#include "tests/support/matches_reference.hpp"

namespace kernels_conv2d_bf16_test {

namespace {

using namespace kiln;
using kernels::Conv2dGeometry;
using testing::bfloat16_difference;
using testing::converted;
using testing::is_nan;
using testing::matches_reference;
using testing::random_values;
using testing::Tolerance;
using Bf16s = std::vector<bfloat16>;

// ---- bfloat16 helpers ----------------------------------------------------------------------------------

// Dispatch against the bfloat16 reference: the fast float kernels sum in float in their own order, within
// 1e-4 of the output's largest magnitude (conv2d_fast_test.cpp's float32 tolerance), and the result is then
// rounded once to bfloat16, which may land one bfloat16 step (at most 2^-7 of the value) from the reference's
// rounding of the exact sum.
Tolerance dispatch_tolerance(const Bf16s& expected) {
  double largest = 0.0;
  for (const bfloat16 v : expected) {
    if (!is_nan(v)) largest = std::max(largest, std::fabs(static_cast<double>(v)));
  }
  return {1e-4 * std::max(largest, 1e-2), 1.0 / 128};
}

// ---- geometries ----------------------------------------------------------------------------------------

Conv2dGeometry geometry(std::int64_t batch, std::int64_t in_channels, std::int64_t height, std::int64_t width,
                        std::int64_t out_channels, std::int64_t kernel_h, std::int64_t kernel_w) {
  return {.batch = batch,
          .in_channels = in_channels,
          .in_height = height,
          .in_width = width,
          .out_channels = out_channels,
          .kernel_h = kernel_h,
          .kernel_w = kernel_w};
}
Conv2dGeometry strided(Conv2dGeometry g, std::int64_t stride_h, std::int64_t stride_w) {
  g.stride_h = stride_h;
  g.stride_w = stride_w;
  return g;
}
Conv2dGeometry padded(Conv2dGeometry g, std::int64_t pad_h, std::int64_t pad_w) {
  g.pad_h = pad_h;
  g.pad_w = pad_w;
  return g;
}
Conv2dGeometry dilated(Conv2dGeometry g, std::int64_t dilation_h, std::int64_t dilation_w) {
  g.dilation_h = dilation_h;
  g.dilation_w = dilation_w;
  return g;
}
Conv2dGeometry grouped(Conv2dGeometry g, std::int64_t groups) {
  g.groups = groups;
  return g;
}

std::string describe(const Conv2dGeometry& g) {
  std::ostringstream out;
  out << "N" << g.batch << " C" << g.in_channels << " " << g.in_height << "x" << g.in_width << " -> C"
      << g.out_channels << " k" << g.kernel_h << "x" << g.kernel_w << " stride " << g.stride_h << ","
      << g.stride_w << " pad " << g.pad_h << "," << g.pad_w << " dilation " << g.dilation_h << ","
      << g.dilation_w << " groups " << g.groups;
  return out.str();
}

std::vector<Conv2dGeometry> odd_shapes() {
  return {
      geometry(1, 3, 1, 1, 5, 1, 1),                                 // batch 1, 1x1 spatial, pointwise
      padded(geometry(2, 5, 1, 1, 3, 3, 3), 1, 1),                   // 1x1 spatial through a padded 3x3
      strided(geometry(2, 5, 7, 6, 17, 1, 1), 2, 2),                 // 1x1 kernel, stride 2
      padded(strided(geometry(2, 17, 9, 9, 5, 3, 3), 2, 2), 1, 1),   // 17 channels, stride 2, pad 1
      dilated(padded(geometry(2, 3, 11, 10, 5, 3, 3), 2, 2), 2, 2),  // pad 2, dilation 2
      padded(strided(geometry(2, 5, 9, 13, 3, 3, 5), 2, 1), 1, 2),   // non-square 3x5 kernel and input
      geometry(2, 3, 6, 6, 2, 3, 3),                                 // no padding
      grouped(padded(geometry(3, 6, 8, 7, 4, 3, 3), 1, 1), 2),       // groups 2
      grouped(padded(geometry(2, 5, 9, 11, 5, 3, 3), 1, 1), 5),      // depthwise
      grouped(padded(strided(geometry(2, 17, 10, 35, 17, 3, 3), 2, 2), 1, 1), 17),  // depthwise, stride 2
      grouped(dilated(padded(geometry(1, 3, 7, 20, 3, 3, 5), 2, 2), 2, 2), 3),  // depthwise 3x5, dilation 2
      grouped(padded(geometry(2, 3, 6, 6, 6, 3, 3), 1, 1), 3),      // groups = C_in, 2 outputs per group
      grouped(geometry(2, 4, 5, 5, 6, 1, 1), 2),                    // pointwise, groups 2
      padded(geometry(5, 3, 32, 32, 4, 3, 3), 1, 1),                // weight gradient in 2 chunks (4 + 1)
      geometry(3, 4, 33, 33, 3, 1, 1),                              // pointwise, one image per chunk
      padded(geometry(1, 9, 5, 5, 10, 5, 5), 2, 1),                 // 5x5 kernel, batch 1, pads differ
      padded(strided(geometry(3, 8, 11, 9, 9, 3, 3), 3, 2), 2, 1),  // stride 3 x 2, pad 2 x 1
      // Taps that read only padding, which dispatch crops off (unreached_taps.hpp): a 2x2 plane through a
      // padded 5x5 (its outer taps), a one-row image at stride 2 (the outer rows of taps), a 2x2 plane
      // through a dilated 3x3 (all but the centre), a depthwise 3x3 on a 1x1 plane.
      padded(geometry(2, 6, 2, 2, 7, 5, 5), 2, 2),
      padded(strided(geometry(2, 4, 1, 9, 5, 3, 3), 2, 1), 1, 1),
      dilated(padded(geometry(2, 3, 2, 2, 4, 3, 3), 2, 2), 2, 2),
      grouped(padded(geometry(2, 8, 1, 1, 8, 3, 3), 1, 1), 8),
      // ResNet-18's last stage in small: a padded 3x3 on 1x1 planes, cropped on threads (kParallelKernelTaps)
      // and run channels-last (a one-pixel plane lies the same either way).
      padded(geometry(3, 97, 1, 1, 80, 3, 3), 1, 1),
  };
}

// ---- one convolution, every direction ------------------------------------------------------------------

std::int64_t x_size(const Conv2dGeometry& g) { return g.batch * g.in_channels * g.in_height * g.in_width; }
std::int64_t w_size(const Conv2dGeometry& g) {
  return g.out_channels * g.in_channels_per_group() * g.kernel_h * g.kernel_w;
}
std::int64_t y_size(const Conv2dGeometry& g) {
  return g.batch * g.out_channels * g.out_height() * g.out_width();
}

template <typename T>
struct Operands {
  std::vector<T> x, w, bias, gy;
};

Operands<bfloat16> random_operands(const Conv2dGeometry& g, unsigned seed) {
  return {random_values<bfloat16>(x_size(g), seed), random_values<bfloat16>(w_size(g), seed + 1),
          random_values<bfloat16>(g.out_channels, seed + 2), random_values<bfloat16>(y_size(g), seed + 3)};
}

template <typename T>
struct Results {
  std::vector<T> y, y_no_bias, gx, gw, gb;
};

// Outputs start as NaN, so an element a kernel forgets to write shows up.
template <typename T>
std::vector<T> poisoned(std::int64_t count) {
  return std::vector<T>(static_cast<std::size_t>(count), T(std::numeric_limits<float>::quiet_NaN()));
}

template <typename T>
Results<T> poisoned_results(const Conv2dGeometry& g) {
  return {poisoned<T>(y_size(g)), poisoned<T>(y_size(g)), poisoned<T>(x_size(g)), poisoned<T>(w_size(g)),
          poisoned<T>(g.out_channels)};
}

template <typename T>
Results<T> reference_results(const Conv2dGeometry& g, const Operands<T>& in) {
  Results<T> out = poisoned_results<T>(g);
  kernels::reference::conv2d_forward(g, in.x.data(), in.w.data(), in.bias.data(), out.y.data());
  kernels::reference::conv2d_forward(g, in.x.data(), in.w.data(), static_cast<const T*>(nullptr),
                                     out.y_no_bias.data());
  kernels::reference::conv2d_backward_data(g, in.gy.data(), in.w.data(), out.gx.data());
  kernels::reference::conv2d_backward_weight(g, in.gy.data(), in.x.data(), out.gw.data());
  kernels::reference::conv2d_backward_bias(g, in.gy.data(), out.gb.data());
  return out;
}

template <typename T>
Results<T> dispatched_results(const Conv2dGeometry& g, const Operands<T>& in) {
  Results<T> out = poisoned_results<T>(g);
  const Device cpu = Device::cpu();
  kernels::conv2d_forward(cpu, g, in.x.data(), in.w.data(), in.bias.data(), out.y.data());
  kernels::conv2d_forward(cpu, g, in.x.data(), in.w.data(), static_cast<const T*>(nullptr),
                          out.y_no_bias.data());
  kernels::conv2d_backward_data(cpu, g, in.gy.data(), in.w.data(), out.gx.data());
  kernels::conv2d_backward_weight(cpu, g, in.gy.data(), in.x.data(), out.gw.data());
  kernels::conv2d_backward_bias(cpu, g, in.gy.data(), out.gb.data());
  return out;
}

// The reference in Wide (float or double) on the widened operands, each output rounded to bfloat16.
template <typename Wide>
Results<bfloat16> wide_reference_results(const Conv2dGeometry& g, const Operands<bfloat16>& in) {
  const Operands<Wide> wide{converted<Wide>(in.x), converted<Wide>(in.w), converted<Wide>(in.bias),
                            converted<Wide>(in.gy)};
  const Results<Wide> out = reference_results(g, wide);
  return {converted<bfloat16>(out.y), converted<bfloat16>(out.y_no_bias), converted<bfloat16>(out.gx),
          converted<bfloat16>(out.gw), converted<bfloat16>(out.gb)};
}

// Calls check(name, actual, expected) for each direction.
template <class Check>
void for_each_direction(const Results<bfloat16>& actual, const Results<bfloat16>& expected, Check&& check) {
  check("forward", actual.y, expected.y);
  check("forward without bias", actual.y_no_bias, expected.y_no_bias);
  check("backward_data", actual.gx, expected.gx);
  check("backward_weight", actual.gw, expected.gw);
  check("backward_bias", actual.gb, expected.gb);
}

void check_dispatch_close(const char* what, const Bf16s& actual, const Bf16s& expected) {
  const auto report =
      matches_reference(actual.data(), expected.data(), static_cast<std::int64_t>(expected.size()),
                        dispatch_tolerance(expected));
  CHECK_MESSAGE(report.ok, what, ": ", report.message);
}

// ---- the tests -----------------------------------------------------------------------------------------

TEST_CASE(
    "conv2d bfloat16: the reference equals the double reference rounded once, within 1 ulp of float's") {
  unsigned seed = 1;
  for (const Conv2dGeometry& g : odd_shapes()) {
    INFO(describe(g));
    const Operands<bfloat16> in = random_operands(g, seed += 5);
    const Results<bfloat16> actual = reference_results(g, in);
    for_each_direction(actual, wide_reference_results<double>(g, in),
                       [](const char* what, const Bf16s& a, const Bf16s& e) {
                         CHECK_MESSAGE(testing::bitwise_equal(a, e), what);
                       });
    for_each_direction(actual, wide_reference_results<float>(g, in),
                       [](const char* what, const Bf16s& a, const Bf16s& e) {
                         const std::string mismatch = bfloat16_difference(a, e, 1);
                         CHECK_MESSAGE(mismatch.empty(), what, ": ", mismatch);
                       });
  }
}

// Dispatch on 1 and 2 threads: the same bits, and close to the bfloat16 reference.
void check_dispatch_on_1_and_2_threads(const Conv2dGeometry& g, const Operands<bfloat16>& in) {
  kernels::set_compute_threads(1);
  const Results<bfloat16> one_thread = dispatched_results(g, in);
  kernels::set_compute_threads(2);
  for_each_direction(dispatched_results(g, in), one_thread,
                     [](const char* what, const Bf16s& a, const Bf16s& b) {
                       CHECK_MESSAGE(testing::bitwise_equal(a, b), what, ": 1 and 2 threads differ");
                     });
  for_each_direction(one_thread, reference_results(g, in), check_dispatch_close);
}

TEST_CASE("conv2d bfloat16: dispatch through the fast float kernels matches the bfloat16 reference") {
  testing::at_each_fast_level([&] {
    unsigned seed = 1;
    for (const Conv2dGeometry& g : odd_shapes()) {
      INFO(describe(g));
      check_dispatch_on_1_and_2_threads(g, random_operands(g, seed += 5));
    }
  });
}

// Channels-last pointwise convolutions run on AVX512-BF16's pair dot products where the CPU has them (and
// AMX's tiles do not serve the shape): the sums in float in their own order, so close to the reference as the
// float kernels are, and the same bits on 1 and 2 threads. Odd channel counts (partial tiles), groups, batch
// 1 at 1x1, a forward and a backward-data deeper than one block of the GEMM (1100 and 1030 channels: float
// sums rounded after).
TEST_CASE("conv2d bfloat16: channels-last pointwise on AVX512-BF16 matches the bfloat16 reference") {
  if (!kernels::avx512_bf16_usable()) {
    MESSAGE("skipping: this CPU has no AVX512-BF16");
    return;
  }
  const testing::DispatchGuard guard;
  unsigned seed = 900;
  for (Conv2dGeometry g : {geometry(1, 3, 1, 1, 5, 1, 1), grouped(geometry(2, 4, 5, 5, 6, 1, 1), 2),
                           geometry(3, 17, 9, 7, 33, 1, 1), geometry(4, 40, 8, 8, 70, 1, 1),
                           geometry(2, 1100, 3, 3, 20, 1, 1), geometry(2, 20, 3, 3, 1030, 1, 1)}) {
    g.channels_last = true;
    INFO(describe(g), " channels-last");
    // (Where the CPU has AMX, its tiles take C_out and C_in in multiples of 16; none of these.)
    for (const auto direction : {kernels::Conv2dDirection::Forward, kernels::Conv2dDirection::BackwardData,
                                 kernels::Conv2dDirection::BackwardWeight})
      REQUIRE(kernels::bfloat16_conv2d_path(g, direction) ==
              kernels::Bfloat16Conv2dPath::PointwiseDotProducts);
    check_dispatch_on_1_and_2_threads(g, random_operands(g, seed += 5));
  }
}

// The other ungrouped channels-last layers run on the same dot products through dispatch: the forward
// straight from the activations' channel pairs (the direct kernel), stride-1 backward data too where its
// transposed convolution is a forward, else widened; the weight gradient on image pairs. Stems of 3
// channels with and without padding, stride 2, dilation 2, a 5x5 kernel over 17 channels, a 1x1 at stride
// 2, batch 1, ResNet's 16-channel stem on a batch of 9 (its last image paired with zeros), two strided 3x3
// layers the float dispatch gives Winograd (ResNet's 16 -> 32, and 24 -> 40 on odd image sizes), and a
// 16 -> 18 layer it gives F(2x2, 3x3) (2048 positions).
TEST_CASE("conv2d bfloat16: channels-last layers on AVX512-BF16 match the bfloat16 reference") {
  if (!kernels::avx512_bf16_usable()) {
    MESSAGE("skipping: this CPU has no AVX512-BF16");
    return;
  }
  using kernels::Bfloat16Conv2dPath;
  using kernels::Conv2dDirection;
  const testing::DispatchGuard guard;
  unsigned seed = 950;
  for (Conv2dGeometry g :
       {padded(geometry(2, 3, 9, 11, 32, 3, 3), 1, 1), geometry(1, 3, 7, 6, 17, 3, 3),
        padded(strided(geometry(2, 5, 10, 9, 20, 3, 3), 2, 2), 1, 1),
        dilated(padded(geometry(2, 3, 11, 10, 33, 3, 3), 2, 2), 2, 2),
        padded(geometry(2, 17, 8, 9, 24, 5, 5), 2, 1), strided(geometry(3, 20, 7, 7, 18, 1, 1), 2, 2),
        padded(geometry(9, 3, 32, 32, 16, 3, 3), 1, 1),
        padded(strided(geometry(3, 16, 16, 16, 32, 3, 3), 2, 2), 1, 1),
        padded(strided(geometry(2, 24, 11, 13, 40, 3, 3), 2, 2), 1, 1),
        padded(geometry(32, 16, 8, 8, 18, 3, 3), 1, 1)}) {
    g.channels_last = true;
    INFO(describe(g), " channels-last");
    if (kernels::bfloat16_conv2d_path(g, Conv2dDirection::BackwardWeight) == Bfloat16Conv2dPath::Amx)
      continue;  // C_out a multiple of 16, on a CPU with AMX: its tiles serve the shape (conv2d_amx_test.cpp)
    // (Every strided shape here fits backward data by stride phase.) C_in a multiple of 16 (the 16 -> 18
    // layer) on a CPU with AMX: its tiles take backward data, and the dot products the other two.
    const Bfloat16Conv2dPath backward_data =
        kernels::amx_bf16_usable() && kernels::amx::conv2d_backward_data_bf16_serves(g)
            ? Bfloat16Conv2dPath::Amx
        : kernels::direct_backward_data_fits(g) || g.stride_h > 1 ? Bfloat16Conv2dPath::DirectDotProducts
                                                                  : Bfloat16Conv2dPath::Widened;
    REQUIRE(kernels::bfloat16_conv2d_path(g, Conv2dDirection::Forward) ==
            Bfloat16Conv2dPath::DirectDotProducts);
    REQUIRE(kernels::bfloat16_conv2d_path(g, Conv2dDirection::BackwardData) == backward_data);
    REQUIRE(kernels::bfloat16_conv2d_path(g, Conv2dDirection::BackwardWeight) ==
            Bfloat16Conv2dPath::DirectDotProducts);
    check_dispatch_on_1_and_2_threads(g, random_operands(g, seed += 5));
  }
}

// The shapes the direct kernel's own tests take: 3-wide kernel rows at stride 1 and 2 and other kernels;
// rows of 1 to 33 output pixels, 1 to 70 channels (odd ones too: the 3-channel stems into 16 and 32
// channels, LeNet's 5x5 one, 17 -> 5), stride 2 and 3, padding 0 to 2 and asymmetric, dilation 2, a 5x1
// kernel and a 17x1 one, a 1x1 at batch 1 padded past its taps; backward data at stride 2 by phase, with
// and without padding, stride 2 x 1, and a 1x1 at stride 2 (phases without taps).
std::vector<Conv2dGeometry> direct_kernel_shapes() {
  return {padded(geometry(2, 16, 32, 32, 16, 3, 3), 1, 1),
          padded(geometry(2, 3, 13, 12, 16, 3, 3), 1, 1),
          padded(strided(geometry(3, 3, 15, 16, 32, 3, 3), 2, 2), 1, 1),
          geometry(3, 3, 12, 12, 6, 5, 5),
          padded(geometry(2, 17, 7, 9, 5, 3, 3), 1, 1),
          padded(geometry(1, 1, 6, 5, 2, 3, 3), 1, 0),
          padded(geometry(1, 2, 20, 4, 3, 17, 1), 8, 0),
          strided(geometry(2, 6, 7, 8, 10, 1, 1), 2, 2),
          padded(strided(geometry(2, 5, 9, 10, 7, 3, 3), 2, 1), 1, 1),
          strided(geometry(2, 16, 8, 9, 24, 3, 3), 2, 2),
          padded(geometry(1, 2, 5, 33, 3, 3, 3), 1, 1),
          padded(geometry(3, 20, 9, 25, 40, 3, 3), 1, 1),
          geometry(2, 32, 6, 7, 70, 3, 3),
          padded(strided(geometry(2, 16, 15, 13, 32, 3, 3), 2, 2), 1, 1),
          padded(strided(geometry(1, 8, 11, 14, 12, 3, 3), 3, 3), 2, 0),
          dilated(padded(geometry(2, 6, 10, 11, 18, 3, 3), 2, 2), 2, 2),
          padded(geometry(2, 4, 9, 6, 10, 5, 1), 2, 0),
          padded(geometry(1, 10, 1, 1, 14, 3, 3), 1, 1),
          padded(geometry(2, 12, 4, 3, 24, 1, 1), 2, 2)};
}

// The direct convolution on AVX512-BF16's pair dot products, called itself (dispatch.cpp gives it only the
// layers it wins): forward with and without bias and stride-1 backward data against the bfloat16 reference,
// the same bits on 1 and 2 threads. 3-wide kernel rows at stride 1 and 2 (the tiles that feed a broadcast to
// every tap reading it) and other kernels (the plain tiles); rows of 1 to 33 output pixels (tiles of every
// width, rows cut into several), 1 to 70 channels (a half-empty pair, blocks of 16 and 32 partly filled,
// more than one block), stride 2 and 3, padding 0 to 2 and asymmetric, dilation 2, a 5x1 and a 17x1
// kernel, batch 1, and output rows reaching past the input (padding wider than the taps need).
TEST_CASE("conv2d bfloat16: the channels-last direct kernel on AVX512-BF16 matches the bfloat16 reference") {
  if (!kernels::avx512_bf16_usable()) {
    MESSAGE("skipping: this CPU has no AVX512-BF16");
    return;
  }
  using kernels::Conv2dDirection;
  namespace direct = kernels::direct_dot_products;
  const testing::DispatchGuard guard;
  unsigned seed = 1200;
  for (Conv2dGeometry g : direct_kernel_shapes()) {
    g.channels_last = true;
    INFO(describe(g), " channels-last");
    REQUIRE(direct::serves(g, Conv2dDirection::Forward));
    const bool backward_data = direct::serves(g, Conv2dDirection::BackwardData);
    // Stride 1 where the transposed convolution is a forward; stride 2 by phase (every stride-2 shape here
    // fits it; stride 3 padded by 2 does not: a phase would need its forward to start inside gy).
    CHECK(backward_data == (kernels::direct_backward_data_fits(g) || (g.stride_h == 2 || g.stride_w == 2)));
    const Operands<bfloat16> in = random_operands(g, seed += 5);
    const Results<bfloat16> expected = reference_results(g, in);
    std::vector<float> bias(in.bias.begin(), in.bias.end());
    std::vector<Results<bfloat16>> by_threads;
    for (const int threads : {1, 2}) {
      kernels::set_compute_threads(threads);
      Results<bfloat16>& out = by_threads.emplace_back(poisoned_results<bfloat16>(g));
      direct::conv2d_forward_bf16(g, in.x.data(), in.w.data(), bias.data(), out.y.data());
      direct::conv2d_forward_bf16(g, in.x.data(), in.w.data(), nullptr, out.y_no_bias.data());
      if (backward_data) direct::conv2d_backward_data_bf16(g, in.gy.data(), in.w.data(), out.gx.data());
    }
    check_dispatch_close("forward", by_threads[0].y, expected.y);
    check_dispatch_close("forward without bias", by_threads[0].y_no_bias, expected.y_no_bias);
    CHECK(testing::bitwise_equal(by_threads[0].y, by_threads[1].y));
    CHECK(testing::bitwise_equal(by_threads[0].y_no_bias, by_threads[1].y_no_bias));
    if (backward_data) {
      check_dispatch_close("backward_data", by_threads[0].gx, expected.gx);
      CHECK(testing::bitwise_equal(by_threads[0].gx, by_threads[1].gx));
    }
  }
  // Through dispatch it takes ResNet's 16 -> 16 layer even where the float dispatch gives F(4x4, 3x3) (a
  // batch of 8: 8192 positions), both ways; the tiles' bits are the kernel's own.
  Conv2dGeometry resnet = padded(geometry(8, 16, 32, 32, 16, 3, 3), 1, 1);
  resnet.channels_last = true;
  if (!kernels::amx_bf16_usable()) {
    CHECK(kernels::choose_conv2d_algorithm(resnet, Conv2dDirection::Forward, kernels::cpu_level()) ==
          kernels::Conv2dAlgorithm::Winograd4x4);
    CHECK(kernels::bfloat16_conv2d_path(resnet, Conv2dDirection::Forward) ==
          kernels::Bfloat16Conv2dPath::DirectDotProducts);
    CHECK(kernels::bfloat16_conv2d_path(resnet, Conv2dDirection::BackwardData) ==
          kernels::Bfloat16Conv2dPath::DirectDotProducts);
  }
  // Groups and NCHW activations are not its layout.
  Conv2dGeometry grouped_layer = grouped(geometry(1, 8, 8, 8, 16, 3, 3), 2);
  grouped_layer.channels_last = true;
  CHECK_FALSE(direct::serves(grouped_layer, Conv2dDirection::Forward));
  CHECK_FALSE(direct::serves(geometry(1, 8, 8, 8, 16, 3, 3), Conv2dDirection::Forward));
}

// The weight gradient on the same pair dot products, summed over pairs of images, called itself: against the
// bfloat16 reference (its float sums rounded once), the same bits on 1 and 2 threads. The direct kernel's
// shapes above (3-channel stems on the tile that holds all three kernel rows, at stride 1 and 2 and batch 1;
// LeNet's 5x5 stem in runs of 15 words that cross taps) and more: 17 channels in blocks of 8, 8 and 1, odd
// batches (the last image paired with zeros), batches of several chunks (33 and 15 images), a 2x2 kernel over
// 30 channels in runs of 20, rows of one output pixel at stride 1 and 2 (both ends of the row in one step),
// 1 and 2 output channels.
TEST_CASE(
    "conv2d bfloat16: the weight gradient on AVX512-BF16's image pairs matches the bfloat16 reference") {
  if (!kernels::avx512_bf16_usable()) {
    MESSAGE("skipping: this CPU has no AVX512-BF16");
    return;
  }
  namespace direct = kernels::direct_dot_products;
  const testing::DispatchGuard guard;
  unsigned seed = 1500;
  std::vector<Conv2dGeometry> shapes = direct_kernel_shapes();
  for (const Conv2dGeometry& g :
       {padded(geometry(33, 3, 32, 32, 16, 3, 3), 1, 1),
        padded(strided(geometry(3, 17, 9, 9, 5, 3, 3), 2, 2), 1, 1),
        padded(geometry(15, 16, 24, 24, 16, 3, 3), 1, 1), geometry(3, 30, 6, 5, 20, 2, 2),
        strided(geometry(3, 5, 7, 7, 1, 1, 1), 2, 2),
        padded(strided(geometry(2, 6, 2, 2, 4, 3, 3), 2, 2), 1, 1)})
    shapes.push_back(g);
  for (Conv2dGeometry g : shapes) {
    g.channels_last = true;
    INFO(describe(g), " channels-last");
    REQUIRE(direct::serves(g, kernels::Conv2dDirection::BackwardWeight));
    const Operands<bfloat16> in = random_operands(g, seed += 5);
    const Results<bfloat16> expected = reference_results(g, in);
    std::vector<Bf16s> by_threads;
    for (const int threads : {1, 2}) {
      kernels::set_compute_threads(threads);
      std::vector<float> gw(in.w.size(), std::numeric_limits<float>::quiet_NaN());
      direct::conv2d_backward_weight_bf16(g, in.gy.data(), in.x.data(), gw.data());
      by_threads.push_back(converted<bfloat16>(gw));
    }
    check_dispatch_close("backward_weight", by_threads[0], expected.gw);
    CHECK(testing::bitwise_equal(by_threads[0], by_threads[1]));
  }
  // Groups and NCHW activations are not its layout.
  Conv2dGeometry grouped_layer = grouped(geometry(1, 8, 8, 8, 16, 3, 3), 2);
  grouped_layer.channels_last = true;
  CHECK_FALSE(direct::serves(grouped_layer, kernels::Conv2dDirection::BackwardWeight));
  CHECK_FALSE(direct::serves(geometry(1, 8, 8, 8, 16, 3, 3), kernels::Conv2dDirection::BackwardWeight));
}

// The float dispatch on the widened operands, each output rounded once: what bfloat16 dispatch computes by
// widening whole tensors.
Results<bfloat16> widened_float_results(const Conv2dGeometry& g, const Operands<bfloat16>& in) {
  const Operands<float> wide{converted<float>(in.x), converted<float>(in.w), converted<float>(in.bias),
                             converted<float>(in.gy)};
  const Results<float> out = dispatched_results(g, wide);
  return {converted<bfloat16>(out.y), converted<bfloat16>(out.y_no_bias), converted<bfloat16>(out.gx),
          converted<bfloat16>(out.gw), converted<bfloat16>(out.gb)};
}

// Channels-last depthwise convolutions run the depthwise-channels kernels on the bfloat16 tensors, widening a
// block of channels at a time: exactly the float kernels' results on the widened tensors, rounded once.
TEST_CASE(
    "conv2d bfloat16: channels-last depthwise runs on the bfloat16 tensors, bit for bit the widened path") {
  std::vector<Conv2dGeometry> shapes = {
      grouped(padded(geometry(9, 16, 9, 11, 16, 3, 3), 1, 1), 16),  // 9 images: two weight-gradient chunks
      grouped(padded(strided(geometry(2, 17, 10, 35, 17, 3, 3), 2, 2), 1, 1), 17),  // stride 2, 17 channels
      grouped(dilated(padded(geometry(1, 20, 7, 20, 20, 3, 5), 2, 2), 2, 2), 20),   // 3x5, dilation 2
      grouped(padded(geometry(3, 40, 4, 4, 40, 3, 3), 1, 1), 40),                   // 40 channels at 4x4
      // Units of several channel blocks (depthwise_channels_kernel.hpp's block_groups): 150 channels are
      // a whole group and a short one ending in a partial block; with 2 images the groups are cut smaller
      // so both threads get units.
      grouped(padded(geometry(9, 150, 5, 4, 150, 3, 3), 1, 1), 150),
      grouped(padded(strided(geometry(2, 150, 6, 7, 150, 3, 3), 2, 2), 1, 1), 150),
  };
  testing::at_each_fast_level([&] {
    unsigned seed = 700;
    for (Conv2dGeometry g : shapes) {
      g.channels_last = true;
      INFO(describe(g), " channels-last");
      for (const auto direction : {kernels::Conv2dDirection::Forward, kernels::Conv2dDirection::BackwardData,
                                   kernels::Conv2dDirection::BackwardWeight})
        REQUIRE(kernels::choose_conv2d_algorithm(g, direction, kernels::cpu_level()) ==
                kernels::Conv2dAlgorithm::DepthwiseChannels);
      const Operands<bfloat16> in = random_operands(g, seed += 5);
      const Results<bfloat16> expected = widened_float_results(g, in);
      for (const int threads : {1, 2}) {
        kernels::set_compute_threads(threads);
        for_each_direction(dispatched_results(g, in), expected,
                           [&](const char* what, const Bf16s& a, const Bf16s& e) {
                             CHECK_MESSAGE(testing::bitwise_equal(a, e), what, " on ", threads, " threads");
                           });
      }
    }
  });
}

TEST_CASE("conv2d bfloat16: the Reference CPU level runs the bfloat16 reference exactly") {
  testing::DispatchGuard guard;
  kernels::set_cpu_level(kernels::CpuLevel::Reference);
  unsigned seed = 300;
  for (const Conv2dGeometry& g : odd_shapes()) {
    INFO(describe(g));
    const Operands<bfloat16> in = random_operands(g, seed += 5);
    for_each_direction(dispatched_results(g, in), reference_results(g, in),
                       [](const char* what, const Bf16s& a, const Bf16s& e) {
                         CHECK_MESSAGE(testing::bitwise_equal(a, e), what);
                       });
  }
}

// A NaN in x reaches exactly the outputs whose sums read it; a NaN in gy exactly the input gradients and the
// bias gradient it feeds. (As for float: a NaN in w forward, or in gy for the weight gradient, meets the
// zeros im2col writes for the padding in the fast kernels, where the reference skips padded taps.)
TEST_CASE("conv2d bfloat16: dispatch propagates NaN where the reference does") {
  for (const Conv2dGeometry& g : {padded(strided(geometry(2, 17, 9, 9, 5, 3, 3), 2, 2), 1, 1),
                                  grouped(padded(geometry(2, 5, 9, 11, 5, 3, 3), 1, 1), 5)}) {
    INFO(describe(g));
    const Operands<bfloat16> clean = random_operands(g, 201);
    Operands<bfloat16> x_poisoned = clean, gy_poisoned = clean;
    x_poisoned.x[static_cast<std::size_t>(x_size(g) / 2 + 3)] =
        bfloat16(std::numeric_limits<float>::quiet_NaN());
    gy_poisoned.gy[static_cast<std::size_t>(y_size(g) / 3 + 1)] =
        bfloat16(std::numeric_limits<float>::quiet_NaN());
    const Results<bfloat16> expected_x = reference_results(g, x_poisoned);
    const Results<bfloat16> expected_gy = reference_results(g, gy_poisoned);
    REQUIRE(std::count_if(expected_x.y.begin(), expected_x.y.end(), is_nan) > 0);
    REQUIRE(std::count_if(expected_gy.gx.begin(), expected_gy.gx.end(), is_nan) > 0);
    testing::at_each_fast_level([&] {
      const Results<bfloat16> actual_x = dispatched_results(g, x_poisoned);
      const Results<bfloat16> actual_gy = dispatched_results(g, gy_poisoned);
      check_dispatch_close("forward, NaN in x", actual_x.y, expected_x.y);
      check_dispatch_close("backward_weight, NaN in x", actual_x.gw, expected_x.gw);
      check_dispatch_close("backward_data, NaN in gy", actual_gy.gx, expected_gy.gx);
      check_dispatch_close("backward_bias, NaN in gy", actual_gy.gb, expected_gy.gb);
    });
  }
}

// raw::conv2d_* on bfloat16 tensors (outputs bfloat16) against the same calls in float on the same values.
void check_raw_conv2d(const Shape& x_shape, const Shape& w_shape, const Conv2dOptions& options,
                      unsigned seed) {
  INFO("x ", x_shape.str(), " w ", w_shape.str(), " groups ", options.groups);
  const auto pair = [](const Shape& shape, unsigned pair_seed) {
    const Bf16s values = random_values<bfloat16>(shape.numel(), pair_seed);
    return std::pair{Tensor::from_vector(values, shape),
                     Tensor::from_vector(converted<float>(values), shape)};
  };
  const auto [x, x_float] = pair(x_shape, seed);
  const auto [w, w_float] = pair(w_shape, seed + 1);
  const auto [bias, bias_float] = pair(Shape{w_shape[0]}, seed + 2);
  const Tensor y_float = raw::conv2d_forward(x_float, w_float, bias_float, options);
  const auto [gy, gy_float] = pair(y_float.shape(), seed + 3);

  const auto check = [](const char* what, const Tensor& actual, const Tensor& expected) {
    CHECK_MESSAGE(actual.dtype() == DType::BFloat16, what);
    const Bf16s expected_rounded = converted<bfloat16>(expected.to_vector<float>());
    const auto report = matches_reference(actual, expected, dispatch_tolerance(expected_rounded));
    CHECK_MESSAGE(report.ok, what, ": ", report.message);
  };
  check("forward", raw::conv2d_forward(x, w, bias, options), y_float);
  check("backward_data", raw::conv2d_backward_data(gy, w, x_shape, options),
        raw::conv2d_backward_data(gy_float, w_float, x_shape, options));
  check("backward_weight", raw::conv2d_backward_weight(gy, x, w_shape, options),
        raw::conv2d_backward_weight(gy_float, x_float, w_shape, options));
  check("backward_bias", raw::conv2d_backward_bias(gy), raw::conv2d_backward_bias(gy_float));
}

TEST_CASE("conv2d bfloat16: raw::conv2d_* on bfloat16 tensors match float") {
  const Conv2dOptions grouped_options{.stride = {2, 1}, .padding = {1, 1}, .dilation = {1, 2}, .groups = 2};
  check_raw_conv2d(Shape{5, 6, 7, 9}, Shape{4, 3, 3, 3}, grouped_options, 501);
  const Conv2dOptions depthwise{.stride = {2, 2}, .padding = {1, 1}, .dilation = {1, 1}, .groups = 5};
  check_raw_conv2d(Shape{2, 5, 7, 9}, Shape{5, 1, 3, 3}, depthwise, 502);
  check_raw_conv2d(Shape{3, 17, 5, 5}, Shape{33, 17, 1, 1}, Conv2dOptions{}, 503);  // pointwise
}

// Where the float dispatch chooses Winograd, bfloat16 runs the Winograd kernels on its tensors, widening and
// rounding in their own copies (winograd_kernel.hpp): exactly the float kernels' results on the widened
// tensors, rounded once, in either layout. Each shape names the tile sizes the rules give its three
// directions (forward / backward-data / backward-weight; "-" where another algorithm runs); odd channel
// counts and image sizes, so tiles hang over the output and bands and runs end in partial vectors. (Where
// AMX serves a pass, the tiles run it instead: conv2d_amx_test.cpp. Where AVX512-BF16 serves a channels-last
// pass that is strided or has few positions, its dot products run it instead: the tests above. At the AVX2
// level Winograd runs them.)
TEST_CASE("conv2d bfloat16: Winograd runs on the bfloat16 tensors, bit for bit the widened path") {
  using kernels::Bfloat16Conv2dPath;
  using kernels::Conv2dAlgorithm;
  using kernels::Conv2dDirection;
  const std::vector<Conv2dGeometry> shapes = {
      padded(geometry(3, 17, 27, 29, 24, 3, 3), 1, 1),                  // 4x4 / 4x4 / -
      padded(geometry(10, 16, 30, 30, 20, 3, 3), 1, 1),                 // 4x4 / 4x4 / 4x4
      padded(geometry(1, 130, 47, 45, 136, 3, 3), 1, 1),                // 2x2 / 2x2 / 2x2 (past 128 channels)
      padded(geometry(33, 24, 9, 7, 40, 3, 3), 0, 2),                   // 4x4 / 4x4 / -, pads differ
      padded(strided(geometry(4, 16, 64, 66, 32, 3, 3), 2, 2), 1, 1),   // 2x2 / - / 2x2 (NCHW: Direct)
      padded(strided(geometry(17, 20, 63, 61, 24, 3, 3), 2, 2), 1, 1),  // 4x4 / 4x4 / 2x2 (NCHW: Direct)
      padded(strided(geometry(4, 40, 50, 50, 48, 3, 3), 2, 2), 1, 1),   // 2x2 / 2x2 / 2x2
      strided(geometry(6, 16, 41, 39, 18, 3, 3), 2, 2),  // 2x2 / - / 2x2 (NCHW: Direct), no padding
  };
  const auto chooses_winograd = [](const Conv2dGeometry& g, Conv2dDirection direction) {
    const Conv2dAlgorithm a = kernels::choose_conv2d_algorithm(g, direction, kernels::cpu_level());
    if (a != Conv2dAlgorithm::Winograd2x2 && a != Conv2dAlgorithm::Winograd4x4) return false;
    if (!g.channels_last || !kernels::avx512_bf16_usable()) return true;
    // The pair dot products take the strided passes they serve, and the stride-1 ones the direct kernel
    // serves with at most 128 channels a side, below 8192 positions or with at most 16 channels a side.
    const bool direct = kernels::direct_dot_products::serves(g, direction);
    if (g.stride_h == 2) return !direct;
    const std::int64_t widest = std::max(g.in_channels, g.out_channels);
    return !(direct && widest <= 128 && (g.batch * g.out_height() * g.out_width() < 8192 || widest <= 16));
  };
  testing::at_each_fast_level([&] {
    const bool amx = kernels::amx_bf16_usable();
    unsigned seed = 900;
    std::int64_t winograd_passes = 0;
    for (const bool channels_last : {false, true}) {
      for (Conv2dGeometry g : shapes) {
        g.channels_last = channels_last;
        INFO(describe(g), channels_last ? " channels-last" : " nchw");
        const Operands<bfloat16> in = random_operands(g, seed += 5);
        const Results<bfloat16> expected = widened_float_results(g, in);
        std::vector<std::pair<Conv2dDirection, const char*>> checked;
        for (const auto& [direction, name] :
             {std::pair{Conv2dDirection::Forward, "forward"},
              std::pair{Conv2dDirection::BackwardData, "backward_data"},
              std::pair{Conv2dDirection::BackwardWeight, "backward_weight"}}) {
          const bool winograd = kernels::bfloat16_conv2d_path(g, direction) == Bfloat16Conv2dPath::Winograd;
          if (!amx) CHECK_MESSAGE(winograd == chooses_winograd(g, direction), name);
          if (winograd) checked.emplace_back(direction, name);
        }
        winograd_passes += static_cast<std::int64_t>(checked.size());
        for (const int threads : {1, 2}) {
          kernels::set_compute_threads(threads);
          const Results<bfloat16> actual = dispatched_results(g, in);
          for (const auto& [direction, name] : checked) {
            const auto& [a, e] = direction == Conv2dDirection::Forward ? std::pair{&actual.y, &expected.y}
                                 : direction == Conv2dDirection::BackwardData
                                     ? std::pair{&actual.gx, &expected.gx}
                                     : std::pair{&actual.gw, &expected.gw};
            CHECK_MESSAGE(testing::bitwise_equal(*a, *e), name, " on ", threads, " threads");
            if (direction == Conv2dDirection::Forward)
              CHECK_MESSAGE(testing::bitwise_equal(actual.y_no_bias, expected.y_no_bias), "without bias");
          }
        }
      }
    }
    // The shapes' comments: 20 Winograd passes channels-last, 17 NCHW (the strided weight gradients of up to
    // 32 input channels run Direct there, algorithm.cpp's rule 5), where no AMX takes any; of the
    // channels-last ones, AVX512-BF16's dot products take 14: the four strided shapes' forwards and weight
    // gradients, the two of their backward data passes Winograd had, and four passes below 8192 positions
    // (17 -> 24's and 24 -> 40's forward and backward data).
    if (!amx) CHECK(winograd_passes == 17 + 20 - (kernels::avx512_bf16_usable() ? 14 : 0));
  });
}

}  // namespace

}  // namespace kernels_conv2d_bf16_test
