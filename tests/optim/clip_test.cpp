// Tests for clip_grad_norm (optim/clip.hpp) on the CPU: the global norm over several parameters of both float
// dtypes, scaling only above max_norm, skipping parameters without a gradient, leaving non-finite gradients
// alone, and clipping a gradient that is a strided view. tests/cuda/grad_clip_cuda_test.cpp: on a GPU.
#include "optim/clip.hpp"

#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "core/error.hpp"

namespace optim_clip_test {

using namespace kiln;
using namespace kiln::optim;

namespace {

Tensor parameter_with_grad(const std::vector<double>& grad) {
  const auto count = static_cast<std::int64_t>(grad.size());
  Tensor parameter = Tensor::zeros({count}, DType::Float64).set_requires_grad();
  parameter.set_grad(Tensor::from_vector(grad, {count}));
  return parameter;
}

}  // namespace

// Gradients [3, 4] have norm 5; max_norm 1 scales them by 1 / (5 + 1e-6), to about [0.6, 0.8].
TEST_CASE("optim clip_grad_norm: scales [3, 4] to norm 1 and returns 5") {
  const Tensor p = parameter_with_grad({3.0, 4.0});
  CHECK(clip_grad_norm({p}, 1.0).item() == 5.0);
  const std::vector<double> clipped = p.grad().to_vector<double>();
  CHECK(clipped[0] == doctest::Approx(3.0 / (5.0 + 1e-6)).epsilon(1e-15));
  CHECK(clipped[1] == doctest::Approx(4.0 / (5.0 + 1e-6)).epsilon(1e-15));
  CHECK(clipped[0] == doctest::Approx(0.6).epsilon(1e-6));
  CHECK(clipped[1] == doctest::Approx(0.8).epsilon(1e-6));
}

// The norm is global: [3] in a float32 parameter and [4] in a float64 one clip together, and one without a
// gradient counts for nothing.
TEST_CASE("optim clip_grad_norm: one norm over all gradients") {
  Tensor a = Tensor::zeros({1}).set_requires_grad(),
         b = Tensor::zeros({1}, DType::Float64).set_requires_grad();
  const Tensor no_grad = Tensor::zeros({3}).set_requires_grad();
  a.set_grad(Tensor::full({1}, 3.0));
  b.set_grad(Tensor::full({1}, 4.0, DType::Float64));
  const Tensor norm = clip_grad_norm({a, no_grad, b}, 2.5);
  CHECK(norm.dtype() == DType::Float64);
  CHECK(norm.dim() == 0);
  CHECK(norm.item() == doctest::Approx(5.0));
  CHECK(a.grad().item() == doctest::Approx(1.5).epsilon(1e-6));
  CHECK(b.grad().item() == doctest::Approx(2.0).epsilon(1e-6));
  CHECK_FALSE(no_grad.grad().defined());
}

TEST_CASE("optim clip_grad_norm: leaves gradients under max_norm alone") {
  const Tensor p = parameter_with_grad({0.3, 0.4});
  CHECK(clip_grad_norm({p}, 1.0).item() == doctest::Approx(0.5).epsilon(1e-15));
  CHECK(p.grad().to_vector<double>() == std::vector<double>{0.3, 0.4});
  CHECK(clip_grad_norm({}, 1.0).item() == 0.0);
}

TEST_CASE("optim clip_grad_norm: returns a non-finite norm without touching the gradients") {
  const double inf = std::numeric_limits<double>::infinity();
  const Tensor p = parameter_with_grad({inf, 1.0});
  CHECK(clip_grad_norm({p}, 1.0).item() == inf);
  CHECK(p.grad().to_vector<double>() == std::vector<double>{inf, 1.0});
  const Tensor q = parameter_with_grad({NAN, 1.0});
  CHECK(std::isnan(clip_grad_norm({q}, 1.0).item()));
  CHECK(q.grad().to_vector<double>()[1] == 1.0);
  CHECK_THROWS_WITH_AS(clip_grad_norm({p}, 0.0), doctest::Contains("clip_grad_norm: max_norm 0"), Error);
}

// The kernels scale a dense buffer in place: a gradient that is a strided view is made dense, and clipped.
TEST_CASE("optim clip_grad_norm: clips a gradient that is not dense") {
  Tensor p = Tensor::zeros({2, 2}).set_requires_grad();
  p.set_grad(Tensor::from_vector(std::vector<float>{0.0F, 6.0F, 8.0F, 0.0F}, {2, 2}).transpose(0, 1));
  CHECK(clip_grad_norm({p}, 5.0).item() == 10.0);
  CHECK(p.grad().is_contiguous());
  const std::vector<double> clipped = p.grad().to_vector<double>();  // [[0, 8], [6, 0]] * 5 / (10 + 1e-6)
  const std::vector<double> expected = {0.0, 4.0, 3.0, 0.0};
  for (std::size_t i = 0; i < expected.size(); ++i)
    CHECK(clipped[i] == doctest::Approx(expected[i]).epsilon(1e-6));
}

}  // namespace optim_clip_test
