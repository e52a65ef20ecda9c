// Tests of the fast conv2d kernels (kernels/conv2d/algorithm.hpp, gemm_conv.cpp, pointwise.cpp,
// depthwise_kernel.hpp, bias_kernel.hpp, direct_kernel.hpp, direct_channels_kernel.hpp, winograd_kernel.hpp)
// against the reference kernels.
//
// Every algorithm that supports a shape is forced on it, at every CPU level the machine has, in all three
// directions, and compared with reference::conv2d_* in float. The reference accumulates in double, so it is
// (almost always) the correctly rounded answer; the fast kernels sum in float in another order, so the
// tolerance is stated relative to the output's magnitude:
//
//   |fast - reference| <= 1e-4 * max|reference| + 1e-4 * |reference|      (float32)
//
// The shapes are the odd ones: batch 1, 1x1 spatial, 1x1 kernels at stride 1 and 2, channels 3/5/17,
// stride 2, padding 0/1/2, dilation 2, groups 2, depthwise, non-square inputs and kernels (3x5), row
// lengths that are not multiples of the vector width, and batches that split into several chunks.
// Dispatch is run on 1 and 2 threads and must give the same bits.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "core/error.hpp"
#include "kernels/conv2d/algorithm.hpp"
#include "kernels/conv2d/conv2d.hpp"
#include "kernels/cpu_level.hpp"
#include "kernels/parallel.hpp"
#include "tests/support/fast_kernel_testing.hpp"
#include "tests/support/matches_reference.hpp"

