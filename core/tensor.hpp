// Tensor: a strided view (shape, strides, offset, dtype) over a reference-counted Storage, with the
// autograd state that makes it a node of the tape.
//
// A Tensor is a handle: copying it shares the view and its storage (like torch.Tensor). Views (reshape
// of a dense tensor, permute, transpose, slice, expand, squeeze, unsqueeze) share storage and are
// differentiable; `contiguous()` returns a dense copy only when needed.
//
// The math lives in core/ops.hpp as free functions (add, conv2d, ...) with their derivative rules in
// core/derivatives/; this file is the data structure.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/device.hpp"
#include "core/dtype.hpp"
#include "core/error.hpp"
#include "core/shape.hpp"
#include "core/storage.hpp"

namespace kiln {

class Generator;
struct Node;
class Tensor;

// What a Tensor handle points at. Autograd state rides along: requires_grad on leaves, the node that
// produced the tensor (grad_fn) on results of recorded ops, and the accumulated gradient of a leaf.
struct TensorImpl {
  std::shared_ptr<Storage> storage;
  Shape shape;
  Strides strides;
  std::int64_t offset = 0;  // in elements
  DType dtype = DType::Float32;

  bool requires_grad = false;
  std::shared_ptr<Node> grad_fn;
  std::shared_ptr<TensorImpl> grad;
};

class Tensor {
 public:
  Tensor() = default;  // an undefined tensor (no storage); `defined()` is false
  explicit Tensor(std::shared_ptr<TensorImpl> impl) : impl_(std::move(impl)) {}

  // ---- creation --------------------------------------------------------------------------------------
  static Tensor empty(const Shape& shape, DType dtype = DType::Float32, Device device = Device::cpu());
  static Tensor zeros(const Shape& shape, DType dtype = DType::Float32, Device device = Device::cpu());
  static Tensor ones(const Shape& shape, DType dtype = DType::Float32, Device device = Device::cpu());
  static Tensor full(const Shape& shape, double value, DType dtype = DType::Float32,
                     Device device = Device::cpu());
  static Tensor scalar(double value, DType dtype = DType::Float32, Device device = Device::cpu());
  // [start, start + step, ...) up to but excluding end.
  static Tensor arange(double start, double end, double step = 1.0, DType dtype = DType::Float32);
  // Uniform in (low, high) and normal(mean, std), drawn from `generator` (the default one if null).
  static Tensor rand(const Shape& shape, DType dtype = DType::Float32, Generator* generator = nullptr,
                     double low = 0.0, double high = 1.0);
  static Tensor randn(const Shape& shape, DType dtype = DType::Float32, Generator* generator = nullptr,
                      double mean = 0.0, double std = 1.0);
  // A dense tensor holding a copy of `values`, which must have shape.numel() elements.
  template <typename T> static Tensor from_vector(const std::vector<T>& values, const Shape& shape);

  // ---- metadata --------------------------------------------------------------------------------------
  bool defined() const { return impl_ != nullptr; }
  const Shape& shape() const { return impl().shape; }
  int dim() const { return shape().rank(); }
  std::int64_t size(int axis) const;  // axis may be negative
  const Strides& strides() const { return impl().strides; }
  std::int64_t offset() const { return impl().offset; }
  std::int64_t numel() const { return shape().numel(); }
  DType dtype() const { return impl().dtype; }
  Device device() const { return impl().storage->device(); }
  bool is_contiguous() const;
  // Stored channels-last: a [N, C, H, W] whose elements lie in memory as [N, H, W, C], strides [H*W*C, 1,
  // W*C, C] (PyTorch's torch.channels_last). The convolution, batch norm and elementwise ops (CPU and CUDA)
  // keep this layout from input to output, so a network fed channels-last stays so; every other op reads it
  // through its strides.
  bool is_channels_last() const;
  // A short description for error messages: "float32[2, 3]".
  std::string describe() const;

