// Tests of flip (core/ops.hpp): every element where a loop over indices puts it, along any set of axes,
// for every dtype, at every CPU level, from contiguous, channels-last and strided views; flipped twice is
// the tensor itself; errors name the axis.
#include <doctest/doctest.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <vector>

#include "core/error.hpp"
#include "core/ops.hpp"
#include "tests/support/fast_kernel_testing.hpp"

namespace core_flip_test {

namespace {

using namespace kiln;

// out[i0, i1, i2, i3] = x[i'] with i'_a = size_a - 1 - i_a on the flipped axes: by index, from x's own
// strides, as a definition independent of the copy kernels.
std::vector<double> flipped_by_loop(const Tensor& x, const std::vector<int>& axes) {
  const Tensor dense = x.contiguous().to(DType::Float64);
  const std::vector<double> values = dense.to_vector<double>();
  const std::array<std::int64_t, 4> size{x.shape()[0], x.shape()[1], x.shape()[2], x.shape()[3]};
  std::vector<double> out;
  for (std::int64_t i0 = 0; i0 < size[0]; ++i0)
    for (std::int64_t i1 = 0; i1 < size[1]; ++i1)
      for (std::int64_t i2 = 0; i2 < size[2]; ++i2)
        for (std::int64_t i3 = 0; i3 < size[3]; ++i3) {
          std::array<std::int64_t, 4> from{i0, i1, i2, i3};
          for (const int axis : axes) {
            const auto a = static_cast<std::size_t>(axis < 0 ? axis + 4 : axis);
            from[a] = size[a] - 1 - from[a];
          }
          out.push_back(values[static_cast<std::size_t>(((from[0] * size[1] + from[1]) * size[2] + from[2]) *
                                                            size[3] +
                                                        from[3])]);
        }
  return out;
}

const std::vector<std::vector<int>> kAxisSets{{}, {3}, {2}, {2, 3}, {0}, {1, 3}, {0, 1, 2, 3}, {-1, -2}};

}  // namespace

TEST_CASE("flip: every element where the index loop puts it, any axes, every dtype, every CPU level") {
  const Tensor source = Tensor::from_vector(testing::random_values<float>(2 * 3 * 5 * 7, 4), {2, 3, 5, 7});
  const auto check_all = [&] {
    for (const DType dtype : {DType::Float32, DType::Float64, DType::BFloat16, DType::Int64}) {
      const Tensor x = dtype == DType::Int64 ? (source * 100.0).to(DType::Int64) : source.to(dtype);
      for (const std::vector<int>& axes : kAxisSets) {
        CAPTURE(dtype_name(dtype));
        CAPTURE(axes.size());
        const Tensor y = flip(x, axes);
        CHECK(y.shape() == x.shape());
        CHECK(y.dtype() == dtype);
        CHECK(y.is_contiguous());
        CHECK(y.to(DType::Float64).to_vector<double>() == flipped_by_loop(x, axes));
      }
    }
  };
  check_all();
  testing::at_each_fast_level(check_all);
  testing::DispatchGuard guard;
  kernels::set_cpu_level(kernels::CpuLevel::Reference);
  check_all();
}

TEST_CASE("flip: a channels-last tensor stays channels-last; views are read where they lie") {
  testing::at_each_fast_level([] {
    const Tensor x = Tensor::from_vector(testing::random_values<float>(2 * 4 * 6 * 5, 8), {2, 4, 6, 5});
    for (const std::vector<int>& axes : kAxisSets) {
      const Tensor last = flip(x.channels_last(), axes);
      CHECK(last.is_channels_last());
      CHECK(last.contiguous().to_vector<float>() == flip(x, axes).to_vector<float>());
      // A strided slice and a transposed view: the flip of what they show.
      const Tensor sliced = x.slice(2, 1, 6, 2);
      CHECK(flip(sliced, axes).to(DType::Float64).to_vector<double>() == flipped_by_loop(sliced, axes));
      const Tensor transposed = x.transpose(2, 3);
      CHECK(flip(transposed, axes).to(DType::Float64).to_vector<double>() ==
            flipped_by_loop(transposed, axes));
    }
  });
}

TEST_CASE("flip: twice is the tensor itself; one element, empty and size-1 axes") {
  const Tensor x = Tensor::from_vector(testing::random_values<float>(3 * 1 * 4 * 9, 5), {3, 1, 4, 9});
  CHECK(flip(flip(x, {1, 3}), {3, 1}).to_vector<float>() == x.to_vector<float>());
  CHECK(flip(x, {1}).to_vector<float>() == x.to_vector<float>());  // one element along it
  const Tensor empty = Tensor::zeros({2, 0, 3});
  CHECK(flip(empty, {1, 2}).shape() == empty.shape());
  const Tensor scalar_like = Tensor::full({1}, 2.5);
  CHECK(flip(scalar_like, {0}).item() == 2.5);
}

TEST_CASE("flip: an axis out of range or given twice is an error naming it") {
  const Tensor x = Tensor::zeros({2, 3});
  CHECK_THROWS_AS(flip(x, {2}), Error);
  CHECK_THROWS_WITH_AS(flip(x, {1, -1}), doctest::Contains("flip: axis -1 is given twice"), Error);
}

}  // namespace core_flip_test