namespace kernels_conv2d_fast_test {

namespace {

using kiln::Device;
using kiln::kernels::Conv2dAlgorithm;
using kiln::kernels::Conv2dDirection;
using kiln::kernels::Conv2dGeometry;
using kiln::kernels::CpuLevel;
using kiln::testing::bitwise_equal;
using kiln::testing::DispatchGuard;
using kiln::testing::fast_levels;
using kiln::testing::random_floats;
using kiln::testing::Tolerance;
namespace kernels = kiln::kernels;
using Floats = std::vector<float>;

// ---- setup ----------------------------------------------------------------------------------------------

Conv2dGeometry geometry(std::int64_t batch, std::int64_t in_channels, std::int64_t height, std::int64_t width,
                        std::int64_t out_channels, std::int64_t kernel_h, std::int64_t kernel_w) {
  Conv2dGeometry g;
  g.batch = batch;
  g.in_channels = in_channels;
  g.in_height = height;
  g.in_width = width;
  g.out_channels = out_channels;
  g.kernel_h = kernel_h;
  g.kernel_w = kernel_w;
  return g;
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

// The odd shapes every algorithm is run on (each algorithm on those it supports).
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
      // Strided depthwise backward-data runs phase by phase (depthwise_channels_kernel.hpp's PhasePlan):
      // a phase with no taps (1x1 at stride 2), offsets before and after gy, stride 3.
      grouped(dilated(padded(strided(geometry(2, 19, 13, 11, 19, 3, 3), 3, 2), 2, 3), 2, 1), 19),
      grouped(strided(geometry(1, 16, 7, 8, 16, 1, 1), 2, 2), 16),                // 1x1 kernel, stride 2
      grouped(padded(strided(geometry(2, 16, 9, 6, 16, 5, 5), 2, 2), 3, 3), 16),  // pad 3 with a 5x5 kernel
      grouped(padded(geometry(2, 4, 12, 40, 4, 5, 5), 2, 2), 4),                  // depthwise 5x5, rows of 40
      // Depthwise 3x3 at stride 1 down the rows runs 4 output rows at a time (depthwise_kernel.hpp's
      // forward_plane_rows): 7 rows end in a run of 3, and 6 rows at stride 2 and dilation 2 across in a run
      // of 2 (phases along the rows' columns).
      grouped(padded(geometry(2, 6, 7, 9, 6, 3, 3), 1, 1), 6),
      grouped(dilated(padded(strided(geometry(2, 5, 8, 19, 5, 3, 3), 1, 2), 0, 2), 1, 2), 5),
      // DepthwiseChannels transposes NCHW rows of 16 and 32 straight into its bordered buffers (20
      // channels: a whole block and a part one), at stride 1 and 2.
      grouped(padded(geometry(2, 20, 5, 16, 20, 3, 3), 1, 1), 20),
      grouped(padded(strided(geometry(3, 20, 7, 32, 20, 3, 3), 2, 2), 1, 1), 20),
      // Depthwise with 17 channels and 272-position planes: NCHW runs Depthwise forward and backward-data,
      // channels-last DepthwiseChannels (algorithm.cpp, rule 2), and the two must give the same bits.
      grouped(padded(geometry(2, 17, 16, 17, 17, 3, 3), 1, 1), 17),
      // DepthwiseChannels' units of several channel blocks (block_groups): 100 channels in a whole group and
      // a short one ending in a partial block.
      grouped(padded(geometry(9, 100, 5, 4, 100, 3, 3), 1, 1), 100),
      grouped(padded(geometry(2, 3, 6, 6, 6, 3, 3), 1, 1), 3),  // groups = C_in, 2 outputs per group
      grouped(geometry(2, 4, 5, 5, 6, 1, 1), 2),                // pointwise, groups 2
      padded(geometry(5, 3, 32, 32, 4, 3, 3), 1, 1),            // weight gradient in 2 chunks (4 + 1)
      padded(geometry(19, 3, 8, 8, 5, 3, 3), 1, 1),             // forward in 2 chunks (16 + 3 images)
      padded(geometry(9, 2, 24, 24, 3, 3, 3), 1, 1),            // weight gradient in 2 chunks (7 + 2)
      geometry(300, 3, 2, 2, 5, 1, 1),                          // pointwise 2x2: 2 forward chunks
      geometry(3, 4, 33, 33, 3, 1, 1),                          // pointwise, one image per chunk
      padded(geometry(40, 16, 16, 16, 17, 3, 3), 1, 1),         // direct: 4 chunks, 17 outputs (a part tile)
      dilated(padded(geometry(2, 5, 9, 8, 7, 3, 3), 0, 2), 1, 2),   // pad 0 along h, pad 2 dilation 2 along w
      padded(geometry(1, 9, 5, 5, 10, 5, 5), 2, 1),                 // 5x5 kernel, batch 1, pads differ
      padded(geometry(2, 4, 5, 6, 3, 1, 1), 1, 2),                  // padding wider than the kernel's reach
      padded(strided(geometry(3, 8, 11, 9, 9, 3, 3), 3, 2), 2, 1),  // stride 3 x 2, pad 2 x 1
      // DirectChannels' forward tiles step along a row at a compile-time stride of 1 or 2, else a runtime
      // one: stride 3 along the rows.
      padded(strided(geometry(2, 6, 10, 17, 19, 3, 3), 2, 3), 1, 1),
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
      // Wide enough for DirectChannels' 32-channel panels (direct_channels_kernel.hpp):
      padded(geometry(8, 40, 13, 13, 37, 3, 3), 1, 1),  // dispatch picks it; 32 + 5 outputs, rows of 13
      padded(geometry(2, 33, 5, 6, 48, 3, 3), 1, 1),    // rows of 6, shorter than a tile
      grouped(dilated(padded(geometry(2, 64, 10, 9, 64, 3, 3), 2, 2), 2, 2),
              2),                                                      // 2 groups of 32, dilation 2
      padded(strided(geometry(2, 32, 17, 17, 40, 3, 3), 2, 2), 1, 1),  // stride 2: rows of 9
      // Winograd's tiles (winograd_kernel.hpp) hanging over odd outputs, and its chunks:
      padded(geometry(3, 20, 7, 9, 18, 3, 3), 0, 2),  // 5 x 11 outputs: pad 0 down, 2 across
      padded(geometry(2, 17, 6, 5, 16, 3, 3), 3, 1),  // pad 3: forward and weight only
      // Winograd at stride 2: 4 x 6 outputs of a 9 x 14 input without padding, whose last column no patch
      // reaches; 5 x 5 outputs (tiles hanging over) with pad 2 (forward and weight only); and backward-data's
      // tiles of gx (4x4 and 8x8) hanging over a 10 x 13 input, 16 input channels (the narrow tile).
      strided(geometry(3, 20, 9, 14, 18, 3, 3), 2, 2),
      padded(strided(geometry(2, 17, 7, 8, 16, 3, 3), 2, 2), 2, 2),
      padded(strided(geometry(3, 16, 10, 13, 20, 3, 3), 2, 2), 1, 1),
      // Winograd F(2x2, 3x3)'s weight gradient at 16x16 outputs (64 tiles an image): blocks of 4 images,
      // chunks of 8, so 37 images are four chunks of two blocks and one of 4 + 1 images.
      padded(geometry(37, 16, 16, 16, 33, 3, 3), 1, 1),
      // ... and F(4x4, 3x3)'s at 32x32 (64 tiles an image): chunks of 5 images, blocks of 4 + 1.
      padded(geometry(20, 4, 32, 32, 5, 3, 3), 1, 1),
      // Winograd's wide layers, whose products go as one GEMM per position (kWideUFloats): 401 input
      // channels (a part vector) into 500 (a part panel), and backward-data's 500 into 401, at stride 1
      // and 2.
      padded(geometry(2, 401, 3, 5, 500, 3, 3), 1, 1),
      padded(strided(geometry(2, 401, 7, 9, 500, 3, 3), 2, 2), 1, 1),
  };
}

// ---- buffers --------------------------------------------------------------------------------------------

std::int64_t x_size(const Conv2dGeometry& g) { return g.batch * g.in_channels * g.in_height * g.in_width; }
std::int64_t w_size(const Conv2dGeometry& g) {
  return g.out_channels * g.in_channels_per_group() * g.kernel_h * g.kernel_w;
}
std::int64_t y_size(const Conv2dGeometry& g) {
  return g.batch * g.out_channels * g.out_height() * g.out_width();
}

// Outputs start as NaN: an element a kernel forgets to write, or adds into, shows up.
Floats nan_floats(std::int64_t count) {
  return Floats(static_cast<std::size_t>(count), std::numeric_limits<float>::quiet_NaN());
}

struct Operands {
  Floats x, w, bias, gy;
  explicit Operands(const Conv2dGeometry& g)
      : x(random_floats<std::mt19937>(x_size(g), 1)),
        w(random_floats<std::mt19937>(w_size(g), 2)),
        bias(random_floats<std::mt19937>(g.out_channels, 3)),
        gy(random_floats<std::mt19937>(y_size(g), 4)) {}
};

// The three results of one convolution (forward with bias, backward-data, backward-weight) and the bias
// gradient.
struct Results {
  Floats y, gx, gw, gb;
};

Results reference_results(const Conv2dGeometry& g, const Operands& in) {
  Results out{nan_floats(y_size(g)), nan_floats(x_size(g)), nan_floats(w_size(g)),
              nan_floats(g.out_channels)};
  kernels::reference::conv2d_forward(g, in.x.data(), in.w.data(), in.bias.data(), out.y.data());
  kernels::reference::conv2d_backward_data(g, in.gy.data(), in.w.data(), out.gx.data());
  kernels::reference::conv2d_backward_weight(g, in.gy.data(), in.x.data(), out.gw.data());
  kernels::reference::conv2d_backward_bias(g, in.gy.data(), out.gb.data());
  return out;
}

Results dispatched_results(const Conv2dGeometry& g, const Operands& in) {
  Results out{nan_floats(y_size(g)), nan_floats(x_size(g)), nan_floats(w_size(g)),
              nan_floats(g.out_channels)};
  const Device cpu = Device::cpu();
  kernels::conv2d_forward(cpu, g, in.x.data(), in.w.data(), in.bias.data(), out.y.data());
  kernels::conv2d_backward_data(cpu, g, in.gy.data(), in.w.data(), out.gx.data());
  kernels::conv2d_backward_weight(cpu, g, in.gy.data(), in.x.data(), out.gw.data());
  kernels::conv2d_backward_bias(cpu, g, in.gy.data(), out.gb.data());
  return out;
}

// The float32 tolerance above: 1e-4 of the output's largest magnitude, plus 1e-4 relative.
Tolerance magnitude_tolerance(const Floats& expected) {
  double largest = 0.0;
  for (float v : expected) largest = std::max(largest, std::fabs(static_cast<double>(v)));
  return Tolerance{1e-4 * std::max(largest, 1e-2), 1e-4};
}

void check_close(const Floats& actual, const Floats& expected, const std::string& what) {
  REQUIRE(actual.size() == expected.size());
  const auto report = kiln::testing::matches_reference(actual.data(), expected.data(),
                                                       static_cast<std::int64_t>(actual.size()),
                                                       magnitude_tolerance(expected));
  CHECK_MESSAGE(report.ok, what, ": ", report.message);
}

// The same [n, c, h, w] values stored channels-last ([n, h, w, c]).
Floats channels_last(const Floats& nchw, std::int64_t n, std::int64_t c, std::int64_t h, std::int64_t w) {
  Floats nhwc(nchw.size());
  for (std::int64_t b = 0; b < n; ++b)
    for (std::int64_t ch = 0; ch < c; ++ch)
      for (std::int64_t p = 0; p < h * w; ++p)
        nhwc[static_cast<std::size_t>((b * h * w + p) * c + ch)] =
            nchw[static_cast<std::size_t>((b * c + ch) * h * w + p)];
  return nhwc;
}
Floats x_channels_last(const Conv2dGeometry& g, const Floats& x) {
  return channels_last(x, g.batch, g.in_channels, g.in_height, g.in_width);
}
Floats y_channels_last(const Conv2dGeometry& g, const Floats& y) {
  return channels_last(y, g.batch, g.out_channels, g.out_height(), g.out_width());
}
Conv2dGeometry with_channels_last(Conv2dGeometry g) {
  g.channels_last = true;
  return g;
}

const Conv2dAlgorithm kFastAlgorithms[] = {
    Conv2dAlgorithm::Im2colGemm,     Conv2dAlgorithm::Pointwise,         Conv2dAlgorithm::Depthwise,
    Conv2dAlgorithm::Winograd2x2,    Conv2dAlgorithm::Winograd4x4,       Conv2dAlgorithm::Direct,
    Conv2dAlgorithm::DirectChannels, Conv2dAlgorithm::DepthwiseChannels, Conv2dAlgorithm::UnrolledGemm,
    Conv2dAlgorithm::TapGemm};

// The passes `algorithm` supports on g at `level`, forced (conv2d_*_using), each into a NaN-filled buffer;
// a pass it does not support stays empty. x and gy are the operands as g lays them out (NCHW, or
// channels-last when g.channels_last).
Results forced_results(Conv2dAlgorithm algorithm, const Conv2dGeometry& g, CpuLevel level, const Floats& x,
                       const Operands& in, const Floats& gy) {
  const auto supports = [&](Conv2dDirection direction) {
    return kernels::conv2d_algorithm_supports(algorithm, g, direction, level);
  };
  Results out;
  if (supports(Conv2dDirection::Forward)) {
    out.y = nan_floats(y_size(g));
    kernels::conv2d_forward_using(algorithm, g, x.data(), in.w.data(), in.bias.data(), out.y.data());
  }
  if (supports(Conv2dDirection::BackwardData)) {
    out.gx = nan_floats(x_size(g));
    kernels::conv2d_backward_data_using(algorithm, g, gy.data(), in.w.data(), out.gx.data());
  }
  if (supports(Conv2dDirection::BackwardWeight)) {
    out.gw = nan_floats(w_size(g));
    kernels::conv2d_backward_weight_using(algorithm, g, gy.data(), x.data(), out.gw.data());
  }
  return out;
}
Results forced_results(Conv2dAlgorithm algorithm, const Conv2dGeometry& g, CpuLevel level,
                       const Operands& in) {
  return forced_results(algorithm, g, level, in.x, in, in.gy);
}

}  // namespace

