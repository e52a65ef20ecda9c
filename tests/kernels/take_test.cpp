// Tests for take (kernels/take/take.hpp and raw::take): the reference picks table[indices[i]], repeats and
// all, and gives NaN for an index outside the table; raw::take keeps the indices' shape and, on the CPU,
// refuses a bad index naming it, and a table that is not 1-d or indices that are not int64.
#include "kernels/take/take.hpp"

#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "core/error.hpp"
#include "core/raw.hpp"

namespace kernels_take_test {

using namespace kiln;

TEST_CASE("take: the reference picks table[index], and NaN outside the table") {
  const std::vector<double> table = {1.5, -2.0, 4.25};
  const std::vector<std::int64_t> indices = {2, 0, 0, 1, 3, -1};
  std::vector<double> taken(indices.size());
  kernels::reference::take<double>(6, table.data(), 3, indices.data(), taken.data());
  CHECK(taken[0] == 4.25);
  CHECK(taken[1] == 1.5);
  CHECK(taken[2] == 1.5);
  CHECK(taken[3] == -2.0);
  CHECK(std::isnan(taken[4]));
  CHECK(std::isnan(taken[5]));
}

TEST_CASE("take: raw::take keeps the indices' shape and checks CPU indices") {
  const Tensor table = Tensor::from_vector<float>({0.5F, 2.0F, 3.0F}, {3});
  const Tensor taken = raw::take(table, Tensor::from_vector<std::int64_t>({1, 2, 2, 0}, {2, 2}));
  CHECK(taken.shape() == Shape({2, 2}));
  CHECK(taken.dtype() == DType::Float32);
  CHECK(taken.to_vector<float>() == std::vector<float>{2.0F, 3.0F, 3.0F, 0.5F});
  CHECK(raw::take(table, Tensor::zeros({0}, DType::Int64)).numel() == 0);
  // A strided table is read as its view.
  const Tensor strided = Tensor::from_vector<double>({1, 9, 2, 9, 3, 9}, {6}).slice(0, 0, 6, 2);
  CHECK(raw::take(strided, Tensor::from_vector<std::int64_t>({2, 1}, {2})).to_vector<double>() ==
        std::vector<double>{3.0, 2.0});

  CHECK_THROWS_WITH_AS(raw::take(table, Tensor::from_vector<std::int64_t>({0, 3}, {2})),
                       doctest::Contains("take: index 3 is outside [0, 3)"), Error);
  CHECK_THROWS_WITH_AS(raw::take(table, Tensor::from_vector<std::int64_t>({-1}, {1})),
                       doctest::Contains("take: index -1 is outside [0, 3)"), Error);
  CHECK_THROWS_WITH_AS(raw::take(Tensor::zeros({2, 2}), Tensor::zeros({1}, DType::Int64)),
                       doctest::Contains("the table must be 1-d"), Error);
  CHECK_THROWS_WITH_AS(raw::take(table, Tensor::zeros({1})), doctest::Contains("indices must be int64"),
                       Error);
}

}  // namespace kernels_take_test
