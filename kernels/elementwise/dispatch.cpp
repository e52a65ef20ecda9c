// The single dispatch point for the elementwise family: every caller goes through these functions, and only
// here is an implementation chosen. A CUDA device runs the CUDA kernels (cuda_elementwise.cu, cuda_fill.cu),
// every op and dtype. On the CPU, float goes to the AVX-512 / AVX2 kernels (by cpu_level()) for the ops and
// layouts they cover (every float -> float copy). bfloat16 goes to the same kernels, computing in float
// lanes, for the ops whose float result rounded once is the reference's (double, rounded once) bfloat16:
// where the exact result is a bfloat16 value or the float operation is exact (below), and for its dense
// copies, its NCHW <-> channels-last transposes and its conversions to and from float. Both take the
// vectorized sigmoid, tanh, GELU, SiLU, hard sigmoid and hard swish (within a few float ulps; one bfloat16
// ulp: below). Everything else (double, int64, the other transcendentals, binary ops on transposed or
// gathered layouts, bfloat16's inexact ops) runs the reference kernels.
#include <algorithm>
#include <array>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>

#include "core/profiler.hpp"
#include "kernels/activation_layout.hpp"
#include "kernels/cpu_level.hpp"
#include "kernels/elementwise/elementwise.hpp"

namespace kiln::kernels {
namespace {

// Rows shorter than this spend more on the per-row bookkeeping than the vector loop saves.
constexpr std::int64_t kMinRowLength = 16;

// Which ops the vectorized kernels take, on float and on bfloat16 (any other T: none).
//
// bfloat16 takes the ops whose float result, rounded once to bfloat16, is the correctly rounded result the
// reference gives, and the transcendental activations (below, one bfloat16 ulp). Neg, Abs and Relu select or
// negate a value (exact); their backward multiplies gy by 0, 1 or -1 (exact). A sum or difference of two
// bfloat16 (8-bit significands, all multiples of 2^-133) is exact in float unless their exponents lie more
// than 16 apart; then the smaller is under 2^-16 of the larger, which is a bfloat16, so the exact sum lies
// far inside the larger's rounding interval, and so does its float rounding: rounding that to bfloat16 gives
// the larger, as correct rounding does. A product of two bfloat16 has at most 16 significant bits: exact in
// float down to 2^-134 (float's subnormals reach 2^-149), and one below 2^-134 rounds to zero in bfloat16
// whichever way it gets there (bfloat16's smallest nonzero value is 2^-133, and float rounding cannot carry
// the product past the tie at 2^-134, which float holds), so Mul rounds once too. Not so for Div, Sqrt, or
// LeakyRelu's float alpha, whose float results may round onto a bfloat16 tie the exact result misses, or
// Clamp with bounds bfloat16 cannot hold, which the float kernel rounds to float before comparing and
// returning: those keep the reference. Clamp with bfloat16 bounds (ReLU6's 0 and 6) is exact: a comparison of
// two bfloat16 values in float is the comparison of the values, the result is x or a bound, and the gradient
// gy or 0.
bool bfloat16_bounds(const UnaryParams& params) {
  const auto exact = [](double bound) { return static_cast<double>(bfloat16(bound)) == bound; };
  return exact(params.low) && exact(params.high);
}
// The unary ops whose float result, forward and backward, is exact on bfloat16 inputs.
bool exact_on_bfloat16(UnaryOp op, const UnaryParams& params) {
  return op == UnaryOp::Neg || op == UnaryOp::Abs || op == UnaryOp::Relu ||
         (op == UnaryOp::Clamp && bfloat16_bounds(params));
}
// The transcendental activations, which both types take vectorized though the results are not the
// reference's bits: the reference's double exp, tanh and erfc made each a pass 15 to 30 times a ReLU's.
// Sigmoid's and Tanh's forward and GELU's and SiLU's both ways run kernels/simd/transcendentals.hpp's
// approximations, within a few float ulps of the reference; Sigmoid's and Tanh's backward, y (1 - y) and 1 -
// y^2 in float, within an ulp or two. On bfloat16 that float result rounds to the reference's bfloat16 but
// where the exact value lies within those few float ulps of a tie between two bfloat16s, where it may take
// the neighbour: one bfloat16 ulp off at most. Over every bfloat16 input none does, but for subnormal results
// (tests/kernels/elementwise_bf16_test.cpp).
bool transcendental(UnaryOp op) {
  return op == UnaryOp::Sigmoid || op == UnaryOp::Tanh || op == UnaryOp::Gelu || op == UnaryOp::Silu;
}
// MobileNetV3's hard sigmoid and hard swish: a sum, a clamp, a division by 6 (and a product), each rounded to
// float where the reference rounds once from double, so within two ulps of it (measured over every 1024th
// float), forward and backward; on bfloat16, as the transcendental activations, one bfloat16 ulp at most,
// and over every bfloat16 input none is off.
bool hard_activation(UnaryOp op) { return op == UnaryOp::Hardsigmoid || op == UnaryOp::Hardswish; }

template <typename T>
bool vectorized_forward(UnaryOp op, const UnaryParams& params) {
  const bool exact = exact_on_bfloat16(op, params);
  if constexpr (std::is_same_v<T, bfloat16>) return exact || transcendental(op) || hard_activation(op);
  return std::is_same_v<T, float> &&
         (exact || transcendental(op) || hard_activation(op) || op == UnaryOp::LeakyRelu ||
          op == UnaryOp::Clamp || op == UnaryOp::Sqrt);
}
template <typename T>
bool vectorized_backward(UnaryOp op, const UnaryParams& params) {
  const bool exact = exact_on_bfloat16(op, params);
  if constexpr (std::is_same_v<T, bfloat16>) return exact || transcendental(op) || hard_activation(op);
  return std::is_same_v<T, float> && (exact || transcendental(op) || hard_activation(op) ||
                                      op == UnaryOp::LeakyRelu || op == UnaryOp::Clamp);
}
template <typename T>
bool vectorized(BinaryOp op) {
  const bool exact =
      op == BinaryOp::Add || op == BinaryOp::Sub || op == BinaryOp::AddRelu || op == BinaryOp::Mul;
  if constexpr (std::is_same_v<T, bfloat16>) return exact;
  return std::is_same_v<T, float> && (exact || op == BinaryOp::Div);
}

// The longest run of trailing dimensions along which each of two operands is dense or constant (see
// RowPlan), when its rows hold at least kMinRowLength elements; allow_constant false requires both dense.
// An operand's mode is set by its innermost dimension of size > 1: stride 1 is dense, stride 0 constant.
std::optional<RowPlan> plan_rows(int rank, const std::int64_t* sizes, const std::int64_t* strides0,
                                 const std::int64_t* strides1, bool allow_constant) {
  const std::int64_t* strides[2] = {strides0, strides1};
  RowPlan plan;
  plan.outer_rank = rank;
  enum class Mode { Unset, Dense, Constant };
  Mode modes[2] = {Mode::Unset, Mode::Unset};
  for (int d = rank - 1; d >= 0; --d) {
    bool fits = true;
    for (int k = 0; k < 2 && sizes[d] != 1; ++k) {
      const std::int64_t stride = strides[k][d];
      if (modes[k] == Mode::Unset)
        modes[k] = stride == 1 ? Mode::Dense : stride == 0 ? Mode::Constant : Mode::Unset;
      const bool dense_fits = modes[k] == Mode::Dense && stride == plan.row_length;
      const bool constant_fits = modes[k] == Mode::Constant && stride == 0 && allow_constant;
      fits = fits && (dense_fits || constant_fits);
    }
    if (!fits) break;
    plan.row_length *= sizes[d];
    plan.outer_rank = d;
  }
  if (plan.row_length < kMinRowLength) return std::nullopt;
  plan.constant_in_row[0] = modes[0] == Mode::Constant;
  plan.constant_in_row[1] = modes[1] == Mode::Constant;
  return plan;
}

// The op's name, the profiler's detail (core/profiler.hpp).
std::string_view profile_label(UnaryOp op) {
  switch (op) {
    case UnaryOp::Neg:
      return "neg";
    case UnaryOp::Exp:
      return "exp";
    case UnaryOp::Log:
      return "log";
    case UnaryOp::Sqrt:
      return "sqrt";
    case UnaryOp::Abs:
      return "abs";
    case UnaryOp::Relu:
      return "relu";
    case UnaryOp::LeakyRelu:
      return "leaky_relu";
    case UnaryOp::Sigmoid:
      return "sigmoid";
    case UnaryOp::Tanh:
      return "tanh";
    case UnaryOp::Gelu:
      return "gelu";
    case UnaryOp::Silu:
      return "silu";
    case UnaryOp::Hardsigmoid:
      return "hardsigmoid";
    case UnaryOp::Hardswish:
      return "hardswish";
    case UnaryOp::Clamp:
      return "clamp";
  }
  return "?";
}
std::string_view profile_label(BinaryOp op) {
  switch (op) {
    case BinaryOp::Add:
      return "add";
    case BinaryOp::Sub:
      return "sub";
    case BinaryOp::Mul:
      return "mul";
    case BinaryOp::Div:
      return "div";
    case BinaryOp::Pow:
      return "pow";
    case BinaryOp::Maximum:
      return "maximum";
    case BinaryOp::Minimum:
      return "minimum";
    case BinaryOp::Equal:
      return "equal";
    case BinaryOp::Greater:
      return "greater";
    case BinaryOp::AddRelu:
      return "add_relu";
  }
  return "?";
}

}  // namespace

template <typename T>
void unary_forward(Device device, UnaryOp op, const UnaryParams& params, std::int64_t n, const T* x, T* y) {
  profiler::Scope profile("unary_forward", device, dtype_of_v<T>);
  if (profile.measuring()) profile.set_detail(std::string(profile_label(op)));
#ifdef KILN_WITH_CUDA
  if (device.is_cuda()) return cuda::unary_forward(op, params, n, x, y);
#endif
  require_cpu(device, "unary_forward");
  if constexpr (std::is_same_v<T, float> || std::is_same_v<T, bfloat16>) {
    if (vectorized_forward<T>(op, params)) {
      switch (cpu_level()) {
        case CpuLevel::Avx512:
          return avx512::unary_forward(op, params, n, x, y);
        case CpuLevel::Avx2:
          return avx2::unary_forward(op, params, n, x, y);
        case CpuLevel::Reference:
          break;
      }
    }
  }
  reference::unary_forward(op, params, n, x, y);
}

template <typename T>
void unary_backward(Device device, UnaryOp op, const UnaryParams& params, std::int64_t n, const T* x,
                    const T* y, const T* gy, T* gx) {
  profiler::Scope profile("unary_backward", device, dtype_of_v<T>);
  if (profile.measuring()) profile.set_detail(std::string(profile_label(op)));
#ifdef KILN_WITH_CUDA
  if (device.is_cuda()) return cuda::unary_backward(op, params, n, x, y, gy, gx);
#endif
  require_cpu(device, "unary_backward");
  if constexpr (std::is_same_v<T, float> || std::is_same_v<T, bfloat16>) {
    if (vectorized_backward<T>(op, params)) {
      switch (cpu_level()) {
        case CpuLevel::Avx512:
          return avx512::unary_backward(op, params, n, x, y, gy, gx);
        case CpuLevel::Avx2:
          return avx2::unary_backward(op, params, n, x, y, gy, gx);
        case CpuLevel::Reference:
          break;
      }
    }
  }
  reference::unary_backward(op, params, n, x, y, gy, gx);
}

template <typename T>
void binary_forward(Device device, BinaryOp op, int rank, const std::int64_t* sizes, const T* a,
                    const std::int64_t* a_strides, const T* b, const std::int64_t* b_strides, T* out) {
  profiler::Scope profile("binary_forward", device, dtype_of_v<T>);
  if (profile.measuring()) profile.set_detail(std::string(profile_label(op)));
#ifdef KILN_WITH_CUDA
  if (device.is_cuda()) return cuda::binary_forward(op, rank, sizes, a, a_strides, b, b_strides, out);
#endif
  require_cpu(device, "binary_forward");
  if constexpr (std::is_same_v<T, float> || std::is_same_v<T, bfloat16>) {
    const std::optional<RowPlan> plan = vectorized<T>(op) && cpu_level() != CpuLevel::Reference
                                            ? plan_rows(rank, sizes, a_strides, b_strides, true)
                                            : std::nullopt;
    if (plan && cpu_level() == CpuLevel::Avx512)
      return avx512::binary_forward(op, *plan, sizes, a, a_strides, b, b_strides, out);
    if (plan && cpu_level() == CpuLevel::Avx2)
      return avx2::binary_forward(op, *plan, sizes, a, a_strides, b, b_strides, out);
  }
  reference::binary_forward(op, rank, sizes, a, a_strides, b, b_strides, out);
}

namespace {

// A copy that is `count` dense rows x columns matrices into their transposes.
struct Transposes {
  std::int64_t count, rows, columns;
};

// How a 4-D copy operand of `sizes` lies in memory: one of the two dense layouts of an [N, C, H, W] tensor
// (kernels/activation_layout.hpp, core/tensor.hpp's is_channels_last), or neither.
enum class Layout4 { Nchw, ChannelsLast, Strided };
Layout4 layout_of(const std::int64_t* sizes, const std::int64_t* strides) {
  const ActivationStrides nchw = nchw_strides(sizes[1], sizes[2], sizes[3]);
  const ActivationStrides nhwc = channels_last_strides(sizes[1], sizes[2], sizes[3]);
  if (std::equal(nchw.begin(), nchw.end(), strides)) return Layout4::Nchw;
  if (std::equal(nhwc.begin(), nhwc.end(), strides)) return Layout4::ChannelsLast;
  return Layout4::Strided;
}
std::string_view layout_name(Layout4 layout) {
  switch (layout) {
    case Layout4::Nchw:
      return "nchw";
    case Layout4::ChannelsLast:
      return "channels-last";
    case Layout4::Strided:
      return "strided";
  }
  return "?";
}

// The copies between the two dense layouts: NCHW to channels-last transposes each image's [C][H*W],
// channels-last to NCHW its [H*W][C]. Anything else, nullopt.
std::optional<Transposes> layout_transposes(int rank, const std::int64_t* sizes,
                                            const std::int64_t* src_strides,
                                            const std::int64_t* dst_strides) {
  if (rank != 4) return std::nullopt;
  const std::int64_t n = sizes[0], c = sizes[1], plane = sizes[2] * sizes[3];
  const Layout4 from = layout_of(sizes, src_strides), to = layout_of(sizes, dst_strides);
  if (from == Layout4::Nchw && to == Layout4::ChannelsLast) return Transposes{n, c, plane};
  if (from == Layout4::ChannelsLast && to == Layout4::Nchw) return Transposes{n, plane, c};
  return std::nullopt;
}

// A copy's dimensions reordered so the destination's strides fall, the densest last (a stable sort: equal
// strides keep their order). The same elements land in the same places; the row plans below then find the
// longest run of memory (a channels-last tensor copied into channels-last is one dense run, where in NCHW
// order no dimension is dense), and the strided rows walk the destination in order.
struct CopyDimensions {
  int rank = 0;
  std::array<std::int64_t, kMaxRank> sizes{}, src_strides{}, dst_strides{};
};
CopyDimensions in_destination_order(int rank, const std::int64_t* sizes, const std::int64_t* src_strides,
                                    const std::int64_t* dst_strides) {
  std::array<int, kMaxRank> order{};
  for (int d = 0; d < rank; ++d) order[static_cast<std::size_t>(d)] = d;
  std::stable_sort(order.begin(), order.begin() + rank,
                   [&](int a, int b) { return dst_strides[a] > dst_strides[b]; });
  CopyDimensions reordered;
  reordered.rank = rank;
  for (int d = 0; d < rank; ++d) {
    const auto i = static_cast<std::size_t>(d);
    reordered.sizes[i] = sizes[order[i]];
    reordered.src_strides[i] = src_strides[order[i]];
    reordered.dst_strides[i] = dst_strides[order[i]];
  }
  return reordered;
}

// The profiler's detail for a copy (core/profiler.hpp): a conversion's types, and for a 4-D copy the
// layouts it moves between ("nchw -> channels-last"), so that layout changes show in a profile.
template <typename Src, typename Dst>
std::string copy_label(int rank, const std::int64_t* sizes, const std::int64_t* src_strides,
                       const std::int64_t* dst_strides) {
  std::string label;
  if constexpr (!std::is_same_v<Src, Dst>)
    label = std::string(dtype_name(dtype_of_v<Src>)) + " -> " + std::string(dtype_name(dtype_of_v<Dst>));
  if (rank == 4) {
    label += std::string(label.empty() ? "" : ", ") +
             std::string(layout_name(layout_of(sizes, src_strides))) + " -> " +
             std::string(layout_name(layout_of(sizes, dst_strides)));
  }
  return label;
}

}  // namespace

template <typename Src, typename Dst>
void copy_strided(Device device, int rank, const std::int64_t* sizes, const Src* src,
                  const std::int64_t* src_strides, Dst* dst, const std::int64_t* dst_strides) {
  profiler::Scope profile("copy_strided", device, dtype_of_v<Dst>);
  if (profile.measuring()) profile.set_detail(copy_label<Src, Dst>(rank, sizes, src_strides, dst_strides));
#ifdef KILN_WITH_CUDA
  if (device.is_cuda()) return cuda::copy_strided(rank, sizes, src, src_strides, dst, dst_strides);
#endif
  require_cpu(device, "copy_strided");
  for (int d = 0; d < rank; ++d) {
    if (sizes[d] == 0) return;  // nothing to copy (and a row walk would divide by the empty row's length)
  }
  // The threaded copies need each destination element written once: a destination broadcast along some
  // dimension (stride 0) keeps the reference's order, the last write winning.
  bool one_write_each = rank >= 1;
  for (int d = 0; d < rank; ++d) one_write_each = one_write_each && (sizes[d] == 1 || dst_strides[d] != 0);
  // float -> float and bfloat16 -> bfloat16 copy; float <-> bfloat16 convert (a cast of a dense tensor).
  constexpr bool copy =
      std::is_same_v<Src, Dst> && (std::is_same_v<Src, float> || std::is_same_v<Src, bfloat16>);
  constexpr bool conversion = (std::is_same_v<Src, float> && std::is_same_v<Dst, bfloat16>) ||
                              (std::is_same_v<Src, bfloat16> && std::is_same_v<Dst, float>);
  if constexpr (copy || conversion) {
    if (cpu_level() != CpuLevel::Reference && one_write_each) {
      // In the destination's memory order: the longest dense runs, including those the logical order hides
      // (a channels-last batch cast to bfloat16 is one).
      const CopyDimensions d = in_destination_order(rank, sizes, src_strides, dst_strides);
      const std::int64_t* const d_sizes = d.sizes.data();
      const std::int64_t *const d_src = d.src_strides.data(), *const d_dst = d.dst_strides.data();
      const std::optional<RowPlan> plan = plan_rows(d.rank, d_sizes, d_src, d_dst, false);
      if (plan && cpu_level() == CpuLevel::Avx512) {
        if constexpr (copy) return avx512::copy_rows(*plan, d_sizes, src, d_src, dst, d_dst);
        if constexpr (conversion) return avx512::convert_rows(*plan, d_sizes, src, d_src, dst, d_dst);
      }
      if (plan && cpu_level() == CpuLevel::Avx2) {
        if constexpr (copy) return avx2::copy_rows(*plan, d_sizes, src, d_src, dst, d_dst);
        if constexpr (conversion) return avx2::convert_rows(*plan, d_sizes, src, d_src, dst, d_dst);
      }
      // Between NCHW and channels-last (float, bfloat16): a batch of [C][H*W] <-> [H*W][C] transposes.
      if constexpr (std::is_same_v<Src, Dst> &&
                    (std::is_same_v<Src, float> || std::is_same_v<Src, bfloat16>)) {
        if (const std::optional<Transposes> transposes =
                layout_transposes(rank, sizes, src_strides, dst_strides)) {
          if (cpu_level() == CpuLevel::Avx512)
            return avx512::transpose_matrices(transposes->count, transposes->rows, transposes->columns, src,
                                              dst);
          if (cpu_level() == CpuLevel::Avx2)
            return avx2::transpose_matrices(transposes->count, transposes->rows, transposes->columns, src,
                                            dst);
        }
      }
      // Rows that are not dense (a subsampling slice, a transposed view) or too short for a plan, along the
      // destination's densest dimension (ResNet's shortcut in channels-last: rows of channels).
      if constexpr (copy) {
        if (cpu_level() == CpuLevel::Avx512)
          return avx512::copy_strided_rows(d.rank, d_sizes, src, d_src, dst, d_dst);
        if (cpu_level() == CpuLevel::Avx2)
          return avx2::copy_strided_rows(d.rank, d_sizes, src, d_src, dst, d_dst);
      }
    }
  }
  reference::copy_strided(rank, sizes, src, src_strides, dst, dst_strides);
}

template <typename T>
void fill(Device device, std::int64_t n, T value, T* out) {
  profiler::Scope profile("fill", device, dtype_of_v<T>);
#ifdef KILN_WITH_CUDA
  if (device.is_cuda()) return cuda::fill(n, value, out);
#endif
  require_cpu(device, "fill");
  if constexpr (std::is_same_v<T, float> || std::is_same_v<T, bfloat16>) {
    switch (cpu_level()) {
      case CpuLevel::Avx512:
        return avx512::fill(n, value, out);
      case CpuLevel::Avx2:
        return avx2::fill(n, value, out);
      case CpuLevel::Reference:
        break;
    }
  }
  reference::fill(n, value, out);
}

template void unary_forward<float>(Device, UnaryOp, const UnaryParams&, std::int64_t, const float*, float*);
template void unary_forward<double>(Device, UnaryOp, const UnaryParams&, std::int64_t, const double*,
                                    double*);
template void unary_backward<float>(Device, UnaryOp, const UnaryParams&, std::int64_t, const float*,
                                    const float*, const float*, float*);
template void unary_backward<double>(Device, UnaryOp, const UnaryParams&, std::int64_t, const double*,
                                     const double*, const double*, double*);
template void unary_forward<bfloat16>(Device, UnaryOp, const UnaryParams&, std::int64_t, const bfloat16*,
                                      bfloat16*);
template void unary_backward<bfloat16>(Device, UnaryOp, const UnaryParams&, std::int64_t, const bfloat16*,
                                       const bfloat16*, const bfloat16*, bfloat16*);

template void binary_forward<float>(Device, BinaryOp, int, const std::int64_t*, const float*,
                                    const std::int64_t*, const float*, const std::int64_t*, float*);
template void binary_forward<double>(Device, BinaryOp, int, const std::int64_t*, const double*,
                                     const std::int64_t*, const double*, const std::int64_t*, double*);
template void binary_forward<bfloat16>(Device, BinaryOp, int, const std::int64_t*, const bfloat16*,
                                       const std::int64_t*, const bfloat16*, const std::int64_t*, bfloat16*);

// copy_strided: every pair of float, double, bfloat16 and int64, and uint8 -> float / double / bfloat16
// (decoded images).
template void copy_strided<float, float>(Device, int, const std::int64_t*, const float*, const std::int64_t*,
                                         float*, const std::int64_t*);
template void copy_strided<float, double>(Device, int, const std::int64_t*, const float*, const std::int64_t*,
                                          double*, const std::int64_t*);
template void copy_strided<float, std::int64_t>(Device, int, const std::int64_t*, const float*,
                                                const std::int64_t*, std::int64_t*, const std::int64_t*);
template void copy_strided<double, float>(Device, int, const std::int64_t*, const double*,
                                          const std::int64_t*, float*, const std::int64_t*);
template void copy_strided<double, double>(Device, int, const std::int64_t*, const double*,
                                           const std::int64_t*, double*, const std::int64_t*);
template void copy_strided<double, std::int64_t>(Device, int, const std::int64_t*, const double*,
                                                 const std::int64_t*, std::int64_t*, const std::int64_t*);
template void copy_strided<std::int64_t, float>(Device, int, const std::int64_t*, const std::int64_t*,
                                                const std::int64_t*, float*, const std::int64_t*);
template void copy_strided<std::int64_t, double>(Device, int, const std::int64_t*, const std::int64_t*,
                                                 const std::int64_t*, double*, const std::int64_t*);
template void copy_strided<std::int64_t, std::int64_t>(Device, int, const std::int64_t*, const std::int64_t*,
                                                       const std::int64_t*, std::int64_t*,
                                                       const std::int64_t*);
template void copy_strided<std::uint8_t, float>(Device, int, const std::int64_t*, const std::uint8_t*,
                                                const std::int64_t*, float*, const std::int64_t*);
template void copy_strided<std::uint8_t, double>(Device, int, const std::int64_t*, const std::uint8_t*,
                                                 const std::int64_t*, double*, const std::int64_t*);
template void copy_strided<std::uint8_t, bfloat16>(Device, int, const std::int64_t*, const std::uint8_t*,
                                                   const std::int64_t*, bfloat16*, const std::int64_t*);
template void copy_strided<float, bfloat16>(Device, int, const std::int64_t*, const float*,
                                            const std::int64_t*, bfloat16*, const std::int64_t*);
template void copy_strided<double, bfloat16>(Device, int, const std::int64_t*, const double*,
                                             const std::int64_t*, bfloat16*, const std::int64_t*);
template void copy_strided<std::int64_t, bfloat16>(Device, int, const std::int64_t*, const std::int64_t*,
                                                   const std::int64_t*, bfloat16*, const std::int64_t*);
template void copy_strided<bfloat16, bfloat16>(Device, int, const std::int64_t*, const bfloat16*,
                                               const std::int64_t*, bfloat16*, const std::int64_t*);
template void copy_strided<bfloat16, float>(Device, int, const std::int64_t*, const bfloat16*,
                                            const std::int64_t*, float*, const std::int64_t*);
template void copy_strided<bfloat16, double>(Device, int, const std::int64_t*, const bfloat16*,
                                             const std::int64_t*, double*, const std::int64_t*);
template void copy_strided<bfloat16, std::int64_t>(Device, int, const std::int64_t*, const bfloat16*,
                                                   const std::int64_t*, std::int64_t*, const std::int64_t*);

template void fill<float>(Device, std::int64_t, float, float*);
template void fill<double>(Device, std::int64_t, double, double*);
template void fill<bfloat16>(Device, std::int64_t, bfloat16, bfloat16*);
template void fill<std::int64_t>(Device, std::int64_t, std::int64_t, std::int64_t*);
// int32 (max pooling's argmax) only moves as itself.
template void copy_strided<std::int32_t, std::int32_t>(Device, int, const std::int64_t*, const std::int32_t*,
                                                       const std::int64_t*, std::int32_t*,
                                                       const std::int64_t*);
template void fill<std::int32_t>(Device, std::int64_t, std::int32_t, std::int32_t*);

}  // namespace kiln::kernels