// ---- tests ----------------------------------------------------------------------------------------------

TEST_CASE("conv2d fast: every algorithm forced on every odd shape it supports matches the reference") {
  DispatchGuard guard;
  for (CpuLevel level : fast_levels()) {
    kernels::set_cpu_level(level);
    for (const Conv2dGeometry& g : odd_shapes()) {
      const Operands in(g);
      const Results expected = reference_results(g, in);
      for (Conv2dAlgorithm algorithm : kFastAlgorithms) {
        const std::string what = std::string(kernels::cpu_level_name(level)) + " " +
                                 std::string(kernels::conv2d_algorithm_name(algorithm)) + " " + describe(g);
        const Results forced = forced_results(algorithm, g, level, in);
        if (!forced.y.empty()) check_close(forced.y, expected.y, what + " forward");
        if (!forced.gx.empty()) check_close(forced.gx, expected.gx, what + " backward_data");
        if (!forced.gw.empty()) check_close(forced.gw, expected.gw, what + " backward_weight");
      }
    }
  }
}

TEST_CASE("conv2d fast: forward without bias matches the reference for every algorithm") {
  DispatchGuard guard;
  for (CpuLevel level : fast_levels()) {
    kernels::set_cpu_level(level);
    for (const Conv2dGeometry& g : odd_shapes()) {
      const Operands in(g);
      Floats expected = nan_floats(y_size(g));
      kernels::reference::conv2d_forward(g, in.x.data(), in.w.data(), static_cast<const float*>(nullptr),
                                         expected.data());
      for (Conv2dAlgorithm algorithm : kFastAlgorithms) {
        if (!kernels::conv2d_algorithm_supports(algorithm, g, Conv2dDirection::Forward, level)) continue;
        Floats actual = nan_floats(y_size(g));
        kernels::conv2d_forward_using(algorithm, g, in.x.data(), in.w.data(), nullptr, actual.data());
        check_close(actual, expected,
                    std::string(kernels::conv2d_algorithm_name(algorithm)) + " " + describe(g));
      }
    }
  }
}

