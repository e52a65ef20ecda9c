// The direct convolution's strip layout (kernels/conv2d/direct_strip.hpp), along one axis: the phases a
// stride splits the padded input into, where each phase's input lies, how long a line is, and the
// invariant the kernels rely on: a tap that reads past the end of a line lands in the next line's leading
// zeros, never in its data.
#include <doctest/doctest.h>

#include <cstdint>

#include "kernels/conv2d/direct_strip.hpp"

namespace kernels_conv2d_strip_test {

namespace {

// StripAxis needs no vector operations; a stand-in trait keeps this file free of AVX.
struct NoVector {
  static constexpr std::int64_t width = 1;
};
using Axis = kiln::kernels::direct::StripAxis<NoVector>;

}  // namespace

TEST_CASE("conv2d strip: stride 1 shares the padding, a line is the input plus one side's padding") {
  const Axis axis(32, 1, 1, 1, 3);  // 32 wide, pad 1, 3 taps
  CHECK(axis.out == 32);
  CHECK(axis.line == 33);
  CHECK(axis.data_begin(0) == 1);
  CHECK(axis.data_end(0) == 33);
  CHECK(axis.shift(2) == 2);
  CHECK(axis.phase(2) == 0);
}

TEST_CASE("conv2d strip: stride 2 splits into two phases whose taps read consecutive positions") {
  const Axis axis(32, 1, 2, 1, 3);  // padded columns 0..33, phase 0 the even ones
  CHECK(axis.out == 16);
  CHECK(axis.phase(0) == 0);
  CHECK(axis.shift(0) == 0);
  CHECK(axis.phase(1) == 1);
  CHECK(axis.shift(1) == 0);
  CHECK(axis.phase(2) == 0);
  CHECK(axis.shift(2) == 1);
  CHECK(axis.input_of(0, 1) == 1);  // padded column 2 is input column 1
  CHECK(axis.input_of(1, 0) == 0);
  CHECK(axis.data_begin(0) == 1);  // padded column 0 is padding
  CHECK(axis.data_begin(1) == 0);
  CHECK(axis.line == 17);
}

// Every axis with input 1..23, padding 0..6, stride 1..4, dilation 1..3 and kernel 1..6 that has an output:
// check(size, pad, stride, dilation, kernel) on each. Returns how many there were.
template <typename Check>
int for_each_small_axis(Check check) {
  int geometries = 0;
  for (std::int64_t size = 1; size < 24; ++size) {
    for (std::int64_t pad = 0; pad < 7; ++pad) {
      for (std::int64_t stride = 1; stride < 5; ++stride) {
        for (std::int64_t dilation = 1; dilation < 4; ++dilation) {
          for (std::int64_t kernel = 1; kernel < 7; ++kernel) {
            if (size + 2 * pad - dilation * (kernel - 1) < 1) continue;  // no output
            INFO("size ", size, " pad ", pad, " stride ", stride, " dilation ", dilation, " kernel ", kernel);
            check(size, pad, stride, dilation, kernel);
            ++geometries;
          }
        }
      }
    }
  }
  return geometries;
}

TEST_CASE("conv2d strip: a read past a line's end always lands in the next line's leading zeros") {
  const int geometries = for_each_small_axis([](std::int64_t size, std::int64_t pad, std::int64_t stride,
                                                std::int64_t dilation, std::int64_t kernel) {
    const Axis axis(size, pad, stride, dilation, kernel);
    CHECK(!axis.wraps_into_data());
    CHECK(axis.line >= axis.out);
    for (std::int64_t p = 0; p < stride; ++p) CHECK(axis.line >= axis.data_end(p));
  });
  CHECK(geometries > 5000);
}

TEST_CASE("conv2d strip: a strided walk of the stride-1 strip reads no further than stride 1's outputs") {
  // StridedOutputs (the weight gradient) reads the stride-1 strip at s * o + dilation * tap for o below the
  // strided output count: within the stride-1 outputs' reads, so inside the lines' zeros.
  for_each_small_axis([](std::int64_t size, std::int64_t pad, std::int64_t stride, std::int64_t dilation,
                         std::int64_t kernel) {
    const Axis dense(size, pad, 1, dilation, kernel), strided(size, pad, stride, dilation, kernel);
    CHECK(stride * (strided.out - 1) <= dense.out - 1);
  });
}

}  // namespace kernels_conv2d_strip_test
