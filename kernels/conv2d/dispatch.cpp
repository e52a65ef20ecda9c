// The single dispatch point for the conv2d family: every caller (core/'s derivative rules, benchmarks)
// goes through these functions, and this is the only file that chooses an implementation.
//
// float: the algorithm comes from choose_conv2d_algorithm (algorithm.cpp: by shape, direction and CPU
// level), and the depthwise, bias and im2col / col2im kernels come in an AVX-512 and an AVX2 build, picked
// by cpu_level().
// double (gradient checks only) runs the reference kernels. bfloat16 takes the path bfloat16_conv2d_path
// names: the AMX tile convolutions where the CPU has AMX and they serve the geometry (amx_bf16_conv.hpp:
// channels-last activations; NCHW ones are copied channels-last around them), the depthwise-channels kernels
// on its channels-last tensors and the Winograd kernels on its tensors of either layout where the float
// dispatch would choose them (they widen and round in the copies they make anyway, the float kernels' bits),
// where the CPU has AVX512-BF16 the pair dot products for the other channels-last layers and for those
// Winograd serves worse, strided or with few positions (pointwise ones as one GEMM, the others straight from
// the activations or through im2col; sums in float, in their own order), and otherwise its inputs widened
// to float (exactly), the float dispatch (the fast kernels, summing in float), the output rounded to
// bfloat16 once; at the Reference CPU level the bfloat16 reference kernels (the oracle, not float's
// reference rounded a second time). On a CUDA device, all three alike: the candidate measured fastest for
// the shape (cuda_tuning.hpp): the library path (the direct depthwise kernels for groups == C_in == C_out,
// im2col + cuBLAS GEMM for every other geometry) or a step of the convolution ladder that agrees with it
// (README.md, "On a CUDA device").
//
// Before any of these, a float or bfloat16 pass on the CPU's fast kernels drops the kernel taps that read
// only padding (unreached_taps.hpp: a padded 3x3 on a 1x1 plane is a 1x1 convolution) and takes one-pixel
// planes as channels-last (cpu_pass); double and the Reference level keep the geometry as given.
//
// The bias gradient (a sum of gy per channel) runs the bias kernels on gy as stored, float or bfloat16, NCHW
// or channels-last, at either vector level.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <vector>

#include "core/error.hpp"
#include "core/profiler.hpp"
#include "kernels/activation_layout.hpp"
#include "kernels/amx/amx.hpp"
#include "kernels/batchnorm/batchnorm.hpp"
#include "kernels/conv2d/algorithm.hpp"
#include "kernels/conv2d/amx_bf16_conv.hpp"
#include "kernels/conv2d/batch_chunks.hpp"
#include "kernels/conv2d/conv2d.hpp"
#include "kernels/conv2d/cuda_tuning.hpp"
#include "kernels/conv2d/im2col.hpp"
#include "kernels/conv2d/unreached_taps.hpp"
#include "kernels/cpu_level.hpp"
#include "kernels/elementwise/elementwise.hpp"
#include "kernels/widened_bfloat16.hpp"

