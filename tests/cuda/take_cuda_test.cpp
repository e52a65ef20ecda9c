// Tests of the CUDA take (kernels/take/cuda_take.cu) against the reference, float and double: indices
// repeating, in any order, more than one pass of the grid covers, and out of range (NaN, read from nowhere:
// the GPU's indices are not checked on the host); and raw::take on device tensors.
#include <doctest/doctest.h>

#include <cstdint>
#include <random>
#include <vector>

#include "core/raw.hpp"
#include "kernels/cuda_grid.hpp"
#include "kernels/take/take.hpp"
#include "tests/support/cuda_testing.hpp"
#include "tests/support/fast_kernel_testing.hpp"
#include "tests/support/matches_reference.hpp"

namespace cuda_take_cuda_test {

namespace {

using namespace kiln;

// More outputs than one pass of the grid covers (one thread per output).
constexpr std::int64_t kBeyondOneGridPass = testing::kOneGridPass + 77;

template <typename T>
void check_take(std::int64_t n, std::int64_t size) {
  INFO("n ", n, ", table ", size, ", ", sizeof(T) == sizeof(float) ? "float" : "double");
  const std::vector<T> table = testing::random_values<T>(size, 5);
  std::vector<std::int64_t> indices(static_cast<std::size_t>(n));
  std::mt19937_64 engine(11);
  std::uniform_int_distribution<std::int64_t> pick(-2, size + 1);  // a few outside [0, size)
  for (std::int64_t& index : indices) index = pick(engine);
  std::vector<T> expected(indices.size());
  kernels::reference::take<T>(n, table.data(), size, indices.data(), expected.data());

  const Tensor table_gpu = testing::to_gpu(table), indices_gpu = testing::to_gpu(indices);
  const Tensor taken_gpu = testing::empty_gpu<T>(n);
  kernels::take<T>(Device::cuda(), n, table_gpu.data<T>(), size, indices_gpu.data<std::int64_t>(),
                   taken_gpu.data<T>());
  CHECK(testing::first_difference(testing::to_host<T>(taken_gpu), expected) == "");  // exact, NaN for NaN
}

TEST_CASE("cuda: take matches the reference, bad indices giving NaN") {
  if (!testing::have_gpu()) return;
  for (const auto& [n, size] :
       {std::pair<std::int64_t, std::int64_t>{1, 1}, {128, 10}, {1000, 3}, {kBeyondOneGridPass, 37}}) {
    check_take<float>(n, size);
    check_take<double>(n, size);
  }
}

TEST_CASE("cuda: raw::take on device tensors, where a bad index gives NaN instead of an error") {
  if (!testing::have_gpu()) return;
  const Tensor table = Tensor::from_vector<float>({0.5F, 2.0F, 3.0F}, {3}).to(Device::cuda());
  const Tensor indices = Tensor::from_vector<std::int64_t>({2, 0, 7, 1}, {2, 2}).to(Device::cuda());
  const Tensor taken = raw::take(table, indices);
  CHECK(taken.device() == Device::cuda());
  CHECK(taken.shape() == Shape({2, 2}));
  CHECK(testing::first_difference(taken.to_vector<float>(), {3.0F, 0.5F, NAN, 2.0F}) == "");
}

}  // namespace

}  // namespace cuda_take_cuda_test