TEST_CASE("conv2d fast: dispatch matches the reference, and 1 and 2 threads give the same bits") {
  DispatchGuard guard;
  for (CpuLevel level : fast_levels()) {
    kernels::set_cpu_level(level);
    for (const Conv2dGeometry& g : odd_shapes()) {
      const Operands in(g);
      const Results expected = reference_results(g, in);
      kernels::set_compute_threads(1);
      const Results one_thread = dispatched_results(g, in);
      kernels::set_compute_threads(2);
      const Results two_threads = dispatched_results(g, in);
      const std::string what = std::string(kernels::cpu_level_name(level)) + " " + describe(g);
      check_close(one_thread.y, expected.y, what + " forward");
      check_close(one_thread.gx, expected.gx, what + " backward_data");
      check_close(one_thread.gw, expected.gw, what + " backward_weight");
      check_close(one_thread.gb, expected.gb, what + " backward_bias");
      CHECK_MESSAGE(bitwise_equal(one_thread.y, two_threads.y), what,
                    " forward differs between 1 and 2 threads");
      CHECK_MESSAGE(bitwise_equal(one_thread.gx, two_threads.gx), what, " backward_data differs");
      CHECK_MESSAGE(bitwise_equal(one_thread.gw, two_threads.gw), what, " backward_weight differs");
      CHECK_MESSAGE(bitwise_equal(one_thread.gb, two_threads.gb), what, " backward_bias differs");
    }
  }
}

TEST_CASE("conv2d fast: every forced algorithm gives the same bits on 1 and 2 threads") {
  DispatchGuard guard;
  for (CpuLevel level : fast_levels()) {
    kernels::set_cpu_level(level);
    for (const Conv2dGeometry& g : odd_shapes()) {
      const Operands in(g);
      for (Conv2dAlgorithm algorithm : kFastAlgorithms) {
        Results by_threads[2];
        for (int threads : {1, 2}) {
          kernels::set_compute_threads(threads);
          by_threads[threads - 1] = forced_results(algorithm, g, level, in);
        }
        const std::string what =
            std::string(kernels::conv2d_algorithm_name(algorithm)) + " on " + describe(g);
        CHECK_MESSAGE(bitwise_equal(by_threads[0].y, by_threads[1].y), what, ": forward differs");
        CHECK_MESSAGE(bitwise_equal(by_threads[0].gx, by_threads[1].gx), what, ": backward_data differs");
        CHECK_MESSAGE(bitwise_equal(by_threads[0].gw, by_threads[1].gw), what, ": backward_weight differs");
      }
    }
  }
}

// The odd shapes have few channels. TapGemm's products reduce over C_in (forward), C_out (backward-data) or
// the batch's positions (weight gradient), so its layers of rule 3 also cut their GEMMs' depth into blocks
// (256 floats), and F(4x4, 3x3) takes layers past 128 channels whose planes its tiles fit. These are such
// layers, small in batch and plane, forced in both layouts against the reference; TapGemm's are what
// dispatch chooses.
void check_wide_layer(Conv2dAlgorithm algorithm, const Conv2dGeometry& g, CpuLevel level) {
  const Operands in(g);
  const Results expected = reference_results(g, in);
  for (const Conv2dGeometry& layout : {g, with_channels_last(g)}) {
    const std::string what = std::string(kernels::cpu_level_name(level)) + " " +
                             std::string(kernels::conv2d_algorithm_name(algorithm)) + " " + describe(layout) +
                             (layout.channels_last ? " channels-last" : "");
    const Floats x = layout.channels_last ? x_channels_last(g, in.x) : in.x;
    const Floats gy = layout.channels_last ? y_channels_last(g, in.gy) : in.gy;
    const Results forced = forced_results(algorithm, layout, level, x, in, gy);
    check_close(forced.y, layout.channels_last ? y_channels_last(g, expected.y) : expected.y,
                what + " forward");
    check_close(forced.gx, layout.channels_last ? x_channels_last(g, expected.gx) : expected.gx,
                what + " backward_data");
    check_close(forced.gw, expected.gw, what + " backward_weight");
  }
}

TEST_CASE("conv2d fast: TapGemm and F(4x4, 3x3) on wide layers match the reference") {
  DispatchGuard guard;
  const Conv2dGeometry tap_gemm_layers[] = {
      padded(geometry(8, 272, 3, 3, 264, 3, 3), 1, 1),                 // a 3x3 plane, C past a depth block
      padded(strided(geometry(9, 136, 6, 6, 260, 3, 3), 2, 2), 1, 1),  // stride 2 onto 3x3
      padded(strided(geometry(8, 264, 5, 4, 132, 3, 3), 2, 2), 1, 1),  // 5x4 onto 3x2
      dilated(padded(geometry(8, 130, 5, 5, 140, 3, 3), 2, 2), 2, 2),  // 5x5 at dilation 2
  };
  const Conv2dGeometry winograd_layers[] = {
      padded(geometry(2, 272, 8, 8, 264, 3, 3), 1, 1),  // 8x8, two tiles a side
      padded(geometry(1, 260, 7, 7, 300, 3, 3), 1, 1),  // 7x7: the tiles overhang by a column and a row
  };
  for (CpuLevel level : fast_levels()) {
    kernels::set_cpu_level(level);
    for (const Conv2dGeometry& g : tap_gemm_layers) {
      for (const Conv2dGeometry& layout : {g, with_channels_last(g)}) {
        for (Conv2dDirection direction :
             {Conv2dDirection::Forward, Conv2dDirection::BackwardData, Conv2dDirection::BackwardWeight}) {
          CHECK_MESSAGE(
              kernels::choose_conv2d_algorithm(layout, direction, level) == Conv2dAlgorithm::TapGemm,
              describe(layout), " ", kernels::conv2d_direction_name(direction));
        }
      }
      check_wide_layer(Conv2dAlgorithm::TapGemm, g, level);
    }
    for (const Conv2dGeometry& g : winograd_layers) check_wide_layer(Conv2dAlgorithm::Winograd4x4, g, level);
  }
}

