// Tensor's data-structure side: creation, metadata, element access, autograd bookkeeping and in-place
// writes. The differentiable views (reshape, permute, ...) are defined with their derivative rules in
// core/derivatives.cpp.
#include "core/tensor.hpp"

#include <cmath>

#include "core/autograd.hpp"
#include "core/cuda_runtime.hpp"
#include "core/generator.hpp"
#include "core/raw.hpp"
#include "kernels/activation_layout.hpp"

namespace kiln {

TensorImpl& Tensor::impl() const {
  KILN_CHECK(impl_ != nullptr, "use of an undefined tensor");
  return *impl_;
}

// ---- creation ----------------------------------------------------------------------------------------

Tensor Tensor::empty(const Shape& shape, DType dtype, Device device) {
  for (std::int64_t size : shape) KILN_CHECK(size >= 0, "empty: negative size in shape ", shape);
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = Storage::allocate(static_cast<std::size_t>(shape.numel()) * dtype_size(dtype), device);
  impl->shape = shape;
  impl->strides = contiguous_strides(shape);
  impl->dtype = dtype;
  return Tensor(std::move(impl));
}

Tensor Tensor::full(const Shape& shape, double value, DType dtype, Device device) {
  Tensor tensor = empty(shape, dtype, device);
  raw::fill(tensor, value);
  return tensor;
}

Tensor Tensor::zeros(const Shape& shape, DType dtype, Device device) { return full(shape, 0.0, dtype, device); }
Tensor Tensor::ones(const Shape& shape, DType dtype, Device device) { return full(shape, 1.0, dtype, device); }
Tensor Tensor::scalar(double value, DType dtype, Device device) { return full(Shape{}, value, dtype, device); }

Tensor Tensor::arange(double start, double end, double step, DType dtype) {
  KILN_CHECK(step != 0.0, "arange: step must not be zero");
  const auto count = static_cast<std::int64_t>(std::max(0.0, std::ceil((end - start) / step)));
  std::vector<double> values(static_cast<std::size_t>(count));
  for (std::int64_t i = 0; i < count; ++i) values[static_cast<std::size_t>(i)] = start + static_cast<double>(i) * step;
  return from_vector(values, Shape{count}).to(dtype);
}

Tensor Tensor::rand(const Shape& shape, DType dtype, Generator* generator, double low, double high) {
  return raw::random_uniform(shape, dtype, generator ? *generator : default_generator(), low, high);
}

Tensor Tensor::randn(const Shape& shape, DType dtype, Generator* generator, double mean, double std) {
  return raw::random_normal(shape, dtype, generator ? *generator : default_generator(), mean, std);
}

template <typename T> Tensor Tensor::from_vector(const std::vector<T>& values, const Shape& shape) {
  KILN_CHECK(static_cast<std::int64_t>(values.size()) == shape.numel(), "from_vector: ", values.size(),
             " values do not fill shape ", shape);
  Tensor tensor = empty(shape, dtype_of_v<T>);
  std::copy(values.begin(), values.end(), tensor.data<T>());
  return tensor;
}
template Tensor Tensor::from_vector(const std::vector<float>&, const Shape&);
template Tensor Tensor::from_vector(const std::vector<double>&, const Shape&);
template Tensor Tensor::from_vector(const std::vector<bfloat16>&, const Shape&);
template Tensor Tensor::from_vector(const std::vector<std::int32_t>&, const Shape&);
template Tensor Tensor::from_vector(const std::vector<std::int64_t>&, const Shape&);
template Tensor Tensor::from_vector(const std::vector<std::uint8_t>&, const Shape&);

// ---- metadata ----------------------------------------------------------------------------------------

std::int64_t Tensor::size(int axis) const { return shape()[normalize_axis(axis, dim(), "size")]; }

bool Tensor::is_contiguous() const {
  std::int64_t expected = 1;
  for (int axis = dim() - 1; axis >= 0; --axis) {
    if (shape()[axis] != 1 && strides()[static_cast<std::size_t>(axis)] != expected) return false;
    expected *= shape()[axis];
  }
  return true;
}

bool Tensor::is_channels_last() const {
  if (dim() != 4) return false;
  const kernels::ActivationStrides expected =
      kernels::channels_last_strides(shape()[1], shape()[2], shape()[3]);
  for (int axis = 0; axis < 4; ++axis) {
    if (shape()[axis] != 1 && strides()[static_cast<std::size_t>(axis)] != expected[axis]) return false;
  }
  return true;
}

std::string Tensor::describe() const {
  if (!defined()) return "undefined";
  return std::string(dtype_name(dtype())) + shape().str();
}

// ---- devices -------------------------------------------------------------------------------------------

Tensor Tensor::to(Device target) const {
  if (target == device()) return *this;
  // Made dense where it is (a strided CUDA view through the CUDA copy kernel), then moved as one block.
  const Tensor source = contiguous();
  Tensor copy = empty(shape(), dtype(), target);
  cuda::copy_bytes(copy.data_ptr(), target, source.data_ptr(), device(), source.nbytes());
  return copy;
}

// ---- element access ----------------------------------------------------------------------------------

void* Tensor::data_ptr() const {
  return static_cast<char*>(impl().storage->data()) +
         static_cast<std::size_t>(offset()) * dtype_size(dtype());
}

template <typename T> T* Tensor::data() const {
  KILN_CHECK(dtype() == dtype_of_v<T>, "data: tensor ", describe(), " read as ", dtype_name(dtype_of_v<T>));
  return static_cast<T*>(data_ptr());
}
template float* Tensor::data<float>() const;
template double* Tensor::data<double>() const;
template bfloat16* Tensor::data<bfloat16>() const;
template std::int64_t* Tensor::data<std::int64_t>() const;
template std::int32_t* Tensor::data<std::int32_t>() const;
template std::uint8_t* Tensor::data<std::uint8_t>() const;
template std::int8_t* Tensor::data<std::int8_t>() const;

double Tensor::item() const {
  KILN_CHECK(numel() == 1, "item: tensor ", describe(), " has ", numel(), " elements, not one");
  return to_vector<double>()[0];
}

template <typename T> std::vector<T> Tensor::to_vector() const {
  if (!device().is_cpu()) return to(Device::cpu()).to_vector<T>();
  // Logical (row-major) order: a channels-last tensor is brought to NCHW first (a cast keeps the layout).
  const Tensor dense = raw::cast(raw::contiguous(*this), dtype_of_v<T>);
  const T* values = dense.data<T>();
  return std::vector<T>(values, values + numel());
}
template std::vector<float> Tensor::to_vector() const;
template std::vector<double> Tensor::to_vector() const;
template std::vector<bfloat16> Tensor::to_vector() const;
template std::vector<std::int32_t> Tensor::to_vector() const;
template std::vector<std::int64_t> Tensor::to_vector() const;

// ---- autograd ------------------------------------------------------------------------------------------

Tensor& Tensor::set_requires_grad(bool requires_grad) {
  KILN_CHECK(is_leaf(), "set_requires_grad: tensor ", describe(),
             " is the result of an op; only leaves can be marked (use detach() for a new leaf)");
  KILN_CHECK(!requires_grad || is_floating(dtype()), "set_requires_grad: tensor ", describe(),
             " is not floating-point, so it has no gradient");
  impl().requires_grad = requires_grad;
  return *this;
}

Tensor Tensor::grad() const { return impl().grad ? Tensor(impl().grad) : Tensor(); }

void Tensor::set_grad(const Tensor& grad) {
  KILN_CHECK(!grad.defined() || grad.shape() == shape(), "set_grad: gradient ", grad.describe(),
             " does not match tensor ", describe());
  impl().grad = grad.defined() ? grad.impl_ptr() : nullptr;
}

void Tensor::backward(const Tensor& grad) const {
  if (grad.defined()) {
    run_backward(*this, grad);
    return;
  }
  KILN_CHECK(numel() == 1, "backward: tensor ", describe(),
             " is not a scalar; pass the gradient of the loss with respect to it");
  run_backward(*this, Tensor::ones(shape(), dtype(), device()));
}

Tensor Tensor::detach() const { return make_view(*this, shape(), strides(), offset()); }

// ---- in place ------------------------------------------------------------------------------------------

Tensor& Tensor::copy_(const Tensor& source) {
  raw::copy(*this, source);
  return *this;
}

Tensor& Tensor::fill_(double value) {
  raw::fill(*this, value);
  return *this;
}

Tensor& Tensor::move_to_(Device target) {
  if (target == device()) return *this;
  const Tensor moved = to(target);
  TensorImpl& self = impl();
  self.storage = moved.impl().storage;
  self.strides = moved.strides();
  self.offset = 0;
  self.grad.reset();
  return *this;
}

Tensor make_view(const Tensor& base, Shape shape, Strides strides, std::int64_t offset) {
  auto impl = std::make_shared<TensorImpl>();
  impl->storage = base.impl().storage;
  impl->shape = std::move(shape);
  impl->strides = std::move(strides);
  impl->offset = offset;
  impl->dtype = base.dtype();
  return Tensor(std::move(impl));
}

}  // namespace kiln
