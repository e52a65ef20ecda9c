// Which kernel taps read only padding (kernels/conv2d/unreached_taps.hpp), and the crop that leaves them
// out: the same output size, the padding reduced to match, the weights and weight gradient moved between
// the full kernel and the cropped one. (conv2d_fast_test.cpp and conv2d_bf16_test.cpp run dispatch, which
// crops, against the reference on such shapes.)
#include <doctest/doctest.h>

#include <vector>

#include "kernels/conv2d/unreached_taps.hpp"

namespace kernels_conv2d_unreached_taps_test {

using kiln::kernels::Conv2dGeometry;

namespace {

Conv2dGeometry square(std::int64_t size, std::int64_t kernel, std::int64_t stride, std::int64_t pad,
                      std::int64_t dilation = 1) {
  Conv2dGeometry g;
  g.batch = 2;
  g.in_channels = 2;
  g.out_channels = 3;
  g.in_height = g.in_width = size;
  g.kernel_h = g.kernel_w = kernel;
  g.stride_h = g.stride_w = stride;
  g.pad_h = g.pad_w = pad;
  g.dilation_h = g.dilation_w = dilation;
  return g;
}

}  // namespace

TEST_CASE("conv2d unreached taps: the crop keeps every tap that reads the input and the output size") {
  using kiln::kernels::crop_unreached_taps;
  // ResNet-18's last stage on a 32x32 image: a padded 3x3 on a 1x1 plane reads it through its centre.
  const auto centre = crop_unreached_taps(square(1, 3, 1, 1));
  REQUIRE(centre);
  CHECK(centre->geometry.kernel_h == 1);
  CHECK(centre->geometry.kernel_w == 1);
  CHECK(centre->geometry.pad_h == 0);
  CHECK(centre->first_row == 1);
  CHECK(centre->first_column == 1);
  // A 5x5 at padding 2 on a 2x2 plane: its outer ring never reaches the plane.
  const auto ring = crop_unreached_taps(square(2, 5, 1, 2));
  REQUIRE(ring);
  CHECK(ring->geometry.kernel_h == 3);
  CHECK(ring->geometry.pad_h == 1);
  CHECK(ring->geometry.out_height() == 2);
  // Stride 2 and dilation 2 on small planes.
  REQUIRE(crop_unreached_taps(square(1, 3, 2, 1)));
  CHECK(crop_unreached_taps(square(1, 3, 2, 1))->geometry.kernel_h == 1);
  REQUIRE(crop_unreached_taps(square(2, 3, 1, 2, 2)));
  CHECK(crop_unreached_taps(square(2, 3, 1, 2, 2))->geometry.kernel_h == 1);
  // Nothing to crop: every tap of a padded 3x3 reads a 2x2 plane or a larger one; and a 3x3 at stride 3,
  // padding 1, on a 3x3 plane (one output) reads nothing through its first row and column of taps but
  // reads through its last ones, and cropping one end alone would change the output size.
  CHECK_FALSE(crop_unreached_taps(square(2, 3, 1, 1)));
  CHECK_FALSE(crop_unreached_taps(square(32, 3, 1, 1)));
  CHECK(kiln::kernels::unreached_taps_each_end(3, 1, 3, 3, 1, 1) == 0);
  CHECK_FALSE(crop_unreached_taps(square(3, 3, 3, 1)));
  // One axis only: a one-row image under a padded 3x3.
  Conv2dGeometry row = square(9, 3, 1, 1);
  row.in_height = 1;
  const auto rows_only = crop_unreached_taps(row);
  REQUIRE(rows_only);
  CHECK(rows_only->geometry.kernel_h == 1);
  CHECK(rows_only->geometry.kernel_w == 3);
  CHECK(rows_only->geometry.out_width() == row.out_width());
}

TEST_CASE("conv2d unreached taps: weights cropped out and a weight gradient placed back") {
  const Conv2dGeometry g = square(1, 3, 1, 1);  // 3 x 2 filters of 3x3
  const auto cropped = kiln::kernels::crop_unreached_taps(g);
  REQUIRE(cropped);
  std::vector<float> w(3 * 2 * 9);
  for (std::size_t i = 0; i < w.size(); ++i) w[i] = static_cast<float>(i);
  std::vector<float> centre(3 * 2);
  kiln::kernels::crop_weights(g, *cropped, w.data(), centre.data());
  CHECK(centre == std::vector<float>{4, 13, 22, 31, 40, 49});  // tap (1, 1) of each filter
  std::vector<float> gw(w.size(), -1.0f);
  kiln::kernels::uncrop_weight_gradient(g, *cropped, centre.data(), gw.data());
  for (std::size_t i = 0; i < gw.size(); ++i) {
    CAPTURE(i);
    CHECK(gw[i] == (i % 9 == 4 ? w[i] : 0.0f));
  }
}

TEST_CASE("conv2d unreached taps: a kernel large enough for threads is cropped and placed back the same") {
  Conv2dGeometry g = square(1, 3, 1, 1);
  g.in_channels = 97;
  g.out_channels = 80;  // 7760 filters, 69840 taps: past kParallelKernelTaps
  REQUIRE(g.out_channels * g.in_channels * 9 >= kiln::kernels::kParallelKernelTaps);
  const auto cropped = kiln::kernels::crop_unreached_taps(g);
  REQUIRE(cropped);
  std::vector<float> w(static_cast<std::size_t>(g.out_channels * g.in_channels * 9));
  for (std::size_t i = 0; i < w.size(); ++i) w[i] = static_cast<float>(i);
  std::vector<float> centre(static_cast<std::size_t>(g.out_channels * g.in_channels), -1.0f);
  kiln::kernels::crop_weights(g, *cropped, w.data(), centre.data());
  std::size_t wrong = 0;
  for (std::size_t f = 0; f < centre.size(); ++f) wrong += centre[f] != w[f * 9 + 4];
  CHECK(wrong == 0);
  std::vector<float> gw(w.size(), -1.0f);
  kiln::kernels::uncrop_weight_gradient(g, *cropped, centre.data(), gw.data());
  for (std::size_t i = 0; i < gw.size(); ++i) wrong += gw[i] != (i % 9 == 4 ? w[i] : 0.0f);
  CHECK(wrong == 0);
}

}  // namespace kernels_conv2d_unreached_taps_test