namespace kiln::kernels {
namespace {

// Where bfloat16's direct pair-dot-product kernel takes a stride-1 pass the float dispatch gives Winograd
// (bfloat16_conv2d_path): with at most 128 channels on either side (as far as it was measured), below 8192
// output positions in the batch, or at any count with at most 16 channels on either side.
constexpr std::int64_t kMinWinogradOverDirectPositions = 8192;
constexpr std::int64_t kMaxDirectOverWinogradChannels = 128;
constexpr std::int64_t kMaxDirectOverWinogradAlwaysChannels = 16;

void require_support(Conv2dAlgorithm algorithm, const Conv2dGeometry& g, Conv2dDirection direction) {
  KILN_CHECK(conv2d_algorithm_supports(algorithm, g, direction, cpu_level()), "conv2d ",
             std::string(conv2d_direction_name(direction)), ": algorithm ",
             std::string(conv2d_algorithm_name(algorithm)), " does not support this geometry at CPU level ",
             std::string(cpu_level_name(cpu_level())));
}

// The im2col / col2im_add pair the im2col + GEMM convolution unfolds with.
Im2colKernels im2col_kernels() {
  if (cpu_level() == CpuLevel::Avx512) return {avx512::im2col, avx512::col2im_add};
  if (cpu_level() == CpuLevel::Avx2) return {avx2::im2col, avx2::col2im_add};
  return {im2col, col2im_add};
}

// ---- bfloat16 on the CPU: through the float kernels ------------------------------------------------------

// Element counts of the dense buffers of conv2d.hpp.
std::int64_t x_elements(const Conv2dGeometry& g) {
  return g.batch * g.in_channels * g.in_height * g.in_width;
}
std::int64_t w_elements(const Conv2dGeometry& g) {
  return g.out_channels * g.in_channels_per_group() * g.kernel_h * g.kernel_w;
}
std::int64_t y_elements(const Conv2dGeometry& g) {
  return g.batch * g.out_channels * g.out_height() * g.out_width();
}

// A float kernel's output for count elements, scratch for it to overwrite (widened_bfloat16.hpp widens the
// inputs and rounds it back once).
CpuScratch float_output(std::int64_t count) { return cpu_scratch(count); }

// True when bfloat16 on the CPU runs its reference kernels rather than the float ones (see the top).
bool bfloat16_runs_reference() { return cpu_level() == CpuLevel::Reference; }

// The geometry as the profiler's detail (core/profiler.hpp): "16->32 3x3 s2 @32x32 n128", with the groups,
// dilation and layout where they are not the plain case's.
std::string profile_label(const Conv2dGeometry& g) {
  const auto pair = [](std::int64_t a, std::int64_t b) {
    return a == b ? std::to_string(a) : std::to_string(a) + "x" + std::to_string(b);
  };
  std::string label = std::to_string(g.in_channels) + "->" + std::to_string(g.out_channels) + " " +
                      std::to_string(g.kernel_h) + "x" + std::to_string(g.kernel_w);
  if (g.stride_h != 1 || g.stride_w != 1) label += " s" + pair(g.stride_h, g.stride_w);
  if (g.dilation_h != 1 || g.dilation_w != 1) label += " d" + pair(g.dilation_h, g.dilation_w);
  if (g.groups != 1) label += " g" + std::to_string(g.groups);
  label +=
      " @" + std::to_string(g.in_height) + "x" + std::to_string(g.in_width) + " n" + std::to_string(g.batch);
  if (g.channels_last) label += " channels-last";
  return label;
}

// A convolution's profiler row (core/profiler.hpp): its geometry, with what rides the call (`fused`), as the
// detail, and its arithmetic, 2 FLOPs a multiply-add of the direct convolution in any direction.
void describe_convolution(profiler::Scope& profile, const Conv2dGeometry& g, std::string_view fused = "") {
  if (!profile.measuring()) return;
  profile.set_detail(profile_label(g).append(fused));
  profile.set_flops(2 * g.multiply_adds());
}

// ---- channels-last through an NCHW kernel --------------------------------------------------------------

// The same convolution with NCHW activations.
Conv2dGeometry as_nchw(Conv2dGeometry g) {
  g.channels_last = false;
  return g;
}

// A tensor of n images of c channels, h x w, copied between the layouts by copy_strided (a batch of [h*w][c]
// <-> [c][h*w] transposes), float or bfloat16.
template <typename T>
void relayout(std::int64_t n, std::int64_t c, std::int64_t h, std::int64_t w, const T* from, bool from_nchw,
              T* to) {
  const std::array<std::int64_t, 4> sizes{n, c, h, w};
  const std::array<std::int64_t, 4> nchw = nchw_strides(c, h, w),
                                    channels_last = channels_last_strides(c, h, w);
  copy_strided<T, T>(Device::cpu(), 4, sizes.data(), from, (from_nchw ? nchw : channels_last).data(), to,
                     (from_nchw ? channels_last : nchw).data());
}

// Scratch for count values of T (float or bfloat16) from the caching allocator: the same sizes come back
// every step.
template <typename T>
struct TypedScratch {
  explicit TypedScratch(std::int64_t count)
      : floats(cpu_scratch((count * static_cast<std::int64_t>(sizeof(T)) + 3) / 4)) {}
  T* get() const { return reinterpret_cast<T*>(floats.get()); }
  CpuScratch floats;
};

// A dense copy in the other layout of n images of [c, h, w] (from_nchw: NCHW in, channels-last out).
template <typename T>
TypedScratch<T> relaid(std::int64_t n, std::int64_t c, std::int64_t h, std::int64_t w, const T* from,
                       bool from_nchw) {
  TypedScratch<T> to(n * c * h * w);
  relayout(n, c, h, w, from, from_nchw, to.get());
  return to;
}
CpuScratch to_nchw(std::int64_t n, std::int64_t c, std::int64_t h, std::int64_t w, const float* from) {
  return std::move(relaid(n, c, h, w, from, false).floats);
}
void to_channels_last(std::int64_t n, std::int64_t c, std::int64_t h, std::int64_t w, const float* from,
                      float* to) {
  relayout(n, c, h, w, from, true, to);
}

// ---- bfloat16 NCHW on the AMX tiles, through channels-last copies ----------------------------------------

// The same convolution with channels-last activations.
Conv2dGeometry as_channels_last(Conv2dGeometry g) {
  g.channels_last = true;
  return g;
}

void amx_forward_through_channels_last(const Conv2dGeometry& g, const bfloat16* x, const bfloat16* w,
                                       const bfloat16* bias, bfloat16* y) {
  const TypedScratch<bfloat16> x_cl = relaid(g.batch, g.in_channels, g.in_height, g.in_width, x, true);
  TypedScratch<bfloat16> y_cl(y_elements(g));
  amx::conv2d_forward_bf16(as_channels_last(g), x_cl.get(), w, bias, y_cl.get());
  relayout(g.batch, g.out_channels, g.out_height(), g.out_width(), y_cl.get(), false, y);
}
void amx_backward_data_through_channels_last(const Conv2dGeometry& g, const bfloat16* gy, const bfloat16* w,
                                             bfloat16* gx) {
  const TypedScratch<bfloat16> gy_cl =
      relaid(g.batch, g.out_channels, g.out_height(), g.out_width(), gy, true);
  TypedScratch<bfloat16> gx_cl(x_elements(g));
  amx::conv2d_backward_data_bf16(as_channels_last(g), gy_cl.get(), w, gx_cl.get());
  relayout(g.batch, g.in_channels, g.in_height, g.in_width, gx_cl.get(), false, gx);
}
void amx_backward_weight_through_channels_last(const Conv2dGeometry& g, const bfloat16* gy, const bfloat16* x,
                                               bfloat16* gw) {
  const TypedScratch<bfloat16> gy_cl =
      relaid(g.batch, g.out_channels, g.out_height(), g.out_width(), gy, true);
  const TypedScratch<bfloat16> x_cl = relaid(g.batch, g.in_channels, g.in_height, g.in_width, x, true);
  amx::conv2d_backward_weight_bf16(as_channels_last(g), gy_cl.get(), x_cl.get(), gw);
}

// ---- bfloat16 paths through float arithmetic: depthwise-channels, widened ---------------------------

// The depthwise-channels kernels on the bfloat16 tensors themselves (a block of channels widened as it is
// gathered), the weights and bias widened, the weight gradient rounded once.
void depthwise_channels_forward(const Conv2dGeometry& g, const bfloat16* x, const bfloat16* w,
                                const bfloat16* bias, bfloat16* y) {
  const CpuScratch w_float = widened(w, w_elements(g));
  const CpuScratch bias_float = bias ? widened(bias, g.out_channels) : nullptr;
  if (cpu_level() == CpuLevel::Avx512)
    return avx512::depthwise_channels_conv2d_forward(g, x, w_float.get(), bias_float.get(), y);
  avx2::depthwise_channels_conv2d_forward(g, x, w_float.get(), bias_float.get(), y);
}
void depthwise_channels_backward_data(const Conv2dGeometry& g, const bfloat16* gy, const bfloat16* w,
                                      bfloat16* gx) {
  const CpuScratch w_float = widened(w, w_elements(g));
  if (cpu_level() == CpuLevel::Avx512)
    return avx512::depthwise_channels_conv2d_backward_data(g, gy, w_float.get(), gx);
  avx2::depthwise_channels_conv2d_backward_data(g, gy, w_float.get(), gx);
}
void depthwise_channels_backward_weight(const Conv2dGeometry& g, const bfloat16* gy, const bfloat16* x,
                                        bfloat16* gw) {
  const CpuScratch gw_float = float_output(w_elements(g));
  if (cpu_level() == CpuLevel::Avx512) {
    avx512::depthwise_channels_conv2d_backward_weight(g, gy, x, gw_float.get());
  } else {
    avx2::depthwise_channels_conv2d_backward_weight(g, gy, x, gw_float.get());
  }
  round_into(gw_float.get(), w_elements(g), gw);
}

// The Winograd kernels on the bfloat16 tensors themselves, the weights and bias widened, the weight
// gradient rounded once; the tile the float dispatch would choose, so the bits are the widened path's.
WinogradTile winograd_tile(Conv2dAlgorithm algorithm) {
  return algorithm == Conv2dAlgorithm::Winograd4x4 ? WinogradTile::F4x4 : WinogradTile::F2x2;
}
WinogradTile chosen_winograd_tile(const Conv2dGeometry& g, Conv2dDirection direction) {
  return winograd_tile(choose_conv2d_algorithm(g, direction, cpu_level()));
}
void winograd_forward(const Conv2dGeometry& g, const bfloat16* x, const bfloat16* w, const bfloat16* bias,
                      bfloat16* y) {
  const CpuScratch w_float = widened(w, w_elements(g));
  const CpuScratch bias_float = bias ? widened(bias, g.out_channels) : nullptr;
  const WinogradTile tile = chosen_winograd_tile(g, Conv2dDirection::Forward);
  if (cpu_level() == CpuLevel::Avx512)
    return avx512::winograd_conv2d_forward(tile, g, x, w_float.get(), bias_float.get(), y);
  avx2::winograd_conv2d_forward(tile, g, x, w_float.get(), bias_float.get(), y);
}
void winograd_backward_data(const Conv2dGeometry& g, const bfloat16* gy, const bfloat16* w, bfloat16* gx) {
  const CpuScratch w_float = widened(w, w_elements(g));
  const WinogradTile tile = chosen_winograd_tile(g, Conv2dDirection::BackwardData);
  if (cpu_level() == CpuLevel::Avx512)
    return avx512::winograd_conv2d_backward_data(tile, g, gy, w_float.get(), gx);
  avx2::winograd_conv2d_backward_data(tile, g, gy, w_float.get(), gx);
}
void winograd_backward_weight(const Conv2dGeometry& g, const bfloat16* gy, const bfloat16* x, bfloat16* gw) {
  const CpuScratch gw_float = float_output(w_elements(g));
  const WinogradTile tile = chosen_winograd_tile(g, Conv2dDirection::BackwardWeight);
  if (cpu_level() == CpuLevel::Avx512) {
    avx512::winograd_conv2d_backward_weight(tile, g, gy, x, gw_float.get());
  } else {
    avx2::winograd_conv2d_backward_weight(tile, g, gy, x, gw_float.get());
  }
  round_into(gw_float.get(), w_elements(g), gw);
}

// The paths on AVX512-BF16's pair dot products (pointwise.cpp's channels-last layers, the others'
// avx512_bf16_direct.cpp and avx512_bf16_weight_gradient.cpp): the bias widened, the weight gradient's float
// sums rounded once.
using DotProductsForward = void (*)(const Conv2dGeometry&, const bfloat16*, const bfloat16*, const float*,
                                    bfloat16*);
using DotProductsWeightGradient = void (*)(const Conv2dGeometry&, const bfloat16*, const bfloat16*, float*);
void dot_products_forward(DotProductsForward kernel, const Conv2dGeometry& g, const bfloat16* x,
                          const bfloat16* w, const bfloat16* bias, bfloat16* y) {
  const CpuScratch bias_float = bias ? widened(bias, g.out_channels) : nullptr;
  kernel(g, x, w, bias_float.get(), y);
}
void dot_products_backward_weight(DotProductsWeightGradient kernel, const Conv2dGeometry& g,
                                  const bfloat16* gy, const bfloat16* x, bfloat16* gw) {
  const CpuScratch gw_float = float_output(w_elements(g));
  kernel(g, gy, x, gw_float.get());
  round_into(gw_float.get(), w_elements(g), gw);
}

// The float dispatch on widened copies of every operand, the output rounded once.
void widened_forward(const Conv2dGeometry& g, const bfloat16* x, const bfloat16* w, const bfloat16* bias,
                     bfloat16* y) {
  const CpuScratch x_float = widened(x, x_elements(g)), w_float = widened(w, w_elements(g));
  const CpuScratch bias_float = bias ? widened(bias, g.out_channels) : nullptr;
  const CpuScratch y_float = float_output(y_elements(g));
  conv2d_forward<float>(Device::cpu(), g, x_float.get(), w_float.get(), bias_float.get(), y_float.get());
  round_into(y_float.get(), y_elements(g), y);
}
void widened_backward_data(const Conv2dGeometry& g, const bfloat16* gy, const bfloat16* w, bfloat16* gx) {
  const CpuScratch gy_float = widened(gy, y_elements(g)), w_float = widened(w, w_elements(g));
  const CpuScratch gx_float = float_output(x_elements(g));
  conv2d_backward_data<float>(Device::cpu(), g, gy_float.get(), w_float.get(), gx_float.get());
  round_into(gx_float.get(), x_elements(g), gx);
}
void widened_backward_weight(const Conv2dGeometry& g, const bfloat16* gy, const bfloat16* x, bfloat16* gw) {
  const CpuScratch gy_float = widened(gy, y_elements(g)), x_float = widened(x, x_elements(g));
  const CpuScratch gw_float = float_output(w_elements(g));
  conv2d_backward_weight<float>(Device::cpu(), g, gy_float.get(), x_float.get(), gw_float.get());
  round_into(gw_float.get(), w_elements(g), gw);
}

}  // namespace

// ---- float: run a named algorithm ------------------------------------------------------------------------

void conv2d_normalize_outputs(const Conv2dGeometry& g, const OutputNormalization& normalization, float* y) {
  KILN_CHECK(cpu_level() != CpuLevel::Reference, "conv2d_normalize_outputs: the fast kernels' epilogue");
  if (cpu_level() == CpuLevel::Avx512) return avx512::conv2d_normalize_outputs(g, normalization, y);
  avx2::conv2d_normalize_outputs(g, normalization, y);
}

void conv2d_add_bias(const Conv2dGeometry& g, const float* bias, float* y) {
  if (cpu_level() == CpuLevel::Avx512) return avx512::conv2d_add_bias(g, bias, y);
  if (cpu_level() == CpuLevel::Avx2) return avx2::conv2d_add_bias(g, bias, y);
  const std::int64_t plane = g.out_height() * g.out_width();
  for (std::int64_t p = 0; p < g.batch * g.out_channels; ++p) {
    for (std::int64_t i = 0; i < plane; ++i) y[p * plane + i] += bias[p % g.out_channels];
  }
}

namespace {

// The algorithms whose copies in take an input normalization (InputNormalization): Winograd's (pad_input),
// Depthwise's phase split, DepthwiseChannels' gathered blocks; over NCHW floats.
bool copies_normalize(Conv2dAlgorithm algorithm) {
  return algorithm == Conv2dAlgorithm::Winograd2x2 || algorithm == Conv2dAlgorithm::Winograd4x4 ||
         algorithm == Conv2dAlgorithm::Depthwise || algorithm == Conv2dAlgorithm::DepthwiseChannels;
}

void check_input_normalization(Conv2dAlgorithm algorithm, const Conv2dGeometry& g,
                               const InputNormalization* input) {
  KILN_CHECK(!input || (copies_normalize(algorithm) && !g.channels_last),
             "conv2d: ", conv2d_algorithm_name(algorithm), " on ", profile_label(g),
             " does not normalize its input as it copies it (conv2d_normalizes_input)");
}

}  // namespace

void conv2d_forward_using(Conv2dAlgorithm algorithm, const Conv2dGeometry& g, const float* x, const float* w,
                          const float* bias, float* y, const InputNormalization* input) {
  require_support(algorithm, g, Conv2dDirection::Forward);
  check_input_normalization(algorithm, g, input);
  if (g.channels_last && !conv2d_algorithm_takes_channels_last(algorithm)) {
    const CpuScratch x_nchw = to_nchw(g.batch, g.in_channels, g.in_height, g.in_width, x);
    const CpuScratch y_nchw = cpu_scratch(y_elements(g));
    conv2d_forward_using(algorithm, as_nchw(g), x_nchw.get(), w, bias, y_nchw.get());
    return to_channels_last(g.batch, g.out_channels, g.out_height(), g.out_width(), y_nchw.get(), y);
  }
  switch (algorithm) {
    case Conv2dAlgorithm::Reference:
      return reference::conv2d_forward(g, x, w, bias, y);
    case Conv2dAlgorithm::Im2colGemm:
      return im2col_gemm::conv2d_forward(im2col_kernels(), g, x, w, bias, y);
    case Conv2dAlgorithm::Pointwise:
      return pointwise::conv2d_forward(g, x, w, bias, y);
    case Conv2dAlgorithm::Winograd2x2:
    case Conv2dAlgorithm::Winograd4x4:
      if (cpu_level() == CpuLevel::Avx512)
        return avx512::winograd_conv2d_forward(winograd_tile(algorithm), g, x, w, bias, y, nullptr, input);
      return avx2::winograd_conv2d_forward(winograd_tile(algorithm), g, x, w, bias, y, nullptr, input);
    case Conv2dAlgorithm::Direct:
      if (cpu_level() == CpuLevel::Avx512) return avx512::direct_conv2d_forward(g, x, w, bias, y);
      return avx2::direct_conv2d_forward(g, x, w, bias, y);
    case Conv2dAlgorithm::DirectChannels:
      if (cpu_level() == CpuLevel::Avx512) return avx512::direct_channels_conv2d_forward(g, x, w, bias, y);
      return avx2::direct_channels_conv2d_forward(g, x, w, bias, y);
    case Conv2dAlgorithm::Depthwise:
      if (cpu_level() == CpuLevel::Avx512)
        return avx512::depthwise_conv2d_forward(g, x, w, bias, y, nullptr, input);
      return avx2::depthwise_conv2d_forward(g, x, w, bias, y, nullptr, input);
    case Conv2dAlgorithm::DepthwiseChannels:
      if (cpu_level() == CpuLevel::Avx512)
        return avx512::depthwise_channels_conv2d_forward(g, x, w, bias, y, input);
      return avx2::depthwise_channels_conv2d_forward(g, x, w, bias, y, input);
    case Conv2dAlgorithm::UnrolledGemm:
      return unrolled_gemm::conv2d_forward(g, x, w, bias, y);
    case Conv2dAlgorithm::TapGemm:
      return tap_gemm::conv2d_forward(g, x, w, bias, y);
  }
}

void conv2d_backward_data_using(Conv2dAlgorithm algorithm, const Conv2dGeometry& g, const float* gy,
                                const float* w, float* gx) {
  require_support(algorithm, g, Conv2dDirection::BackwardData);
  if (g.channels_last && !conv2d_algorithm_takes_channels_last(algorithm)) {
    const CpuScratch gy_nchw = to_nchw(g.batch, g.out_channels, g.out_height(), g.out_width(), gy);
    const CpuScratch gx_nchw = cpu_scratch(x_elements(g));
    conv2d_backward_data_using(algorithm, as_nchw(g), gy_nchw.get(), w, gx_nchw.get());
    return to_channels_last(g.batch, g.in_channels, g.in_height, g.in_width, gx_nchw.get(), gx);
  }
  switch (algorithm) {
    case Conv2dAlgorithm::Reference:
      return reference::conv2d_backward_data(g, gy, w, gx);
    case Conv2dAlgorithm::Im2colGemm:
      return im2col_gemm::conv2d_backward_data(im2col_kernels(), g, gy, w, gx);
    case Conv2dAlgorithm::Pointwise:
      return pointwise::conv2d_backward_data(g, gy, w, gx);
    case Conv2dAlgorithm::Depthwise:
      if (cpu_level() == CpuLevel::Avx512) return avx512::depthwise_conv2d_backward_data(g, gy, w, gx);
      return avx2::depthwise_conv2d_backward_data(g, gy, w, gx);
    case Conv2dAlgorithm::DepthwiseChannels:
      if (cpu_level() == CpuLevel::Avx512)
        return avx512::depthwise_channels_conv2d_backward_data(g, gy, w, gx);
      return avx2::depthwise_channels_conv2d_backward_data(g, gy, w, gx);
    case Conv2dAlgorithm::Direct:
      if (cpu_level() == CpuLevel::Avx512) return avx512::direct_conv2d_backward_data(g, gy, w, gx);
      return avx2::direct_conv2d_backward_data(g, gy, w, gx);
    case Conv2dAlgorithm::DirectChannels:
      if (cpu_level() == CpuLevel::Avx512) return avx512::direct_channels_conv2d_backward_data(g, gy, w, gx);
      return avx2::direct_channels_conv2d_backward_data(g, gy, w, gx);
    case Conv2dAlgorithm::Winograd2x2:
    case Conv2dAlgorithm::Winograd4x4:
      if (cpu_level() == CpuLevel::Avx512)
        return avx512::winograd_conv2d_backward_data(winograd_tile(algorithm), g, gy, w, gx);
      return avx2::winograd_conv2d_backward_data(winograd_tile(algorithm), g, gy, w, gx);
    case Conv2dAlgorithm::UnrolledGemm:
      return unrolled_gemm::conv2d_backward_data(g, gy, w, gx);
    case Conv2dAlgorithm::TapGemm:
      return tap_gemm::conv2d_backward_data(g, gy, w, gx);
  }
}

void conv2d_backward_weight_using(Conv2dAlgorithm algorithm, const Conv2dGeometry& g, const float* gy,
                                  const float* x, float* gw, const InputNormalization* input) {
  require_support(algorithm, g, Conv2dDirection::BackwardWeight);
  check_input_normalization(algorithm, g, input);
  if (g.channels_last && !conv2d_algorithm_takes_channels_last(algorithm)) {
    const CpuScratch gy_nchw = to_nchw(g.batch, g.out_channels, g.out_height(), g.out_width(), gy);
    const CpuScratch x_nchw = to_nchw(g.batch, g.in_channels, g.in_height, g.in_width, x);
    return conv2d_backward_weight_using(algorithm, as_nchw(g), gy_nchw.get(), x_nchw.get(), gw);
  }
  switch (algorithm) {
    case Conv2dAlgorithm::Reference:
      return reference::conv2d_backward_weight(g, gy, x, gw);
    case Conv2dAlgorithm::Im2colGemm:
      return im2col_gemm::conv2d_backward_weight(im2col_kernels(), g, gy, x, gw);
    case Conv2dAlgorithm::Pointwise:
      return pointwise::conv2d_backward_weight(g, gy, x, gw);
    case Conv2dAlgorithm::Depthwise:
      if (cpu_level() == CpuLevel::Avx512)
        return avx512::depthwise_conv2d_backward_weight(g, gy, x, gw, input);
      return avx2::depthwise_conv2d_backward_weight(g, gy, x, gw, input);
    case Conv2dAlgorithm::DepthwiseChannels:
      if (cpu_level() == CpuLevel::Avx512)
        return avx512::depthwise_channels_conv2d_backward_weight(g, gy, x, gw, input);
      return avx2::depthwise_channels_conv2d_backward_weight(g, gy, x, gw, input);
    case Conv2dAlgorithm::Direct:
      if (cpu_level() == CpuLevel::Avx512) return avx512::direct_conv2d_backward_weight(g, gy, x, gw);
      return avx2::direct_conv2d_backward_weight(g, gy, x, gw);
    case Conv2dAlgorithm::Winograd2x2:
    case Conv2dAlgorithm::Winograd4x4:
      if (cpu_level() == CpuLevel::Avx512)
        return avx512::winograd_conv2d_backward_weight(winograd_tile(algorithm), g, gy, x, gw, input);
      return avx2::winograd_conv2d_backward_weight(winograd_tile(algorithm), g, gy, x, gw, input);
    case Conv2dAlgorithm::UnrolledGemm:
      return unrolled_gemm::conv2d_backward_weight(g, gy, x, gw);
    case Conv2dAlgorithm::TapGemm:
      return tap_gemm::conv2d_backward_weight(g, gy, x, gw);
    case Conv2dAlgorithm::DirectChannels:
      break;  // no weight gradient: require_support has thrown
  }
}

// ---- the dispatch functions
// --------------------------------------------------------------------------------

Bfloat16Conv2dPath bfloat16_conv2d_path(const Conv2dGeometry& g, Conv2dDirection direction) {
  if (bfloat16_runs_reference()) return Bfloat16Conv2dPath::Reference;
  const Conv2dAlgorithm algorithm = choose_conv2d_algorithm(g, direction, cpu_level());
  const auto amx_serves = [direction](const Conv2dGeometry& geometry) {
    switch (direction) {
      case Conv2dDirection::Forward:
        return amx::conv2d_forward_bf16_serves(geometry);
      case Conv2dDirection::BackwardData:
        return amx::conv2d_backward_data_bf16_serves(geometry);
      case Conv2dDirection::BackwardWeight:
        break;
    }
    return amx::conv2d_backward_weight_bf16_serves(geometry);
  };
  // Planes of a few pixels (algorithm.cpp's rule 3) run the float unrolled GEMM on widened tensors (a 2x2
  // plane's batch is a few hundred KiB), except where AMX serves them on its tiles across images
  // (amx_bf16_conv.hpp): Winograd multiplies a tile of 16 positions there for 4 outputs, and AMX's phase
  // grid 4x the plane. Two Sapphire Rapids cores, batch 128, ms, widened / AMX: ResNet-18's 256 -> 256 at 2x2
  // forward and backward data 1.6 / 0.43, weight gradient 1.6 / 0.38 (2.2 on the phase grid).
  const bool unrolled = algorithm == Conv2dAlgorithm::UnrolledGemm;
  if (amx_bf16_usable()) {
    const auto amx_takes = [&](const Conv2dGeometry& geometry) {
      const bool weight = direction == Conv2dDirection::BackwardWeight;
      return amx_serves(geometry) && (!unrolled || !weight || amx::weight_gradient_across_images(geometry));
    };
    if (amx_takes(g)) return Bfloat16Conv2dPath::Amx;
    // NCHW: copied channels-last around the tiles where the input channels fill them (the 3-channel stem's
    // copies would cost more than its tiles save). On two Sapphire Rapids cores ResNet-20's 16 -> 16 forward
    // at batch 128 took 1.97 ms widened to the float kernels, 1.13 through the copies.
    if (!g.channels_last && g.in_channels % 16 == 0 && amx_takes(as_channels_last(g)))
      return Bfloat16Conv2dPath::AmxThroughChannelsLast;
  }
  if (unrolled) return Bfloat16Conv2dPath::Widened;
  if (g.channels_last && algorithm == Conv2dAlgorithm::DepthwiseChannels)
    return Bfloat16Conv2dPath::DepthwiseChannels;
  // A channels-last pointwise layer is one GEMM on the bfloat16 tensors as they lie, at twice the float
  // kernel's multiply-adds an instruction. On two Zen 5 cores a bf16 MobileNet-style step's pointwise layers
  // took 109.5 ms widened, 52.6 on the pair dot products (batch 128; the step 167 -> 110 ms).
  if (g.channels_last && algorithm == Conv2dAlgorithm::Pointwise && avx512_bf16_usable())
    return Bfloat16Conv2dPath::PointwiseDotProducts;
  // The other ungrouped channels-last layers run on the same pair dot products: the forward and backward
  // data straight from the activations' channel pairs (avx512_bf16_direct.cpp; strided backward data one
  // stride phase at a time), the weight gradient over pairs of images (avx512_bf16_weight_gradient.cpp);
  // what none serves (a dilated strided backward data, one padded wider than its kernel) widened. The
  // 3-channel stems, whose odd channel leaves a half-empty pair, ran widened or through im2col columns on the
  // same dot products before; two Zen 5 cores, batch 128, ms (conv2d_bench; the weight gradients' training
  // figures alternating kiln train --profile runs):
  //   ResNet-20's 3 -> 16   forward 1.35-1.40 widened, 0.52-0.60 direct; weight gradient 1.26-1.27 im2col,
  //                         0.42-0.47 image pairs
  //   vgg_small's 3 -> 32   forward 3.0-3.4 widened, 1.65 im2col, 0.95-1.08 direct; weight gradient 3.28
  //                         widened, 1.72 im2col, 0.54 image pairs
  const bool direct = g.channels_last && avx512_bf16_usable() && direct_dot_products::serves(g, direction);
  // Winograd widens and rounds in the copies it makes anyway, reading and writing half the bytes: on two
  // Zen 5 cores (AVX-512, no AMX) a bf16 ResNet-20 step's convolutions took 108-110 ms widened, 85-89 on the
  // bfloat16 tensors (batch 128; at 64x64 images 354-370 against 271). Against the pair dot products it
  // keeps the stride-1 passes of at least 8192 output positions with more than 16 channels on a side, where
  // F(4x4, 3x3) does 36 multiplies for 16 outputs and the direct kernel 144 at twice the rate; with fewer
  // positions its tiles and transforms cost more than they save, with 16 channels its transforms outweigh
  // its products, and at stride 2 each 16 outputs take 81. conv2d_bench --bf16 --channels-last, two Zen 5
  // cores, ms, Winograd against the dot products, forward / backward data:
  //   2048 positions (batch 32 at 8x8)      ResNet 64 -> 64          0.39 / 0.42  vs  0.22 / 0.22
  //                                         vgg_small 128 -> 128     1.34 / 1.45  vs  0.91 / 0.87
  //   8192 (batch 32 at 16x16, 128 at 8x8)   ResNet 32 -> 32 at 16x16 0.25 / 0.26  vs  0.23 / 0.24
  //   (Winograd kept: about alike)          vgg_small 64 -> 64 at 16x16, 128 -> 128 at 8x8: alike
  //   32768 (batch 128 at 16x16)            ResNet 32 -> 32          0.79-0.85    vs  1.03-1.09
  //                                         vgg_small 64 -> 64       2.6 / 2.6    vs  3.6 / 3.7
  //   131072 (batch 128 at 32x32)           ResNet 16 -> 16          1.38-1.52    vs  1.13-1.14
  //     (alternating runs in one busy hour of this shared machine; in a quiet one Winograd took 1.13-1.18.
  //     kiln train --profile in the busy hour: the six forwards 8.6-8.8 ms a step against 7.1-7.4, the six
  //     backward data 9.1-9.3 against 6.9-7.2, the bf16 ResNet-20 step 90.6-92.5 against 86.7-88.6)
  //   stride 2, batch 128 / 32   ResNet 16 -> 32 at 32x32 forward 0.92 / 0.28 against 0.54-0.68 / 0.17
  //                              (direct), weight gradient 1.39 / 0.41 against 0.58-0.59 / 0.18; 32 -> 64
  //                              at 16x16 forward 0.80 / 0.27 against 0.49-0.53 / 0.14, weight gradient
  //                              1.21 / 0.41 against 0.62-0.69 / 0.21 (the im2col GEMM it replaced took
  //                              1.22-1.29 and 0.90-0.96 in training, the image pairs 0.74-0.75, 0.67-0.68);
  //                              backward data by stride phase, batch 128 / 32 / 1: 16 -> 32 1.13-1.17 /
  //                              0.67-0.70 / 0.057-0.061 (Winograd; widened) against 1.03-1.04 / 0.28 /
  //                              0.045, 32 -> 64 0.78 / 0.26-0.27 / 0.051-0.054 against 0.65-0.67 / 0.21 /
  //                              0.077 (at batch 1 its four phases' small tasks cost more than they save;
  //                              in training at batch 128 the two came out even, kernels/conv2d/README.md).
  // The weight gradient on image pairs follows the same rule: ms, Winograd against the pairs,
  //   2048 positions   ResNet 64 -> 64 0.36-0.52 vs 0.34-0.42, vgg_small 128 -> 128 1.36-1.84 vs 1.45-1.61
  //   32768            ResNet 32 -> 32 0.89-0.98 vs 1.05, vgg_small 64 -> 64 2.83 vs 4.29
  //   131072           ResNet 16 -> 16 8.6-9.2 against 6.8-7.0 a training step (its six layers).
  // Without Winograd (below 2048 positions) the direct kernel takes ResNet's 16 -> 16 at 32x32 at batch 1 in
  // 0.020 ms (0.067 widened), vgg_small's 128 -> 128 at 8x8 in 0.13 (0.25 through im2col GEMM). (Past 128
  // channels, unmeasured, Winograd keeps what it takes.)
  const bool strided = g.stride_h > 1 || g.stride_w > 1;
  const std::int64_t widest = std::max(g.in_channels, g.out_channels);
  const bool dot_products_win =
      strided ? direct
              : direct && widest <= kMaxDirectOverWinogradChannels &&
                    (g.batch * g.out_height() * g.out_width() < kMinWinogradOverDirectPositions ||
                     widest <= kMaxDirectOverWinogradAlwaysChannels);
  if ((algorithm == Conv2dAlgorithm::Winograd2x2 || algorithm == Conv2dAlgorithm::Winograd4x4) &&
      !dot_products_win)
    return Bfloat16Conv2dPath::Winograd;
  return direct ? Bfloat16Conv2dPath::DirectDotProducts : Bfloat16Conv2dPath::Widened;
}

const char* bfloat16_conv2d_path_name(Bfloat16Conv2dPath path) {
  switch (path) {
    case Bfloat16Conv2dPath::Reference:
      return "reference";
    case Bfloat16Conv2dPath::Amx:
      return "amx";
    case Bfloat16Conv2dPath::AmxThroughChannelsLast:
      return "amx through channels-last copies";
    case Bfloat16Conv2dPath::DepthwiseChannels:
      return "depthwise_channels on bfloat16";
    case Bfloat16Conv2dPath::Winograd:
      return "winograd on bfloat16";
    case Bfloat16Conv2dPath::PointwiseDotProducts:
      return "pointwise on avx512_bf16";
    case Bfloat16Conv2dPath::DirectDotProducts:
      return "direct on avx512_bf16";
    case Bfloat16Conv2dPath::Widened:
      break;
  }
  return "widened to the float kernels";
}

// The CPU's part of each pass, after dispatch's crop of unreached taps: the path for T and g.
template <typename T>
void forward_on_cpu(const Conv2dGeometry& g, const T* x, const T* w, const T* bias, T* y) {
  if constexpr (std::is_same_v<T, bfloat16>) {
    switch (bfloat16_conv2d_path(g, Conv2dDirection::Forward)) {
      case Bfloat16Conv2dPath::Reference:
        return reference::conv2d_forward(g, x, w, bias, y);
      case Bfloat16Conv2dPath::Amx:
        return amx::conv2d_forward_bf16(g, x, w, bias, y);
      case Bfloat16Conv2dPath::AmxThroughChannelsLast:
        return amx_forward_through_channels_last(g, x, w, bias, y);
      case Bfloat16Conv2dPath::DepthwiseChannels:
        return depthwise_channels_forward(g, x, w, bias, y);
      case Bfloat16Conv2dPath::Winograd:
        return winograd_forward(g, x, w, bias, y);
      case Bfloat16Conv2dPath::PointwiseDotProducts:
        return dot_products_forward(pointwise::conv2d_forward_bf16, g, x, w, bias, y);
      case Bfloat16Conv2dPath::DirectDotProducts:
        return dot_products_forward(direct_dot_products::conv2d_forward_bf16, g, x, w, bias, y);
      case Bfloat16Conv2dPath::Widened:
        return widened_forward(g, x, w, bias, y);
    }
  } else if constexpr (std::is_same_v<T, float>) {
    conv2d_forward_using(choose_conv2d_algorithm(g, Conv2dDirection::Forward, cpu_level()), g, x, w, bias, y);
  } else {
    reference::conv2d_forward(g, x, w, bias, y);
  }
}

template <typename T>
void backward_data_on_cpu(const Conv2dGeometry& g, const T* gy, const T* w, T* gx) {
  if constexpr (std::is_same_v<T, bfloat16>) {
    switch (bfloat16_conv2d_path(g, Conv2dDirection::BackwardData)) {
      case Bfloat16Conv2dPath::Reference:
        return reference::conv2d_backward_data(g, gy, w, gx);
      case Bfloat16Conv2dPath::Amx:
        return amx::conv2d_backward_data_bf16(g, gy, w, gx);
      case Bfloat16Conv2dPath::AmxThroughChannelsLast:
        return amx_backward_data_through_channels_last(g, gy, w, gx);
      case Bfloat16Conv2dPath::DepthwiseChannels:
        return depthwise_channels_backward_data(g, gy, w, gx);
      case Bfloat16Conv2dPath::Winograd:
        return winograd_backward_data(g, gy, w, gx);
      case Bfloat16Conv2dPath::PointwiseDotProducts:
        return pointwise::conv2d_backward_data_bf16(g, gy, w, gx);
      case Bfloat16Conv2dPath::DirectDotProducts:
        return direct_dot_products::conv2d_backward_data_bf16(g, gy, w, gx);
      case Bfloat16Conv2dPath::Widened:
        return widened_backward_data(g, gy, w, gx);
    }
  } else if constexpr (std::is_same_v<T, float>) {
    conv2d_backward_data_using(choose_conv2d_algorithm(g, Conv2dDirection::BackwardData, cpu_level()), g, gy,
                               w, gx);
  } else {
    reference::conv2d_backward_data(g, gy, w, gx);
  }
}

template <typename T>
void backward_weight_on_cpu(const Conv2dGeometry& g, const T* gy, const T* x, T* gw) {
  if constexpr (std::is_same_v<T, bfloat16>) {
    switch (bfloat16_conv2d_path(g, Conv2dDirection::BackwardWeight)) {
      case Bfloat16Conv2dPath::Reference:
        return reference::conv2d_backward_weight(g, gy, x, gw);
      case Bfloat16Conv2dPath::Amx:
        return amx::conv2d_backward_weight_bf16(g, gy, x, gw);
      case Bfloat16Conv2dPath::AmxThroughChannelsLast:
        return amx_backward_weight_through_channels_last(g, gy, x, gw);
      case Bfloat16Conv2dPath::DepthwiseChannels:
        return depthwise_channels_backward_weight(g, gy, x, gw);
      case Bfloat16Conv2dPath::Winograd:
        return winograd_backward_weight(g, gy, x, gw);
      case Bfloat16Conv2dPath::PointwiseDotProducts:
        return dot_products_backward_weight(pointwise::conv2d_backward_weight_bf16, g, gy, x, gw);
      case Bfloat16Conv2dPath::DirectDotProducts:
        return dot_products_backward_weight(direct_dot_products::conv2d_backward_weight_bf16, g, gy, x, gw);
      case Bfloat16Conv2dPath::Widened:
        return widened_backward_weight(g, gy, x, gw);
    }
  } else if constexpr (std::is_same_v<T, float>) {
    conv2d_backward_weight_using(choose_conv2d_algorithm(g, Conv2dDirection::BackwardWeight, cpu_level()), g,
                                 gy, x, gw);
  } else {
    reference::conv2d_backward_weight(g, gy, x, gw);
  }
}

// Whether T's passes run on the CPU's fast kernels: float and bfloat16 above the Reference level. double and
// the Reference level run the reference kernels on the geometry as given, the oracle the rest is checked by.
template <typename T>
bool fast_kernels() {
  return !std::is_same_v<T, double> && cpu_level() != CpuLevel::Reference;
}

// A pass whose input and output planes are single pixels ([N, C, 1, 1]: the last stage of ResNet-18 on 32x32
// images, its padded 3x3s cropped to the centre tap) lies the same in NCHW and channels-last, so it runs as
// channels-last: each pass one GEMM over the batch's rows of pixels, where NCHW's pointwise passes go in
// chunks of images whose blocks are one column wide. 512 -> 512 at batch 128, 2 threads, ms, forward /
// backward-data / weight gradient of the 1x1 product: float 0.57 / 0.63 / 0.22 -> 0.20 / 0.20 / 0.19 (the
// same bits: the channels-last pointwise passes are the NCHW ones, moved). A ResNet-18 step on 32x32 images
// (`kiln train --profile`), its three such layers, the three passes with their crops: float 10.8 -> 5.5 ms,
// bfloat16 (whose NCHW passes went through float, widened) 11.5 -> 3.6 ms.
Conv2dGeometry one_pixel_planes_channels_last(Conv2dGeometry g) {
  if (g.in_height == 1 && g.in_width == 1 && g.out_height() == 1 && g.out_width() == 1)
    g.channels_last = true;
  return g;
}

// What a CPU pass runs: on the fast kernels, g with the taps that read only padding cropped off
// (unreached_taps.hpp; `cropped` says where its taps lie in the full kernel) and one-pixel planes taken as
// channels-last; on the reference kernels, g as given.
struct CpuPass {
  Conv2dGeometry geometry;
  std::optional<CroppedTaps> cropped;
};
template <typename T>
CpuPass cpu_pass(const Conv2dGeometry& g) {
  if (!fast_kernels<T>()) return {g, std::nullopt};
  std::optional<CroppedTaps> cropped = crop_unreached_taps(g);
  return {one_pixel_planes_channels_last(cropped ? cropped->geometry : g), std::move(cropped)};
}

std::size_t weight_count(const Conv2dGeometry& g) {
  return static_cast<std::size_t>(g.out_channels * g.in_channels_per_group() * g.kernel_h * g.kernel_w);
}

// A cropped kernel's taps, from the caching allocator (a fresh 1 MiB buffer's page faults cost more than
// the 1x1 product it feeds), unfilled: every tap is written before it is read.
template <typename T>
TypedScratch<T> taps_for(const Conv2dGeometry& cropped) {
  return TypedScratch<T>(static_cast<std::int64_t>(weight_count(cropped)));
}

template <typename T>
TypedScratch<T> cropped_weights(const Conv2dGeometry& g, const CroppedTaps& cropped, const T* w) {
  TypedScratch<T> taps = taps_for<T>(cropped.geometry);
  crop_weights(g, cropped, w, taps.get());
  return taps;
}

template <typename T>
void conv2d_forward(Device device, const Conv2dGeometry& g, const T* x, const T* w, const T* bias, T* y) {
  profiler::Scope profile("conv2d_forward", device, dtype_of_v<T>);
  describe_convolution(profile, g);
#ifdef KILN_WITH_CUDA
  if (device.is_cuda()) {
    return cuda::tuned_conv2d_forward(g, x, w, bias, y);
  }
#endif
  require_cpu(device, "conv2d_forward");
  const CpuPass pass = cpu_pass<T>(g);
  if (pass.cropped)
    return forward_on_cpu(pass.geometry, x, cropped_weights(g, *pass.cropped, w).get(), bias, y);
  forward_on_cpu(pass.geometry, x, w, bias, y);
}

// The float CPU passes over NCHW tensors that finish their own outputs (OutputNormalization) take the
// normalization: Winograd in its stores, Depthwise per output plane, Pointwise per chunk of images. Every
// other pass is the two calls, the batch norm in place on the convolution's output. All give the eval
// kernel's bits: its scale (batchnorm_eval_scale) and its per-value arithmetic (batchnorm_vector_ops.hpp).
template <typename T>
void conv2d_forward_batchnorm_eval(Device device, const Conv2dGeometry& g, const T* x, const T* w,
                                   const T* bias, const BatchNormEval<T>& norm, T* y) {
  if constexpr (std::is_same_v<T, float>) {
    const bool fast = device.is_cpu() && fast_kernels<T>();
    const CpuPass pass = fast ? cpu_pass<T>(g) : CpuPass{g, std::nullopt};
    const Conv2dAlgorithm algorithm =
        fast ? choose_conv2d_algorithm(pass.geometry, Conv2dDirection::Forward, cpu_level())
             : Conv2dAlgorithm::Reference;
    const bool winograd =
        algorithm == Conv2dAlgorithm::Winograd2x2 || algorithm == Conv2dAlgorithm::Winograd4x4;
    const bool finishes_outputs =
        winograd || algorithm == Conv2dAlgorithm::Depthwise || algorithm == Conv2dAlgorithm::Pointwise;
    if (fast && finishes_outputs && !pass.cropped && !pass.geometry.channels_last) {
      profiler::Scope profile("conv2d_forward", device, dtype_of_v<T>);
      if (profile.measuring()) {  // (the suffix is a string built only when someone reads it)
        describe_convolution(profile, g,
                             std::string(" + batch norm") + (norm.residual ? " + residual" : "") +
                                 fused_relu_label(norm.relu, norm.relu_upper));
      }
      std::vector<float> scale(static_cast<std::size_t>(g.out_channels));
      for (std::int64_t c = 0; c < g.out_channels; ++c)
        scale[static_cast<std::size_t>(c)] =
            batchnorm_eval_scale(norm.gamma[c], norm.running_var[c], norm.eps);
      const OutputNormalization normalization{.shift = norm.running_mean,
                                              .scale = scale.data(),
                                              .offset = norm.beta,
                                              .residual = norm.residual,
                                              .relu = norm.relu,
                                              .relu_upper = norm.relu_upper};
      const bool avx512 = cpu_level() == CpuLevel::Avx512;
      switch (algorithm) {
        case Conv2dAlgorithm::Depthwise:
          if (avx512) return avx512::depthwise_conv2d_forward(g, x, w, bias, y, &normalization);
          return avx2::depthwise_conv2d_forward(g, x, w, bias, y, &normalization);
        case Conv2dAlgorithm::Pointwise:
          return pointwise::conv2d_forward(g, x, w, bias, y, &normalization);
        default:  // Winograd2x2, Winograd4x4
          if (avx512)
            return avx512::winograd_conv2d_forward(winograd_tile(algorithm), g, x, w, bias, y,
                                                   &normalization);
          return avx2::winograd_conv2d_forward(winograd_tile(algorithm), g, x, w, bias, y, &normalization);
      }
    }
  }
  conv2d_forward(device, g, x, w, bias, y);
  const BatchNorm2dGeometry norm_geometry{.batch = g.batch,
                                          .channels = g.out_channels,
                                          .height = g.out_height(),
                                          .width = g.out_width(),
                                          .fused_relu = norm.relu,
                                          .relu_upper = norm.relu_upper,
                                          .channels_last = g.channels_last};
  batchnorm2d_forward_eval(device, norm_geometry, y, norm.gamma, norm.beta, norm.running_mean,
                           norm.running_var, norm.eps, y, norm.residual);
}

namespace {

// " of batch norm", then its activation: " + relu", " + relu6", " + hardswish".
std::string input_normalization_label(const InputNormalization& input) {
  return std::string(" of batch norm") +
         (input.hardswish ? " + hardswish" : fused_relu_label(input.relu, input.relu_upper));
}

}  // namespace

// Winograd's copies in take the input normalization (pad_input), and so do the depthwise kernels' (the phase
// split of depthwise_kernel.hpp, the gathered blocks of depthwise_channels_kernel.hpp: copies_normalize);
// both passes must run it, so that the forward and the weight gradient read the same normalized input. The
// geometry as given: a pass that would crop its taps or take its one-pixel planes channels-last is neither's.
bool conv2d_normalizes_input(Device device, const Conv2dGeometry& g) {
  if (!device.is_cpu() || !fast_kernels<float>() || g.channels_last) return false;
  const CpuPass pass = cpu_pass<float>(g);
  if (pass.cropped || pass.geometry.channels_last) return false;
  return copies_normalize(choose_conv2d_algorithm(g, Conv2dDirection::Forward, cpu_level())) &&
         copies_normalize(choose_conv2d_algorithm(g, Conv2dDirection::BackwardWeight, cpu_level()));
}

void conv2d_forward_normalized_input(Device device, const Conv2dGeometry& g, const float* x,
                                     const InputNormalization& input, const float* w, const float* bias,
                                     float* y) {
  KILN_CHECK(conv2d_normalizes_input(device, g), "conv2d_forward_normalized_input: ", profile_label(g),
             " is not a pass whose copies normalize (conv2d_normalizes_input)");
  profiler::Scope profile("conv2d_forward", device, DType::Float32);
  if (profile.measuring()) describe_convolution(profile, g, input_normalization_label(input));
  conv2d_forward_using(choose_conv2d_algorithm(g, Conv2dDirection::Forward, cpu_level()), g, x, w, bias, y,
                       &input);
}

void conv2d_backward_weight_normalized_input(Device device, const Conv2dGeometry& g, const float* gy,
                                             const float* x, const InputNormalization& input, float* gw) {
  KILN_CHECK(conv2d_normalizes_input(device, g),
             "conv2d_backward_weight_normalized_input: ", profile_label(g),
             " is not a pass whose copies normalize (conv2d_normalizes_input)");
  profiler::Scope profile("conv2d_backward_weight", device, DType::Float32);
  if (profile.measuring()) describe_convolution(profile, g, input_normalization_label(input));
  conv2d_backward_weight_using(choose_conv2d_algorithm(g, Conv2dDirection::BackwardWeight, cpu_level()), g,
                               gy, x, gw, &input);
}

template <typename T>
bool conv2d_accumulates_input_gradient(Device device, const Conv2dGeometry& g) {
  if (!device.is_cpu()) return false;
  const CpuPass pass = cpu_pass<T>(g);
  if (pass.cropped || pass.geometry.channels_last != g.channels_last) return false;
  if constexpr (std::is_same_v<T, bfloat16>) {
    return bfloat16_conv2d_path(g, Conv2dDirection::BackwardData) == Bfloat16Conv2dPath::Amx;
  } else if constexpr (std::is_same_v<T, float>) {
    if (!fast_kernels<float>() || g.channels_last) return false;
    const Conv2dAlgorithm algorithm = choose_conv2d_algorithm(g, Conv2dDirection::BackwardData, cpu_level());
    return algorithm == Conv2dAlgorithm::Winograd2x2 || algorithm == Conv2dAlgorithm::Winograd4x4;
  }
  return false;
}

template <typename T>
void conv2d_backward_data_accumulate(Device device, const Conv2dGeometry& g, const T* gy, const T* w, T* gx) {
  KILN_CHECK(conv2d_accumulates_input_gradient<T>(device, g),
             "conv2d_backward_data_accumulate: ", profile_label(g),
             " is not a pass that adds into its gradient (conv2d_accumulates_input_gradient)");
  profiler::Scope profile("conv2d_backward_data", device, dtype_of_v<T>);
  describe_convolution(profile, g, " into a sum");
  if constexpr (std::is_same_v<T, bfloat16>) {
    amx::conv2d_backward_data_bf16(g, gy, w, gx, true);
  } else if constexpr (std::is_same_v<T, float>) {
    const WinogradTile tile = chosen_winograd_tile(g, Conv2dDirection::BackwardData);
    if (cpu_level() == CpuLevel::Avx512)
      return avx512::winograd_conv2d_backward_data(tile, g, gy, w, gx, true);
    avx2::winograd_conv2d_backward_data(tile, g, gy, w, gx, true);
  }
}

template <typename T>
void conv2d_backward_data(Device device, const Conv2dGeometry& g, const T* gy, const T* w, T* gx) {
  profiler::Scope profile("conv2d_backward_data", device, dtype_of_v<T>);
  describe_convolution(profile, g);
#ifdef KILN_WITH_CUDA
  if (device.is_cuda()) {
    return cuda::tuned_conv2d_backward_data(g, gy, w, gx);
  }
#endif
  require_cpu(device, "conv2d_backward_data");
  const CpuPass pass = cpu_pass<T>(g);
  if (pass.cropped)
    return backward_data_on_cpu(pass.geometry, gy, cropped_weights(g, *pass.cropped, w).get(), gx);
  backward_data_on_cpu(pass.geometry, gy, w, gx);
}

template <typename T>
void conv2d_backward_weight(Device device, const Conv2dGeometry& g, const T* gy, const T* x, T* gw) {
  profiler::Scope profile("conv2d_backward_weight", device, dtype_of_v<T>);
  describe_convolution(profile, g);
#ifdef KILN_WITH_CUDA
  if (device.is_cuda()) {
    return cuda::tuned_conv2d_backward_weight(g, gy, x, gw);
  }
#endif
  require_cpu(device, "conv2d_backward_weight");
  const CpuPass pass = cpu_pass<T>(g);
  if (pass.cropped) {
    const TypedScratch<T> taps = taps_for<T>(pass.geometry);
    backward_weight_on_cpu(pass.geometry, gy, x, taps.get());
    return uncrop_weight_gradient(g, *pass.cropped, taps.get(), gw);
  }
  backward_weight_on_cpu(pass.geometry, gy, x, gw);
}

template <typename T>
void conv2d_backward_bias(Device device, const Conv2dGeometry& g, const T* gy, T* gb) {
  profiler::Scope profile("conv2d_backward_bias", device, dtype_of_v<T>);
  if (profile.measuring()) profile.set_detail(profile_label(g));
#ifdef KILN_WITH_CUDA
  if (device.is_cuda()) {
    return cuda::conv2d_backward_bias(g, gy, gb);
  }
#endif
  require_cpu(device, "conv2d_backward_bias");
  // float and bfloat16, either layout: the vector kernels sum gy as it is stored (bias_kernel.hpp).
  if constexpr (std::is_same_v<T, float> || std::is_same_v<T, bfloat16>) {
    if (cpu_level() == CpuLevel::Avx512) return avx512::conv2d_backward_bias(g, gy, gb);
    if (cpu_level() == CpuLevel::Avx2) return avx2::conv2d_backward_bias(g, gy, gb);
  }
  reference::conv2d_backward_bias(g, gy, gb);
}

template void conv2d_forward<float>(Device, const Conv2dGeometry&, const float*, const float*, const float*,
                                    float*);
template void conv2d_forward_batchnorm_eval<float>(Device, const Conv2dGeometry&, const float*, const float*,
                                                   const float*, const BatchNormEval<float>&, float*);
template void conv2d_backward_data<float>(Device, const Conv2dGeometry&, const float*, const float*, float*);
template bool conv2d_accumulates_input_gradient<float>(Device, const Conv2dGeometry&);
template bool conv2d_accumulates_input_gradient<double>(Device, const Conv2dGeometry&);
template bool conv2d_accumulates_input_gradient<bfloat16>(Device, const Conv2dGeometry&);
template void conv2d_backward_data_accumulate<float>(Device, const Conv2dGeometry&, const float*,
                                                     const float*, float*);
template void conv2d_backward_data_accumulate<double>(Device, const Conv2dGeometry&, const double*,
                                                      const double*, double*);
template void conv2d_backward_data_accumulate<bfloat16>(Device, const Conv2dGeometry&, const bfloat16*,
                                                        const bfloat16*, bfloat16*);
template void conv2d_backward_weight<float>(Device, const Conv2dGeometry&, const float*, const float*,
                                            float*);
template void conv2d_backward_bias<float>(Device, const Conv2dGeometry&, const float*, float*);

template void conv2d_forward<double>(Device, const Conv2dGeometry&, const double*, const double*,
                                     const double*, double*);
template void conv2d_forward_batchnorm_eval<double>(Device, const Conv2dGeometry&, const double*,
                                                    const double*, const double*,
                                                    const BatchNormEval<double>&, double*);
template void conv2d_backward_data<double>(Device, const Conv2dGeometry&, const double*, const double*,
                                           double*);
template void conv2d_backward_weight<double>(Device, const Conv2dGeometry&, const double*, const double*,
                                             double*);
template void conv2d_backward_bias<double>(Device, const Conv2dGeometry&, const double*, double*);

template void conv2d_forward<bfloat16>(Device, const Conv2dGeometry&, const bfloat16*, const bfloat16*,
                                       const bfloat16*, bfloat16*);
template void conv2d_forward_batchnorm_eval<bfloat16>(Device, const Conv2dGeometry&, const bfloat16*,
                                                      const bfloat16*, const bfloat16*,
                                                      const BatchNormEval<bfloat16>&, bfloat16*);
template void conv2d_backward_data<bfloat16>(Device, const Conv2dGeometry&, const bfloat16*, const bfloat16*,
                                             bfloat16*);
template void conv2d_backward_weight<bfloat16>(Device, const Conv2dGeometry&, const bfloat16*,
                                               const bfloat16*, bfloat16*);
template void conv2d_backward_bias<bfloat16>(Device, const Conv2dGeometry&, const bfloat16*, bfloat16*);

}  // namespace kiln::kernels
