// The convolution ladder's table: every step of every pass in order, with what the tests and the benchmark
// need to run it. A new step is a new file and a line here.
#include <array>
#include <cstdint>
#include <span>
#include <string>

#include "core/error.hpp"
#include "kernels/conv2d/ladder/ladder.hpp"
#include "kernels/ladder/hopper.hpp"
#include "kernels/ladder/operands.hpp"

namespace kiln::kernels::conv2d_ladder {
namespace {

#ifdef KILN_WITH_CUDA  // the launchers exist only where the .cu files are built
// A typed launcher behind the table's untyped signature: the inputs are `Operand`s (float or bfloat16).
template <typename Operand, void (*typed)(const Conv2dGeometry&, const Operand*, const Operand*, float*)>
constexpr auto untyped = ladder::untyped<Conv2dGeometry, Operand, typed>;

bool any_geometry(const Conv2dGeometry&) { return true; }
// 02's block stages an input tile of 8x8 outputs' reach and 16 filters' R x S taps: 12,288 floats, 48 KiB.
bool halo_fits(const Conv2dGeometry& g) {
  const std::int64_t tile_h = 7 * g.stride_h + (g.kernel_h - 1) * g.dilation_h + 1;
  const std::int64_t tile_w = 7 * g.stride_w + (g.kernel_w - 1) * g.dilation_w + 1;
  return tile_h * tile_w + 16 * g.kernel_h * g.kernel_w <= 12288;
}
bool one_group(const Conv2dGeometry& g) { return g.groups == 1; }
// 16-byte copies of consecutive channels: 4 floats, 8 bfloat16.
bool one_group_channels_of_4(const Conv2dGeometry& g) { return g.groups == 1 && g.in_channels % 4 == 0; }
bool one_group_channels_of_8(const Conv2dGeometry& g) { return g.groups == 1 && g.in_channels % 8 == 0; }
bool one_group_channels_of_8_strides_to_8(const Conv2dGeometry& g) {
  return one_group_channels_of_8(g) && g.stride_h <= 8 && g.stride_w <= 8;  // a tensor map's steps
}
// The same for the passes that also copy 16 bytes of consecutive output channels (gy in NHWC).
bool one_group_channels_and_filters_of_4(const Conv2dGeometry& g) {
  return one_group_channels_of_4(g) && g.out_channels % 4 == 0;
}
bool one_group_channels_and_filters_of_8(const Conv2dGeometry& g) {
  return one_group_channels_of_8(g) && g.out_channels % 8 == 0;
}
bool one_group_channels_and_filters_of_8_strides_to_8(const Conv2dGeometry& g) {
  return one_group_channels_and_filters_of_8(g) && g.stride_h <= 8 && g.stride_w <= 8;  // a tensor map's steps
}
#endif

constexpr std::int64_t kMaxWindow = 65535;

// Why `g` is not a convolution every step can run, or "" when it is.
std::string invalid_reason(const Conv2dGeometry& g) {
  if (g.batch < 1 || g.in_channels < 1 || g.in_height < 1 || g.in_width < 1 || g.out_channels < 1 ||
      g.kernel_h < 1 || g.kernel_w < 1 || g.stride_h < 1 || g.stride_w < 1 || g.pad_h < 0 || g.pad_w < 0 ||
      g.dilation_h < 1 || g.dilation_w < 1 || g.groups < 1)
    return "sizes, strides, dilations and groups must be at least 1 and padding at least 0";
  // Index arithmetic like p * stride - pad + r * dilation runs in int: bounding each factor keeps it there.
  if (g.kernel_h > kMaxWindow || g.kernel_w > kMaxWindow || g.stride_h > kMaxWindow ||
      g.stride_w > kMaxWindow || g.pad_h > kMaxWindow || g.pad_w > kMaxWindow || g.dilation_h > kMaxWindow ||
      g.dilation_w > kMaxWindow)
    return "kernel sizes, strides, padding and dilations must be at most 65535";
  if (g.in_channels % g.groups != 0 || g.out_channels % g.groups != 0)
    return "channels must be divisible by groups";
  if (g.out_height() < 1 || g.out_width() < 1) return "the kernel does not fit in the padded image";
  const std::int64_t x = g.batch * g.in_channels * g.in_height * g.in_width;
  const std::int64_t w = g.out_channels * g.in_channels_per_group() * g.kernel_h * g.kernel_w;
  const std::int64_t y = g.batch * g.out_channels * g.out_height() * g.out_width();
  if (!ladder::indexable_with_int(x) || !ladder::indexable_with_int(w) || !ladder::indexable_with_int(y))
    return "every tensor must hold fewer than 2^31 elements (the kernels index with int)";
  return "";
}

}  // namespace

std::span<const Step> steps() {
#ifdef KILN_WITH_CUDA
  using enum Conv2dDirection;
  using enum Layout;
  static constexpr std::array table{
      Step{"01_forward_naive",
           "one thread per output element, a loop over the C/groups x R x S taps, all from global memory", "",
           Forward, Precision::Fp32, Nchw, any_geometry, untyped<float, launch_01_forward_naive>},
      Step{"02_forward_shared_tiled",
           "an 8x8 output tile x 16 channels per block, from an input halo tile and a filter slice staged in "
           "shared "
           "memory",
           "(7*stride_h + (R-1)*dilation_h + 1) * (7*stride_w + (S-1)*dilation_w + 1) + 16*R*S <= 12288",
           Forward, Precision::Fp32, Nchw, halo_fits, untyped<float, launch_02_forward_shared_tiled>},
      Step{"03_forward_implicit_gemm",
           "implicit GEMM: im2col tiles gathered on the fly into shared memory, 4x4 register blocking, the "
           "next tile "
           "prefetched through registers",
           "groups 1", Forward, Precision::Fp32, Nchw, one_group,
           untyped<float, launch_03_forward_implicit_gemm>},
      Step{"04_forward_implicit_gemm_tf32",
           "implicit GEMM on tensor cores (mma.sync m16n8k8 TF32): NHWC 16-byte gathers, a three-stage "
           "cp.async pipeline, "
           "the tile width picked by K",
           "groups 1, C % 4 == 0", Forward, Precision::Tf32, Nhwc, one_group_channels_of_4,
           untyped<float, launch_04_forward_implicit_gemm_tf32>},
      Step{"05_forward_implicit_gemm_bf16",
           "bfloat16 tensor cores (m16n8k16) fed by ldmatrix: twice the values per byte and per mma",
           "groups 1, C % 8 == 0", Forward, Precision::Bf16, Nhwc, one_group_channels_of_8,
           untyped<bfloat16, launch_05_forward_implicit_gemm_bf16>},
      Step{"06_forward_implicit_gemm_split_k",
           "step 03 with split-K for outputs too small to fill the GPU: the reduction over C*R*S cut into "
           "chunks run by separate blocks, their partial outputs added in a fixed order",
           "groups 1", Forward, Precision::Fp32, Nchw, one_group,
           untyped<float, launch_06_forward_implicit_gemm_split_k>},
      Step{"07_forward_wgmma_bf16",
           "Hopper's asynchronous warpgroup multiply (wgmma m64nNk16) reading 128-byte-swizzled tiles from "
           "shared memory, its work overlapped with a four-stage cp.async pipeline",
           "groups 1, C % 8 == 0, an H100 or H200 and a build for sm_90a", Forward, Precision::Bf16, Nhwc,
           one_group_channels_of_8, untyped<bfloat16, launch_07_forward_wgmma_bf16>, /*needs_wgmma=*/true},
      Step{
          "08_forward_tma_wgmma_bf16",
          "warp specialization: the tensor memory accelerator gathers each im2col tile as one strided box of "
          "x (the padding as out-of-bounds zeros), two warpgroups only multiply, mbarriers hand stages over",
          "groups 1, C % 8 == 0, strides up to 8, an H100 or H200 and a build for sm_90a", Forward,
          Precision::Bf16, Nhwc, one_group_channels_of_8_strides_to_8,
          untyped<bfloat16, launch_08_forward_tma_wgmma_bf16>, /*needs_wgmma=*/true},
      Step{"01_backward_data_naive",
           "one thread per element of gx, gathering the taps that read it (no atomics)", "", BackwardData,
           Precision::Fp32, Nchw, any_geometry, untyped<float, launch_01_backward_data_naive>},
      Step{"03_backward_data_implicit_gemm",
           "implicit GEMM for gx: gy gathered through the taps that read each input, tiles in shared memory, "
           "register-blocked 4 x 4",
           "groups 1", BackwardData, Precision::Fp32, Nchw, one_group,
           untyped<float, launch_03_backward_data_implicit_gemm>},
      Step{"04_backward_data_implicit_gemm_tf32",
           "implicit GEMM for gx on tensor cores (mma.sync m16n8k8 TF32): NHWC 16-byte gathers of gy, a "
           "division-free "
           "tap test, a three-stage cp.async pipeline, the tile width picked by C",
           "groups 1, C % 4 == 0, K % 4 == 0", BackwardData, Precision::Tf32, Nhwc,
           one_group_channels_and_filters_of_4, untyped<float, launch_04_backward_data_implicit_gemm_tf32>},
      Step{"05_backward_data_implicit_gemm_bf16",
           "bfloat16 tensor cores (m16n8k16): A by ldmatrix, the filter's [k][c] slabs by ldmatrix_x4_trans",
           "groups 1, C % 8 == 0, K % 8 == 0", BackwardData, Precision::Bf16, Nhwc,
           one_group_channels_and_filters_of_8,
           untyped<bfloat16, launch_05_backward_data_implicit_gemm_bf16>},
      Step{
          "06_backward_data_stride_phase",
          "stride-phase decomposition of step 03: one dense implicit GEMM per phase of (h + pad) mod stride, "
          "over only the taps that land on it, with no division (a quarter of step 03's work for a 3x3 at "
          "stride 2), split-K where gx makes few tiles",
          "groups 1", BackwardData, Precision::Fp32, Nchw, one_group,
          untyped<float, launch_06_backward_data_stride_phase>},
      Step{"06_backward_data_stride_phase_bf16",
           "stride-phase decomposition: one dense implicit GEMM per phase of (h + pad) mod stride, over only "
           "the taps that land on it (a quarter of step 05's mma work for a 3x3 at stride 2)",
           "groups 1, C % 8 == 0, K % 8 == 0", BackwardData, Precision::Bf16, Nhwc,
           one_group_channels_and_filters_of_8, untyped<bfloat16, launch_06_backward_data_stride_phase_bf16>},
      Step{"07_backward_data_wgmma_bf16",
           "Hopper's wgmma for gx: the gathered gy K-major, the filter's [K][C] slabs read MN-major (wgmma's "
           "transposed B), four cp.async stages overlapping the multiplies",
           "groups 1, C % 8 == 0, K % 8 == 0, an H100 or H200 and a build for sm_90a", BackwardData,
           Precision::Bf16, Nhwc, one_group_channels_and_filters_of_8,
           untyped<bfloat16, launch_07_backward_data_wgmma_bf16>, /*needs_wgmma=*/true},
      Step{"08_backward_data_tma_wgmma_bf16",
           "warp specialization for gx, by stride phase: gy gathered per tap as one box by the tensor memory "
           "accelerator, the filter's boxes MN-major, two warpgroups only multiply",
           "groups 1, C % 8 == 0, K % 8 == 0, an H100 or H200 and a build for sm_90a", BackwardData,
           Precision::Bf16, Nhwc, one_group_channels_and_filters_of_8,
           untyped<bfloat16, launch_08_backward_data_tma_wgmma_bf16>, /*needs_wgmma=*/true},
      Step{"01_backward_weight_naive",
           "one thread per element of gw, a serial sum over N x P x Q (slow and simple)", "", BackwardWeight,
           Precision::Fp32, Nchw, any_geometry, untyped<float, launch_01_backward_weight_naive>},
      Step{"03_backward_weight_implicit_gemm",
           "implicit GEMM over the batch's positions with split-K: partial tiles summed in a fixed order, "
           "register-blocked",
           "groups 1", BackwardWeight, Precision::Fp32, Nchw, one_group,
           untyped<float, launch_03_backward_weight_implicit_gemm>},
      Step{"04_backward_weight_implicit_gemm_tf32",
           "split-K implicit GEMM on tensor cores (mma.sync m16n8k8 TF32): NHWC 16-byte gathers, a "
           "three-stage "
           "cp.async pipeline",
           "groups 1, C % 4 == 0, K % 4 == 0", BackwardWeight, Precision::Tf32, Nhwc,
           one_group_channels_and_filters_of_4, untyped<float, launch_04_backward_weight_implicit_gemm_tf32>},
      Step{"05_backward_weight_implicit_gemm_bf16",
           "bfloat16 tensor cores (m16n8k16) fed by ldmatrix.trans from reduction-major tiles",
           "groups 1, C % 8 == 0, K % 8 == 0", BackwardWeight, Precision::Bf16, Nhwc,
           one_group_channels_and_filters_of_8,
           untyped<bfloat16, launch_05_backward_weight_implicit_gemm_bf16>},
      Step{"07_backward_weight_wgmma_bf16",
           "Hopper's wgmma for gw, computed as gw^T so the R*S*C columns fill its 64-row tiles: the gathered "
           "x "
           "and gy both read MN-major, split-K",
           "groups 1, C % 8 == 0, K % 8 == 0, an H100 or H200 and a build for sm_90a", BackwardWeight,
           Precision::Bf16, Nhwc, one_group_channels_and_filters_of_8,
           untyped<bfloat16, launch_07_backward_weight_wgmma_bf16>, /*needs_wgmma=*/true},
      Step{
          "08_backward_weight_tma_wgmma_bf16",
          "warp specialization for gw^T: x's box per tap and gy's box over the same positions, both MN-major "
          "from the tensor memory accelerator, two warpgroups splitting each stage, split-K",
          "groups 1, C % 8 == 0, K % 8 == 0, strides up to 8, an H100 or H200 and a build for sm_90a",
          BackwardWeight, Precision::Bf16, Nhwc, one_group_channels_and_filters_of_8_strides_to_8,
          untyped<bfloat16, launch_08_backward_weight_tma_wgmma_bf16>, /*needs_wgmma=*/true},
  };
  return table;
#else
  return {};
#endif
}

bool supports(const Step& step, const Conv2dGeometry& g) {
  return invalid_reason(g).empty() && step.takes(g) && (!step.needs_wgmma || ladder::wgmma_available());
}

void require_supported(std::string_view step_name, const Conv2dGeometry& g, bool step_takes_it,
                       std::string_view requirement) {
  std::string reason = invalid_reason(g);
  if (reason.empty() && !step_takes_it) reason = "this step needs " + std::string(requirement);
  KILN_CHECK(reason.empty(), "conv2d ladder ", step_name, ": cannot run N=", g.batch, " C=", g.in_channels,
             " H=", g.in_height, " W=", g.in_width, " K=", g.out_channels, " R=", g.kernel_h,
             " S=", g.kernel_w, " groups=", g.groups, ": ", reason);
}

void require_16_byte_operands(std::string_view step_name, const void* first, const void* second,
                              const float* output) {
  ladder::require_16_byte_operands("conv2d ladder", step_name, first, second, output);
}

}  // namespace kiln::kernels::conv2d_ladder