// Channels-last activations (Conv2dGeometry::channels_last): Winograd and the reference read and write them
// themselves, every other algorithm runs behind dispatch.cpp's conversion to NCHW and back. Either way the
// sums are the NCHW run's, so the results are its bits, moved.
TEST_CASE("conv2d fast: every algorithm on channels-last activations gives its NCHW bits, moved") {
  DispatchGuard guard;
  for (CpuLevel level : fast_levels()) {
    kernels::set_cpu_level(level);
    for (const Conv2dGeometry& g : odd_shapes()) {
      const Operands in(g);
      const Conv2dGeometry last = with_channels_last(g);
      const Floats x_last = x_channels_last(g, in.x), gy_last = y_channels_last(g, in.gy);
      for (Conv2dAlgorithm algorithm : kFastAlgorithms) {
        const std::string what = std::string(kernels::cpu_level_name(level)) + " " +
                                 std::string(kernels::conv2d_algorithm_name(algorithm)) + " " + describe(g);
        const Results nchw = forced_results(algorithm, g, level, in);
        const Results moved = forced_results(algorithm, last, level, x_last, in, gy_last);
        if (!nchw.y.empty())
          CHECK_MESSAGE(bitwise_equal(moved.y, y_channels_last(g, nchw.y)), what, " forward");
        if (!nchw.gx.empty())
          CHECK_MESSAGE(bitwise_equal(moved.gx, x_channels_last(g, nchw.gx)), what, " backward_data");
        if (!nchw.gw.empty()) CHECK_MESSAGE(bitwise_equal(moved.gw, nchw.gw), what, " backward_weight");
      }
    }
  }
}

TEST_CASE("conv2d fast: the channels-last reference and dispatch give the NCHW reference's bits, moved") {
  DispatchGuard guard;
  for (const Conv2dGeometry& g : odd_shapes()) {
    const Operands in(g);
    const Results expected = reference_results(g, in);
    const Conv2dGeometry last = with_channels_last(g);
    Operands moved = in;
    moved.x = x_channels_last(g, in.x);
    moved.gy = y_channels_last(g, in.gy);
    const Results reference_last = reference_results(last, moved);
    CHECK_MESSAGE(bitwise_equal(reference_last.y, y_channels_last(g, expected.y)), describe(g), " forward");
    CHECK_MESSAGE(bitwise_equal(reference_last.gx, x_channels_last(g, expected.gx)), describe(g),
                  " backward_data");
    CHECK_MESSAGE(bitwise_equal(reference_last.gw, expected.gw), describe(g), " backward_weight");
    CHECK_MESSAGE(bitwise_equal(reference_last.gb, expected.gb), describe(g), " backward_bias");
    for (CpuLevel level : fast_levels()) {  // the chosen algorithm, channels-last
      kernels::set_cpu_level(level);
      const Results nchw = dispatched_results(g, in), dispatched_last = dispatched_results(last, moved);
      const std::string what = std::string(kernels::cpu_level_name(level)) + " " + describe(g);
      CHECK_MESSAGE(bitwise_equal(dispatched_last.y, y_channels_last(g, nchw.y)), what, " forward");
      CHECK_MESSAGE(bitwise_equal(dispatched_last.gx, x_channels_last(g, nchw.gx)), what, " backward_data");
      CHECK_MESSAGE(bitwise_equal(dispatched_last.gw, nchw.gw), what, " backward_weight");
      check_close(dispatched_last.gb, expected.gb, what + " backward_bias");
    }
  }
}

TEST_CASE("conv2d fast: the Reference CPU level runs the reference kernels exactly") {
  DispatchGuard guard;
  kernels::set_cpu_level(CpuLevel::Reference);
  const Conv2dGeometry g = padded(geometry(2, 3, 7, 5, 4, 3, 3), 1, 1);
  CHECK(kernels::choose_conv2d_algorithm(g, Conv2dDirection::Forward, CpuLevel::Reference) ==
        Conv2dAlgorithm::Reference);
  const Operands in(g);
  const Results expected = reference_results(g, in);
  const Results actual = dispatched_results(g, in);
  CHECK(bitwise_equal(actual.y, expected.y));
  CHECK(bitwise_equal(actual.gx, expected.gx));
  CHECK(bitwise_equal(actual.gw, expected.gw));
  CHECK(bitwise_equal(actual.gb, expected.gb));
}

TEST_CASE("conv2d fast: double goes through dispatch to the reference kernels") {
  const Conv2dGeometry g = grouped(padded(geometry(2, 4, 5, 6, 4, 3, 3), 1, 1), 2);
  std::vector<double> x(static_cast<std::size_t>(x_size(g))), w(static_cast<std::size_t>(w_size(g)));
  std::vector<double> gy(static_cast<std::size_t>(y_size(g))), bias{0.5, -0.25, 1.0, 2.0};
  for (std::size_t i = 0; i < x.size(); ++i) x[i] = std::sin(0.3 * static_cast<double>(i));
  for (std::size_t i = 0; i < w.size(); ++i) w[i] = std::cos(0.7 * static_cast<double>(i));
  for (std::size_t i = 0; i < gy.size(); ++i) gy[i] = std::sin(1.1 * static_cast<double>(i) + 0.2);
  std::vector<double> y(gy.size()), y_ref(gy.size()), gx(x.size()), gx_ref(x.size()), gw(w.size()),
      gw_ref(w.size());
  const Device cpu = Device::cpu();
  kernels::conv2d_forward(cpu, g, x.data(), w.data(), bias.data(), y.data());
  kernels::reference::conv2d_forward(g, x.data(), w.data(), bias.data(), y_ref.data());
  kernels::conv2d_backward_data(cpu, g, gy.data(), w.data(), gx.data());
  kernels::reference::conv2d_backward_data(g, gy.data(), w.data(), gx_ref.data());
  kernels::conv2d_backward_weight(cpu, g, gy.data(), x.data(), gw.data());
  kernels::reference::conv2d_backward_weight(g, gy.data(), x.data(), gw_ref.data());
  CHECK(y == y_ref);
  CHECK(gx == gx_ref);
  CHECK(gw == gw_ref);
}

TEST_CASE("conv2d fast: forcing an algorithm on a shape it does not support throws") {
  const Conv2dGeometry g = padded(geometry(1, 3, 5, 5, 4, 3, 3), 1, 1);
  const Operands in(g);
  Floats y = nan_floats(y_size(g));
  CHECK_THROWS_AS(kernels::conv2d_forward_using(Conv2dAlgorithm::Pointwise, g, in.x.data(), in.w.data(),
                                                nullptr, y.data()),
                  kiln::Error);
  // Winograd's backward-data is the forward through the flipped kernel, which needs pad <= 2 at stride 1
  // and pad 1 at stride 2.
  for (const Conv2dGeometry& beyond : {strided(geometry(1, 3, 5, 5, 4, 3, 3), 2, 2),
                                       padded(strided(geometry(1, 3, 5, 5, 4, 3, 3), 2, 2), 2, 2),
                                       padded(geometry(1, 3, 5, 5, 4, 3, 3), 3, 3)}) {
    const Operands beyond_in(beyond);
    Floats gx = nan_floats(x_size(beyond));
    for (Conv2dAlgorithm winograd : {Conv2dAlgorithm::Winograd2x2, Conv2dAlgorithm::Winograd4x4}) {
      CHECK_THROWS_AS(kernels::conv2d_backward_data_using(winograd, beyond, beyond_in.gy.data(),
                                                          beyond_in.w.data(), gx.data()),
                      kiln::Error);
    }
  }
  CHECK_THROWS_AS(kernels::conv2d_forward_using(Conv2dAlgorithm::Depthwise, g, in.x.data(), in.w.data(),
                                                nullptr, y.data()),
                  kiln::Error);
}

