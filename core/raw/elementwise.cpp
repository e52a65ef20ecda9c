// Tensor-level calls of the elementwise, copy, fill and random kernels.
#include <algorithm>
#include <cstdint>

#include "core/generator.hpp"
#include "core/raw.hpp"
#include "kernels/activation_layout.hpp"
#include "kernels/random/random.hpp"

namespace kiln::raw {
namespace {

using kernels::kMaxRank;

// x's element strides when broadcast to `target`: missing leading dims and expanded size-1 dims get
// stride 0, so the kernel reads the same element again instead of a copy being made.
Strides broadcast_strides(const Tensor& x, const Shape& target) {
  Strides strides(static_cast<std::size_t>(target.rank()), 0);
  const int lead = target.rank() - x.dim();
  for (int axis = 0; axis < x.dim(); ++axis) {
    if (x.shape()[axis] != 1) strides[static_cast<std::size_t>(axis + lead)] = x.strides()[static_cast<std::size_t>(axis)];
  }
  return strides;
}

void check_rank(std::string_view op, const Shape& shape) {
  KILN_CHECK(shape.rank() <= kMaxRank, op, ": shape ", shape, " has more than ", kMaxRank, " dimensions");
}

// Calls fn.template operator()<T>() for the dtypes copies move between (bfloat16 included: raw::cast to and
// from it is a copy).
template <typename Fn> void visit_copyable(DType dtype, std::string_view role, Fn&& fn) {
  switch (dtype) {
    case DType::Float32: return fn.template operator()<float>();
    case DType::Float64: return fn.template operator()<double>();
    case DType::BFloat16:
      return fn.template operator()<bfloat16>();
    case DType::Int64: return fn.template operator()<std::int64_t>();
    case DType::UInt8: return fn.template operator()<std::uint8_t>();
    default: fail("copy: ", role, " dtype ", dtype_name(dtype), " is not supported");
  }
}

}  // namespace

void check_same_dtype_and_device(std::string_view op, const Tensor& reference,
                                 std::initializer_list<const Tensor*> others) {
  for (const Tensor* other : others) {
    if (!other->defined()) continue;
    KILN_CHECK(other->dtype() == reference.dtype(), op, ": dtype mismatch, ", reference.describe(), " and ",
               other->describe());
    KILN_CHECK(other->device() == reference.device(), op, ": device mismatch, ", reference.device().str(),
               " and ", other->device().str());
  }
}

// An elementwise op on a channels-last operand keeps that layout (binary ops of one shape when either
// operand has it, bringing the other to it; and a broadcast into a channels-last operand's shape), so the
// kernels run over the dense storage in memory order, whatever the layout.
Tensor unary(kernels::UnaryOp op, const kernels::UnaryParams& params, const Tensor& x) {
  const Tensor input = in_layout(x, stored_channels_last(x));
  Tensor output = empty_like(input);
  visit_floating(x.dtype(), "unary op", [&]<typename T>() {
    kernels::unary_forward<T>(x.device(), op, params, x.numel(), input.data<T>(), output.data<T>());
  });
  return output;
}

Tensor unary_backward(kernels::UnaryOp op, const kernels::UnaryParams& params, const Tensor& x, const Tensor& y,
                      const Tensor& gy) {
  const bool channels_last = stored_channels_last(x);
  const Tensor input = in_layout(x, channels_last), output = in_layout(y, channels_last);
  const Tensor grad_output = in_layout(gy, channels_last);
  Tensor grad_input = empty_like(input);
  visit_floating(x.dtype(), "unary op backward", [&]<typename T>() {
    kernels::unary_backward<T>(x.device(), op, params, x.numel(), input.data<T>(), output.data<T>(),
                               grad_output.data<T>(), grad_input.data<T>());
  });
  return grad_input;
}

Tensor binary(kernels::BinaryOp op, const Tensor& a, const Tensor& b, std::string_view name) {
  check_same_dtype_and_device(name, a, {&b});
  Shape shape = broadcast_shapes(a.shape(), b.shape(), name);
  check_rank(name, shape);
  if (a.shape() == b.shape() && (stored_channels_last(a) || stored_channels_last(b))) {
    const Tensor left = in_layout(a, true), right = in_layout(b, true);
    Tensor output = empty_like(left);
    const std::int64_t count = a.numel(), one = 1;
    visit_floating(a.dtype(), name, [&]<typename T>() {
      kernels::binary_forward<T>(a.device(), op, 1, &count, left.data<T>(), &one, right.data<T>(), &one,
                                 output.data<T>());
    });
    return output;
  }
  Strides a_strides = broadcast_strides(a, shape), b_strides = broadcast_strides(b, shape);
  // A channels-last operand of the output's own shape, the other broadcast to it (a squeeze-and-excitation's
  // x * s, s [N, C, 1, 1]): the output keeps the layout, and the kernel walks the dimensions in memory order,
  // N, H, W, C, so that the channels are the dense inner run it vectorizes (in NCHW order it read x a
  // channel's stride apart, through the reference kernel).
  const auto channels_last_of_shape = [&](const Tensor& x) {
    return x.shape() == shape && stored_channels_last(x);
  };
  if (shape.rank() == 4 && (channels_last_of_shape(a) || channels_last_of_shape(b))) {
    Tensor output = empty_channels_last(shape, a.dtype(), a.device());
    constexpr std::size_t kMemoryOrder[] = {0, 2, 3, 1};  // N, H, W, C
    std::int64_t sizes[4], a_walk[4], b_walk[4];
    for (std::size_t i = 0; i < 4; ++i) {
      sizes[i] = shape.dims()[kMemoryOrder[i]];
      a_walk[i] = a_strides[kMemoryOrder[i]];
      b_walk[i] = b_strides[kMemoryOrder[i]];
    }
    visit_floating(a.dtype(), name, [&]<typename T>() {
      kernels::binary_forward<T>(a.device(), op, 4, sizes, a.data<T>(), a_walk, b.data<T>(), b_walk,
                                 output.data<T>());
    });
    return output;
  }
  Tensor output = Tensor::empty(shape, a.dtype(), a.device());
  visit_floating(a.dtype(), name, [&]<typename T>() {
    kernels::binary_forward<T>(a.device(), op, shape.rank(), shape.dims().data(), a.data<T>(), a_strides.data(),
                               b.data<T>(), b_strides.data(), output.data<T>());
  });
  return output;
}

void add_in_place(const Tensor& destination, const Tensor& source) {
  check_same_dtype_and_device("add_in_place", destination, {&source});
  KILN_CHECK(destination.shape() == source.shape(), "add_in_place: shapes ", destination.shape(), " and ",
             source.shape(), " differ");
  const bool channels_last = !destination.is_contiguous();
  KILN_CHECK(!channels_last || destination.is_channels_last(), "add_in_place: destination ",
             destination.describe(), " is neither contiguous nor channels-last");
  // Each element is read and then written at the same place, so the sum may land where its first operand
  // lies: the dense kernel over both in the destination's layout.
  const Tensor addend = in_layout(source, channels_last);
  const std::int64_t count = destination.numel(), one = 1;
  visit_floating(destination.dtype(), "add_in_place", [&]<typename T>() {
    kernels::binary_forward<T>(destination.device(), kernels::BinaryOp::Add, 1, &count, destination.data<T>(),
                               &one, addend.data<T>(), &one, destination.data<T>());
  });
}

void copy(const Tensor& destination, const Tensor& source) {
  // Across devices the source first moves, dense, to the destination's device; the kernel then broadcasts
  // and converts it there.
  if (source.device() != destination.device()) return copy(destination, source.to(destination.device()));
  const Shape& shape = destination.shape();
  KILN_CHECK(broadcast_shapes(source.shape(), shape, "copy") == shape, "copy: source ", source.describe(),
             " does not broadcast to destination ", destination.describe());
  check_rank("copy", shape);
  const Strides source_strides = broadcast_strides(source, shape);
  if (source.dtype() == DType::Int32 || destination.dtype() == DType::Int32) {  // max pooling's argmax
    KILN_CHECK(source.dtype() == destination.dtype(), "copy: int32 copies only to int32, not ",
               source.describe(), " to ", destination.describe());
    return kernels::copy_strided<std::int32_t, std::int32_t>(
        destination.device(), shape.rank(), shape.dims().data(), source.data<std::int32_t>(),
        source_strides.data(), destination.data<std::int32_t>(), destination.strides().data());
  }
  visit_copyable(source.dtype(), "source", [&]<typename Src>() {
    visit_copyable(destination.dtype(), "destination", [&]<typename Dst>() {
      if constexpr (std::is_same_v<Dst, std::uint8_t> && !std::is_same_v<Src, std::uint8_t>) {
        fail("copy: converting ", source.describe(), " to uint8 is not supported");
      } else if constexpr (std::is_same_v<Src, std::uint8_t> && !std::is_floating_point_v<Dst> &&
                           !std::is_same_v<Dst, bfloat16>) {
        fail("copy: converting uint8 to ", dtype_name(destination.dtype()), " is not supported");
      } else {
        kernels::copy_strided<Src, Dst>(destination.device(), shape.rank(), shape.dims().data(),
                                        source.data<Src>(), source_strides.data(), destination.data<Dst>(),
                                        destination.strides().data());
      }
    });
  });
}

void fill(const Tensor& destination, double value) {
  // Dense storage in either layout is numel() values in a row: one fill kernel (a view with gaps, a copy).
  if (!destination.is_contiguous() && !stored_channels_last(destination)) {
    copy(destination, Tensor::full(Shape{}, value, destination.dtype(), destination.device()));
    return;
  }
  const Device device = destination.device();
  const std::int64_t n = destination.numel();
  switch (destination.dtype()) {
    case DType::Float32: return kernels::fill<float>(device, n, static_cast<float>(value), destination.data<float>());
    case DType::Float64: return kernels::fill<double>(device, n, value, destination.data<double>());
    case DType::BFloat16:
      return kernels::fill<bfloat16>(device, n, static_cast<bfloat16>(value), destination.data<bfloat16>());
    case DType::Int64:
      return kernels::fill<std::int64_t>(device, n, static_cast<std::int64_t>(value),
                                         destination.data<std::int64_t>());
    case DType::Int32:
      return kernels::fill<std::int32_t>(device, n, static_cast<std::int32_t>(value),
                                         destination.data<std::int32_t>());
    default: fail("fill: dtype ", dtype_name(destination.dtype()), " is not supported");
  }
}

Tensor flip(const Tensor& x, const std::vector<int>& axes) {
  check_rank("flip", x.shape());
  // x read backwards along each flipped axis: from its last element there, with that axis's stride negated,
  // by the strided copy (every copy kernel takes signed strides). The output is dense in x's layout.
  Strides source_strides = x.strides();
  std::int64_t last = 0;  // the source element at output index 0, from x's first
  for (const int axis : axes) {
    const auto a = static_cast<std::size_t>(axis);
    if (x.shape()[axis] > 0) last += (x.shape()[axis] - 1) * source_strides[a];
    source_strides[a] = -source_strides[a];
  }
  Tensor output = empty_in_layout(x.shape(), x.dtype(), x.device(), lies_channels_last(x));
  if (x.numel() == 0) return output;
  visit_copyable(x.dtype(), "flip", [&]<typename T>() {
    if constexpr (std::is_same_v<T, std::uint8_t>) {
      fail("flip: ", x.describe(), ": uint8 is not supported");
    } else {
      kernels::copy_strided<T, T>(x.device(), x.dim(), x.shape().dims().data(), x.data<T>() + last,
                                  source_strides.data(), output.data<T>(), output.strides().data());
    }
  });
  return output;
}

Tensor contiguous(const Tensor& x) {
  if (x.is_contiguous()) return x;
  Tensor dense = Tensor::empty(x.shape(), x.dtype(), x.device());
  copy(dense, x);
  return dense;
}

bool stored_channels_last(const Tensor& x) { return x.is_channels_last() && !x.is_contiguous(); }

bool lies_channels_last(const Tensor& x) {
  if (stored_channels_last(x)) return true;
  if (x.dim() != 4 || x.is_contiguous() || x.shape()[1] == 1) return false;
  const auto& s = x.strides();
  return s[1] < s[3] && s[3] < s[2] && s[2] < s[0];  // C, then W, then H, then N
}

Tensor empty_channels_last(const Shape& shape, DType dtype, Device device) {
  KILN_CHECK(shape.rank() == 4, "channels-last: shape ", shape, " is not [N, C, H, W]");
  const kernels::ActivationStrides strides = kernels::channels_last_strides(shape[1], shape[2], shape[3]);
  return make_view(Tensor::empty({shape.numel()}, dtype, device), shape,
                   Strides(strides.begin(), strides.end()), 0);
}

Tensor to_channels_last(const Tensor& x) {
  if (x.is_channels_last()) return x;
  Tensor dense = empty_channels_last(x.shape(), x.dtype(), x.device());
  copy(dense, x);
  return dense;
}

Tensor empty_in_layout(const Shape& shape, DType dtype, Device device, bool channels_last) {
  return channels_last ? empty_channels_last(shape, dtype, device) : Tensor::empty(shape, dtype, device);
}

Tensor empty_like(const Tensor& x) {
  return empty_in_layout(x.shape(), x.dtype(), x.device(), stored_channels_last(x));
}

bool runs_channels_last(const Tensor& x) { return stored_channels_last(x); }

Tensor in_layout(const Tensor& t, bool channels_last) {
  if (!t.defined()) return t;
  return channels_last ? to_channels_last(t) : contiguous(t);
}

Tensor cast(const Tensor& x, DType dtype) {
  if (x.dtype() == dtype) return contiguous(x);
  // In x's layout: a channels-last batch cast to bfloat16 (--precision bf16) stays channels-last.
  Tensor converted = empty_in_layout(x.shape(), dtype, x.device(), stored_channels_last(x));
  copy(converted, x);
  return converted;
}

Tensor random_uniform(const Shape& shape, DType dtype, Generator& generator, double low, double high) {
  Tensor output = Tensor::empty(shape, dtype);
  const kernels::PhiloxState state = generator.take(static_cast<std::uint64_t>(shape.numel()));
  visit_float_or_double(dtype, "rand", [&]<typename T>() {
    kernels::random_uniform<T>(output.device(), output.numel(), state, static_cast<T>(low), static_cast<T>(high),
                               output.data<T>());
  });
  return output;
}

Tensor random_normal(const Shape& shape, DType dtype, Generator& generator, double mean, double std) {
  Tensor output = Tensor::empty(shape, dtype);
  const kernels::PhiloxState state = generator.take(static_cast<std::uint64_t>(shape.numel()));
  visit_float_or_double(dtype, "randn", [&]<typename T>() {
    kernels::random_normal<T>(output.device(), output.numel(), state, static_cast<T>(mean), static_cast<T>(std),
                              output.data<T>());
  });
  return output;
}

}  // namespace kiln::raw