  // ---- element access ---------------------------------------------------------------------------------
  // Pointer to the first element of the view, in the memory of device(); T must match dtype().
  template <typename T> T* data() const;
  // The same pointer untyped, and the bytes numel() elements take: a dense tensor's elements as one block,
  // for raw copies (to another device, into a file, through a pinned buffer).
  void* data_ptr() const;
  std::size_t nbytes() const { return static_cast<std::size_t>(numel()) * dtype_size(dtype()); }
  // The single element of a one-element tensor, converted to double (copied to the host: for a CUDA
  // tensor this waits for the kernels that compute it).
  double item() const;
  // The elements in row-major order on the host, converted to T (any view, any source dtype, any device).
  template <typename T> std::vector<T> to_vector() const;

  // ---- views and copies (differentiable) ---------------------------------------------------------------
  Tensor reshape(const Shape& shape) const;  // one size may be -1; copies only if the view is not dense
  Tensor view(const Shape& shape) const;     // like reshape, but throws instead of copying
  Tensor permute(const std::vector<int>& order) const;
  Tensor transpose(int axis_a, int axis_b) const;
  Tensor slice(int axis, std::int64_t start, std::int64_t end, std::int64_t step = 1) const;
  Tensor expand(const Shape& shape) const;  // broadcast size-1 (or missing leading) dims, stride 0
  Tensor squeeze(int axis) const;
  Tensor unsqueeze(int axis) const;
  Tensor flatten(int start_axis = 0, int end_axis = -1) const;
  Tensor contiguous() const;
  Tensor channels_last() const;         // a dense channels-last copy, or this tensor when it is one already
  Tensor clone() const;                 // a dense copy that stays on the tape
  Tensor to(DType dtype) const;         // differentiable between floating types
  // A dense copy on `device`, or this tensor when it is already there. Not recorded on the tape: inputs
  // and parameters move before a forward pass, never inside one. Synchronous (the copy has finished when
  // it returns); train/device_batches.hpp overlaps input copies with compute.
  Tensor to(Device device) const;

  // ---- autograd ----------------------------------------------------------------------------------------
  bool requires_grad() const { return impl().requires_grad; }
  // Marks a leaf as a parameter the tape tracks. Throws on a non-leaf (its grad comes from its inputs).
  Tensor& set_requires_grad(bool requires_grad = true);
  bool is_leaf() const { return impl().grad_fn == nullptr; }
  const std::shared_ptr<Node>& grad_fn() const { return impl().grad_fn; }
  // The gradient accumulated by backward() into this leaf (undefined until then).
  Tensor grad() const;
  void set_grad(const Tensor& grad);
  void zero_grad() { impl().grad.reset(); }
  // Runs the tape backwards from this tensor. A scalar needs no argument (its gradient is 1); any other
  // tensor needs `grad`, of the same shape.
  void backward(const Tensor& grad = Tensor()) const;
  // The same data, cut from the tape.
  Tensor detach() const;

  // ---- in place (never recorded; for optimizers and initialization, under no_grad) ----------------------
  Tensor& copy_(const Tensor& source);  // source broadcasts to this shape; dtypes convert
  Tensor& fill_(double value);
  Tensor& zero_() { return fill_(0.0); }
  // Moves this tensor's data to `device` in place, dense: every handle to it (a module's member, an
  // optimizer's parameter list) sees the new storage. Views taken earlier keep the old data; the gradient
  // is dropped. For parameters and buffers before training (layers::Module::to).
  Tensor& move_to_(Device device);

  TensorImpl& impl() const;
  const std::shared_ptr<TensorImpl>& impl_ptr() const { return impl_; }
  bool same(const Tensor& other) const { return impl_ == other.impl_; }

 private:
  std::shared_ptr<TensorImpl> impl_;
};

// data<T>() of an optional operand (a bias, a class weight, a residual): nullptr where it is undefined.
template <typename T>
T* data_or_null(const Tensor& tensor) {
  return tensor.defined() ? tensor.data<T>() : nullptr;
}

// A tensor with the name a module, an optimizer or a checkpoint knows it by ("stage1.0.conv1.weight").
using NamedTensor = std::pair<std::string, Tensor>;

// A new view sharing `base`'s storage (and nothing of its autograd state).
Tensor make_view(const Tensor& base, Shape shape, Strides strides, std::int64_t offset);

// Readable printing, like PyTorch's: values with shape and dtype.
std::ostream& operator<<(std::ostream& out, const Tensor& tensor);
std::string to_string(const Tensor& tensor);

}  // namespace kiln