TEST_CASE("conv2d fast: the algorithm chosen for the ResNet-20, VGG and MobileNet layers") {
  struct Layer {
    Conv2dGeometry g;
    Conv2dAlgorithm forward, backward_data, backward_weight;
  };
  using enum Conv2dAlgorithm;
  // The stride-2 layers Winograd takes run its weight gradient on Direct up to 32 input channels (rule 5;
  // channels-last tensors keep F(2x2, 3x3), checked below).
  const Layer layers[] = {
      {padded(geometry(128, 16, 32, 32, 16, 3, 3), 1, 1), Winograd4x4, Winograd4x4, Winograd4x4},
      {padded(strided(geometry(128, 16, 32, 32, 32, 3, 3), 2, 2), 1, 1), Winograd4x4, Winograd4x4, Direct},
      {padded(strided(geometry(32, 16, 32, 32, 32, 3, 3), 2, 2), 1, 1), Winograd4x4, DirectChannels,
       Direct},  // stride 2, batch 32: backward-data with 16 input channels
      {padded(geometry(128, 32, 16, 16, 32, 3, 3), 1, 1), Winograd4x4, Winograd4x4, Winograd4x4},
      {padded(strided(geometry(128, 32, 16, 16, 64, 3, 3), 2, 2), 1, 1), Winograd2x2, Winograd2x2,
       Direct},  // stride 2 onto 64 channels: F(2x2, 3x3) forward and backward-data
      {padded(strided(geometry(64, 64, 24, 24, 128, 3, 3), 2, 2), 1, 1), Winograd2x2, Winograd2x2,
       Winograd2x2},  // 64 input channels: F(2x2, 3x3)'s weight gradient
      {padded(strided(geometry(1, 32, 16, 16, 64, 3, 3), 2, 2), 1, 1), Im2colGemm, Im2colGemm,
       Im2colGemm},  // stride 2, batch 1: 64 positions
      {padded(geometry(128, 64, 8, 8, 64, 3, 3), 1, 1), Winograd4x4, Winograd4x4, Winograd4x4},
      {padded(geometry(128, 128, 8, 8, 128, 3, 3), 1, 1), Winograd4x4, Winograd4x4,
       Winograd4x4},  // 128 channels
      {padded(geometry(128, 128, 8, 8, 256, 3, 3), 1, 1), Winograd4x4, Winograd4x4,
       Winograd4x4},  // 256 channels: F(4x4)'s tiles cover the plane exactly
      {padded(geometry(64, 256, 10, 10, 256, 3, 3), 1, 1), Winograd2x2, Winograd2x2,
       Winograd2x2},  // F(4x4)'s tiles would overhang a 10x10 plane by a fifth
      {padded(geometry(128, 8, 16, 16, 32, 3, 3), 1, 1), DirectChannels, Direct, Direct},  // gx: 8 channels
      {padded(geometry(32, 64, 8, 8, 64, 3, 3), 1, 1), Winograd4x4, Winograd4x4,
       Winograd2x2},  // 2048 positions: too few for F(4x4, 3x3)'s weight gradient
      {padded(geometry(16, 64, 8, 8, 64, 3, 3), 1, 1), Winograd2x2, Winograd2x2, Winograd2x2},  // 1024
      {padded(geometry(8, 64, 8, 8, 64, 3, 3), 1, 1), Winograd2x2, Winograd2x2,
       Winograd2x2},                                                                        // 512 positions
      {padded(geometry(4, 64, 8, 8, 64, 3, 3), 1, 1), Im2colGemm, Im2colGemm, Im2colGemm},  // 256 positions
      {padded(geometry(16, 32, 8, 8, 32, 3, 3), 1, 1), DirectChannels, DirectChannels,
       Im2colGemm},  // 1024 positions of 32 channels: narrower than F(2x2, 3x3) takes there
      {padded(geometry(128, 256, 2, 2, 256, 3, 3), 1, 1), UnrolledGemm, UnrolledGemm,
       UnrolledGemm},  // ResNet-18's third stage on 32x32 images: 2x2 planes, every pair a tap
      {padded(geometry(128, 512, 1, 1, 512, 3, 3), 1, 1), UnrolledGemm, UnrolledGemm,
       UnrolledGemm},  // its fourth: 1x1 planes (dispatch crops the kernel to its centre first: Pointwise)
      {padded(geometry(128, 32, 2, 2, 32, 3, 3), 1, 1), UnrolledGemm, UnrolledGemm, UnrolledGemm},
      {padded(geometry(8, 64, 2, 2, 64, 3, 3), 1, 1), Im2colGemm, Im2colGemm,
       Im2colGemm},  // batch 8: building U would cost what the batch does
      {padded(strided(geometry(128, 256, 4, 4, 512, 3, 3), 2, 2), 1, 1), TapGemm, TapGemm,
       TapGemm},  // 4x4 onto 2x2: 16 input positions, too many for U
      {padded(geometry(64, 512, 3, 3, 512, 3, 3), 1, 1), TapGemm, TapGemm,
       TapGemm},  // ResNet-18's fourth stage on 96x96 photos: Winograd's tiles would overhang the 3x3 plane
      {padded(strided(geometry(64, 256, 6, 6, 512, 3, 3), 2, 2), 1, 1), TapGemm, TapGemm, TapGemm},
      {padded(geometry(128, 128, 4, 4, 128, 3, 3), 1, 1), Winograd4x4, Winograd4x4,
       Winograd2x2},  // an even plane Winograd's tiles fit, below 256 channels
      {padded(geometry(128, 256, 4, 4, 256, 3, 3), 1, 1), TapGemm, TapGemm, TapGemm},  // 256 channels
      {padded(geometry(64, 256, 6, 6, 256, 3, 3), 1, 1), TapGemm, TapGemm,
       Winograd2x2},  // 6x6: Winograd's weight gradient keeps it
      {padded(geometry(64, 512, 6, 6, 512, 3, 3), 1, 1), Winograd2x2, Winograd2x2,
       Winograd2x2},  // 512 at 6x6
      {padded(geometry(64, 512, 7, 7, 512, 3, 3), 1, 1), Winograd4x4, Winograd4x4,
       Winograd2x2},  // 7x7: F(4x4)'s tiles overhang it by a seventh
      {padded(geometry(64, 64, 3, 3, 64, 3, 3), 1, 1), Winograd2x2, Winograd2x2, Winograd2x2},  // 64 channels
      {padded(geometry(4, 512, 3, 3, 512, 3, 3), 1, 1), Im2colGemm, Im2colGemm, Im2colGemm},    // batch 4
      {padded(geometry(1, 16, 32, 32, 16, 3, 3), 1, 1), DirectChannels, DirectChannels,
       Im2colGemm},                                                                           // batch 1
      {padded(geometry(1, 32, 16, 16, 32, 3, 3), 1, 1), Im2colGemm, Im2colGemm, Im2colGemm},  // 256 positions
      {grouped(padded(geometry(128, 64, 16, 16, 64, 3, 3), 1, 1), 64), Depthwise, Depthwise,
       DepthwiseChannels},  // 256 positions a plane at stride 1: Depthwise but for the weight gradient
      {grouped(padded(geometry(128, 512, 4, 4, 512, 3, 3), 1, 1), 512), DepthwiseChannels, DepthwiseChannels,
       DepthwiseChannels},  // small planes
      {grouped(padded(strided(geometry(128, 64, 32, 32, 64, 3, 3), 2, 2), 1, 1), 64), Depthwise, Depthwise,
       DepthwiseChannels},  // stride 2: Depthwise's rows take planes of 256 outputs (y's, or gx's)
      {grouped(padded(strided(geometry(128, 128, 16, 16, 128, 3, 3), 2, 2), 1, 1), 128), DepthwiseChannels,
       Depthwise, DepthwiseChannels},  // stride 2 onto 8x8: gx 16x16
      {grouped(padded(geometry(128, 8, 4, 4, 8, 3, 3), 1, 1), 8), Depthwise, Depthwise,
       Depthwise},  // 8 channels: half a zmm
      {geometry(128, 64, 16, 16, 128, 1, 1), Pointwise, Pointwise, Pointwise},
  };
  const Conv2dGeometry first_layer = padded(geometry(128, 3, 32, 32, 16, 3, 3), 1, 1);
  for (CpuLevel level : fast_levels()) {
    for (const Layer& layer : layers) {
      if (layer.g.stride_h != 2 || layer.backward_weight != Direct) continue;
      CHECK_MESSAGE(kernels::choose_conv2d_algorithm(with_channels_last(layer.g),
                                                     Conv2dDirection::BackwardWeight, level) == Winograd2x2,
                    describe(layer.g), " channels-last");
    }
    // A 3-channel input: im2col + GEMM forward and backward-data, but Direct for the weight gradient,
    // whose tiles run along output channels and taps, and for the forward from 32 output channels on a
    // batch's worth of positions at stride 1 (algorithm.cpp, rule 4).
    CHECK(kernels::choose_conv2d_algorithm(first_layer, Conv2dDirection::Forward, level) ==
          Conv2dAlgorithm::Im2colGemm);
    Conv2dGeometry wide_stem = first_layer;
    wide_stem.out_channels = 32;
    CHECK(kernels::choose_conv2d_algorithm(wide_stem, Conv2dDirection::Forward, level) ==
          Conv2dAlgorithm::Direct);
    Conv2dGeometry one_image = wide_stem;
    one_image.batch = 1;
    CHECK(kernels::choose_conv2d_algorithm(one_image, Conv2dDirection::Forward, level) ==
          Conv2dAlgorithm::Im2colGemm);
    Conv2dGeometry strided_stem = wide_stem;
    strided_stem.stride_h = strided_stem.stride_w = 2;
    CHECK(kernels::choose_conv2d_algorithm(strided_stem, Conv2dDirection::Forward, level) ==
          Conv2dAlgorithm::Im2colGemm);
    // LeNet-5's 5x5 layers: im2col's copy is 25 floats an input channel, so Direct takes every pass of
    // them, at any batch, even of 6 output channels; a 3x3 kernel's stays with im2col + GEMM.
    for (const std::int64_t batch : {1, 128}) {
      for (const Conv2dGeometry& lenet :
           {geometry(batch, 3, 32, 32, 6, 5, 5), geometry(batch, 6, 14, 14, 16, 5, 5)}) {
        for (const auto direction :
             {Conv2dDirection::Forward, Conv2dDirection::BackwardData, Conv2dDirection::BackwardWeight})
          CHECK(kernels::choose_conv2d_algorithm(lenet, direction, level) == Conv2dAlgorithm::Direct);
      }
    }
    const Conv2dGeometry few_outputs = padded(geometry(128, 16, 32, 32, 6, 3, 3), 1, 1);
    for (const auto direction :
         {Conv2dDirection::Forward, Conv2dDirection::BackwardData, Conv2dDirection::BackwardWeight})
      CHECK(kernels::choose_conv2d_algorithm(few_outputs, direction, level) == Conv2dAlgorithm::Im2colGemm);
    CHECK(kernels::choose_conv2d_algorithm(first_layer, Conv2dDirection::BackwardData, level) ==
          Conv2dAlgorithm::Im2colGemm);
    CHECK(kernels::choose_conv2d_algorithm(first_layer, Conv2dDirection::BackwardWeight, level) ==
          Conv2dAlgorithm::Direct);
    // Strided weight gradients Winograd does not take run Direct on the stride-1 strip (rule 7): a 7x7
    // stem at stride 2, a 5x5 at stride 2, a 3x3 at stride 3, with few channels, in groups or dilated; not
    // a 1x1 projection shortcut, nor a batch of fewer than 512 output positions.
    for (const Conv2dGeometry& strided_layer :
         {padded(strided(geometry(32, 3, 64, 64, 64, 7, 7), 2, 2), 3, 3),
          padded(strided(geometry(64, 32, 32, 32, 64, 5, 5), 2, 2), 2, 2),
          padded(strided(geometry(8, 16, 33, 33, 32, 3, 3), 3, 3), 1, 1),
          padded(strided(geometry(128, 8, 32, 32, 16, 3, 3), 2, 2), 1, 1),
          grouped(padded(strided(geometry(128, 32, 32, 32, 32, 3, 3), 2, 2), 1, 1), 4),
          dilated(padded(strided(geometry(128, 16, 32, 32, 32, 3, 3), 2, 2), 2, 2), 2, 2)}) {
      CHECK_MESSAGE(kernels::choose_conv2d_algorithm(strided_layer, Conv2dDirection::BackwardWeight, level) ==
                        Conv2dAlgorithm::Direct,
                    describe(strided_layer));
    }
    // Strided forwards that Winograd does not take run DirectChannels (rule 6c) where im2col's columns are
    // deep (25 taps or more, or 64 floats or more an output position) and the outputs have 16 channels or
    // more per group; shallow columns, 8 channels per group, a 1x1 kernel or few positions keep im2col +
    // GEMM.
    const auto forward = [&](const Conv2dGeometry& layer) {
      return kernels::choose_conv2d_algorithm(layer, Conv2dDirection::Forward, level);
    };
    for (const Conv2dGeometry& deep :
         {padded(strided(geometry(32, 3, 64, 64, 64, 7, 7), 2, 2), 3, 3),
          padded(strided(geometry(64, 32, 32, 32, 64, 5, 5), 2, 2), 2, 2),
          padded(strided(geometry(128, 16, 33, 33, 32, 3, 3), 3, 3), 1, 1),
          padded(strided(geometry(128, 8, 32, 32, 16, 3, 3), 2, 2), 1, 1),
          strided(geometry(128, 16, 32, 32, 16, 2, 2), 2, 2),
          dilated(padded(strided(geometry(128, 16, 32, 32, 32, 3, 3), 2, 2), 2, 2), 2, 2)})
      CHECK_MESSAGE(forward(deep) == Conv2dAlgorithm::DirectChannels, describe(deep));
    for (const Conv2dGeometry& shallow :
         {padded(strided(geometry(128, 3, 32, 32, 32, 3, 3), 2, 2), 1, 1),
          padded(strided(geometry(128, 5, 32, 32, 32, 3, 3), 2, 2), 1, 1),
          strided(geometry(128, 64, 16, 16, 128, 1, 1), 2, 2),
          grouped(padded(strided(geometry(128, 32, 32, 32, 32, 3, 3), 2, 2), 1, 1), 4),
          padded(strided(geometry(8, 16, 33, 33, 32, 3, 3), 3, 3), 1, 1)})
      CHECK_MESSAGE(forward(shallow) == Conv2dAlgorithm::Im2colGemm, describe(shallow));
    CHECK(kernels::choose_conv2d_algorithm(padded(strided(geometry(1, 32, 32, 32, 64, 5, 5), 2, 2), 2, 2),
                                           Conv2dDirection::Forward,
                                           level) == Conv2dAlgorithm::Im2colGemm);  // 256 positions
    // Strided backward-data runs DirectChannels where the kernel's windows overlap (rule 6a), and im2col +
    // GEMM where each input pixel takes one tap: a 1x1 projection at stride 2, a 3x3 at stride 3, a 2x2 at
    // stride 2; a dilated 1x3 kernel at stride 2 overlaps along its width.
    const auto backward_data = [&](const Conv2dGeometry& layer) {
      return kernels::choose_conv2d_algorithm(layer, Conv2dDirection::BackwardData, level);
    };
    CHECK(backward_data(strided(geometry(128, 64, 16, 16, 128, 1, 1), 2, 2)) == Conv2dAlgorithm::Im2colGemm);
    CHECK(backward_data(padded(strided(geometry(128, 16, 33, 33, 32, 3, 3), 3, 3), 1, 1)) ==
          Conv2dAlgorithm::Im2colGemm);
    CHECK(backward_data(strided(geometry(128, 32, 32, 32, 64, 2, 2), 2, 2)) == Conv2dAlgorithm::Im2colGemm);
    CHECK(backward_data(padded(strided(geometry(128, 8, 32, 32, 16, 3, 3), 2, 2), 1, 1)) ==
          Conv2dAlgorithm::DirectChannels);
    CHECK(backward_data(dilated(strided(geometry(64, 16, 32, 32, 16, 1, 3), 2, 2), 1, 2)) ==
          Conv2dAlgorithm::DirectChannels);
    CHECK(kernels::choose_conv2d_algorithm(strided(geometry(128, 64, 16, 16, 128, 1, 1), 2, 2),
                                           Conv2dDirection::BackwardWeight,
                                           level) == Conv2dAlgorithm::Im2colGemm);
    CHECK(kernels::choose_conv2d_algorithm(padded(strided(geometry(1, 3, 32, 32, 6, 5, 5), 2, 2), 2, 2),
                                           Conv2dDirection::BackwardWeight,
                                           level) == Conv2dAlgorithm::Im2colGemm);  // 256 positions
    for (const Layer& layer : layers) {
      for (Conv2dDirection direction :
           {Conv2dDirection::Forward, Conv2dDirection::BackwardData, Conv2dDirection::BackwardWeight}) {
        const Conv2dAlgorithm chosen = kernels::choose_conv2d_algorithm(layer.g, direction, level);
        const Conv2dAlgorithm expected = direction == Conv2dDirection::Forward        ? layer.forward
                                         : direction == Conv2dDirection::BackwardData ? layer.backward_data
                                                                                      : layer.backward_weight;
        CHECK_MESSAGE(chosen == expected, describe(layer.g), " ", kernels::conv2d_direction_name(direction),
                      ": chose ", kernels::conv2d_algorithm_name(chosen));
      }
    }
  }
}

}  // namespace kernels_conv2d_fast_test
