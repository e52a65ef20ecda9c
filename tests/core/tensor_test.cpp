// Tensor as a data structure: creation, views sharing storage, contiguity, dtype conversion, printing,
// and the errors that name the op and shapes.
#include <doctest/doctest.h>

#include <cstdint>

#include "core/generator.hpp"
#include "core/ops.hpp"

namespace core_tensor_test {

using namespace kiln;

namespace {
std::vector<double> values(const Tensor& t) { return t.to_vector<double>(); }

// Runs `body` and returns the kiln::Error message it throws ("" when it does not throw).
template <typename Body> std::string error_of(Body body) {
  try {
    body();
  } catch (const Error& error) {
    return error.what();
  }
  return "";
}
}  // namespace

TEST_CASE("tensor: creation fills, shapes and strides") {
  const Tensor z = Tensor::zeros({2, 3});
  CHECK(z.shape() == Shape{2, 3});
  CHECK(z.strides() == Strides{3, 1});
  CHECK(z.numel() == 6);
  CHECK(z.dtype() == DType::Float32);
  CHECK(values(z) == std::vector<double>(6, 0.0));
  CHECK(values(Tensor::full({2}, 2.5, DType::Float64)) == std::vector<double>{2.5, 2.5});
  CHECK(values(Tensor::arange(1, 2, 0.25)) == std::vector<double>{1.0, 1.25, 1.5, 1.75});
  CHECK(Tensor::scalar(3.0).dim() == 0);
  CHECK(Tensor::scalar(3.0).item() == 3.0);
}

TEST_CASE("tensor: storage is 64-byte aligned") {
  for (std::int64_t n : {1, 3, 17, 1000}) {
    const Tensor t = Tensor::empty({n});
    CHECK(reinterpret_cast<std::uintptr_t>(t.data<float>()) % 64 == 0);
  }
}

TEST_CASE("tensor: rand and randn are reproducible from a seed and have the right moments") {
  Generator a(42), b(42), c(43);
  const Tensor first = Tensor::rand({1000}, DType::Float32, &a);
  CHECK(values(first) == values(Tensor::rand({1000}, DType::Float32, &b)));
  CHECK(values(first) != values(Tensor::rand({1000}, DType::Float32, &c)));
  // The generator advanced: the next draw differs from the first.
  CHECK(values(Tensor::rand({1000}, DType::Float32, &a)) != values(first));

  Generator g(7);
  const Tensor normal = Tensor::randn({20000}, DType::Float64, &g, 2.0, 3.0);
  CHECK(mean(normal).item() == doctest::Approx(2.0).epsilon(0.05));
  CHECK(var(normal).item() == doctest::Approx(9.0).epsilon(0.05));
  const Tensor uniform = Tensor::rand({20000}, DType::Float64, &g, -1.0, 3.0);
  CHECK(max(uniform).item() < 3.0);
  CHECK(-max(-uniform).item() > -1.0);
  CHECK(mean(uniform).item() == doctest::Approx(1.0).epsilon(0.05));
}

TEST_CASE("tensor: views share storage and keep strides") {
  const Tensor x = Tensor::arange(0, 6).reshape({2, 3});
  const Tensor t = x.transpose(0, 1);
  CHECK(t.shape() == Shape{3, 2});
  CHECK(t.strides() == Strides{1, 3});
  CHECK_FALSE(t.is_contiguous());
  CHECK(values(t) == std::vector<double>{0, 3, 1, 4, 2, 5});
  CHECK(t.contiguous().is_contiguous());

  const Tensor column = x.slice(1, 1, 2);
  CHECK(column.shape() == Shape{2, 1});
  CHECK(values(column) == std::vector<double>{1, 4});
  const Tensor every_other = Tensor::arange(0, 10).slice(0, 1, 10, 3);
  CHECK(values(every_other) == std::vector<double>{1, 4, 7});

  // Writing through a view changes the base.
  Tensor row = x.slice(0, 1, 2);
  row.fill_(9.0);
  CHECK(values(x) == std::vector<double>{0, 1, 2, 9, 9, 9});

  const Tensor e = Tensor::arange(0, 3).reshape({3, 1}).expand({3, 4});
  CHECK(e.strides() == Strides{1, 0});
  CHECK(values(sum(e, {1})) == std::vector<double>{0, 4, 8});

  CHECK(values(x.permute({1, 0})) == values(x.transpose(0, 1)));
  CHECK(x.unsqueeze(1).shape() == Shape{2, 1, 3});
  CHECK(x.unsqueeze(1).squeeze(1).shape() == Shape{2, 3});
  CHECK(Tensor::zeros({2, 3, 4}).flatten(1).shape() == Shape{2, 12});
}

TEST_CASE("tensor: reshape of a non-dense view copies, view refuses") {
  const Tensor x = Tensor::arange(0, 6).reshape({2, 3}).transpose(0, 1);
  CHECK(values(x.reshape({6})) == std::vector<double>{0, 3, 1, 4, 2, 5});
  CHECK(error_of([&] { x.view({6}); }).find("not dense") != std::string::npos);
}

TEST_CASE("tensor: dtype conversion and copy_ with broadcasting") {
  const Tensor x = Tensor::arange(0, 4, 1, DType::Float64);
  CHECK(x.to(DType::Float32).dtype() == DType::Float32);
  CHECK(values(x.to(DType::Int64)) == std::vector<double>{0, 1, 2, 3});
  Tensor y = Tensor::zeros({2, 4});
  y.copy_(x);
  CHECK(values(y) == std::vector<double>{0, 1, 2, 3, 0, 1, 2, 3});
  const Tensor bytes = Tensor::from_vector<std::uint8_t>({0, 128, 255}, {3});
  CHECK(values(bytes.to(DType::Float32)) == std::vector<double>{0, 128, 255});
}

TEST_CASE("tensor: elementwise ops broadcast and reductions reduce") {
  const Tensor a = Tensor::from_vector<float>({1, 2, 3, 4, 5, 6}, {2, 3});
  const Tensor b = Tensor::from_vector<float>({10, 20, 30}, {3});
  CHECK(values(a + b) == std::vector<double>{11, 22, 33, 14, 25, 36});
  CHECK(values(a * 2.0) == std::vector<double>{2, 4, 6, 8, 10, 12});
  CHECK(values(sum(a, {0})) == std::vector<double>{5, 7, 9});
  CHECK(values(sum(a, {1}, true)) == std::vector<double>{6, 15});
  CHECK(sum(a, {1}, true).shape() == Shape{2, 1});
  CHECK(values(mean(a, {1})) == std::vector<double>{2, 5});
  CHECK(values(max(a, {0})) == std::vector<double>{4, 5, 6});
  CHECK(values(argmax(a, 1)) == std::vector<double>{2, 2});
  CHECK(var(a, {1}).to_vector<double>()[0] == doctest::Approx(1.0));
  CHECK(values(matmul(a, a.transpose(0, 1))) == std::vector<double>{14, 32, 32, 77});
}

TEST_CASE("tensor: printing shows values, shape and dtype") {
  const std::string text = to_string(Tensor::from_vector<float>({1.0f, -2.5f, 0.125f, 4.0f}, {2, 2}));
  CHECK(text.find("tensor([[") == 0);
  CHECK(text.find("-2.5000") != std::string::npos);
  CHECK(text.find("shape=[2, 2]") != std::string::npos);
  CHECK(text.find("dtype=float32") != std::string::npos);
  CHECK(to_string(Tensor::arange(0, 3, 1, DType::Int64)).find("[0, 1, 2]") != std::string::npos);
  // Large tensors are summarized.
  CHECK(to_string(Tensor::zeros({2000})).find("...") != std::string::npos);
}

TEST_CASE("tensor: errors name the op and the shapes") {
  const Tensor a = Tensor::zeros({2, 3}), b = Tensor::zeros({4});
  const std::string broadcast = error_of([&] { add(a, b); });
  CHECK(broadcast.find("add") != std::string::npos);
  CHECK(broadcast.find("[2, 3]") != std::string::npos);
  CHECK(broadcast.find("[4]") != std::string::npos);

  CHECK(error_of([&] { matmul(a, a); }).find("matmul") != std::string::npos);
  CHECK(error_of([&] { sum(a, {2}); }).find("axis 2 is out of range") != std::string::npos);
  CHECK(error_of([&] { add(a, Tensor::zeros({2, 3}, DType::Float64)); }).find("dtype mismatch") != std::string::npos);
  CHECK(error_of([&] { a.reshape({4, 2}); }).find("reshape") != std::string::npos);
  CHECK(error_of([&] { conv2d(Tensor::zeros({1, 3, 4, 4}), Tensor::zeros({2, 4, 3, 3})); }).find("conv2d") !=
        std::string::npos);
  CHECK(error_of([&] { exp(Tensor::zeros({2}, DType::Int64)); }).find("int64") != std::string::npos);
  CHECK(error_of([&] { Tensor().shape(); }).find("undefined") != std::string::npos);
  CHECK(error_of([&] {
          cross_entropy(Tensor::zeros({2, 3}), Tensor::from_vector<std::int64_t>({0, 3}, {2}));
        }).find("label 3") != std::string::npos);
}

}  // namespace core_tensor_test
