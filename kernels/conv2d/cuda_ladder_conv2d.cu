// A ladder step run as one of kiln's convolutions (cuda_ladder_conv2d.hpp): the layout changes around it.
#include <cstdint>
#include <functional>
#include <optional>
#include <type_traits>

#include "core/bfloat16.hpp"
#include "core/error.hpp"
#include "kernels/conv2d/cuda_ladder_conv2d.hpp"
#include "kernels/conv2d/cuda_tuning.hpp"
#include "kernels/conv2d/ladder/ladder.hpp"
#include "kernels/ladder/launch.cuh"

namespace kiln::kernels::cuda {
namespace {

using conv2d_ladder::Layout;
using conv2d_ladder::Pass;
using conv2d_ladder::Step;

// ---- The transpose --------------------------------------------------------------------------------------

constexpr int kTile = 32;     // a tile of kTile x kTile elements per block
constexpr int kTileRows = 8;  // the block is kTile x kTileRows threads; each moves kTile / kTileRows elements
constexpr int kTransposeThreads = kTile * kTileRows;
constexpr unsigned kMaxGridY = 65535, kMaxGridZ = 65535;

// The type a transpose holds its tile in: float (a bfloat16 output rounded once, after the bias), or double
// when either side is double (the float64 passes, gradient checks, must move their values unrounded).
template <typename In, typename Out>
using TileValue =
    std::conditional_t<std::is_same_v<In, double> || std::is_same_v<Out, double>, double, float>;

// dst[b, j, i] = Out(src[b, i, j] + column_bias[j]) for every plane b < planes, i < rows, j < columns: each
// plane of src, a [rows, columns] matrix, transposed. The sum is in TileValue. A block moves one 32x32 tile:
// it reads 32 rows of 32 consecutive src elements, and writes 32 rows of 32 consecutive dst elements, both
// whole 128-byte lines for float. The tile's rows are 33 values long, so the column a warp reads back
// spreads over all 32 banks.
template <typename In, typename Out>
__global__ void __launch_bounds__(kTransposeThreads)
    transpose_planes_kernel(const In* __restrict__ src, Out* __restrict__ dst, int planes, int rows,
                            int columns, const Out* __restrict__ column_bias) {
  using Value = TileValue<In, Out>;
  __shared__ Value tile[kTile][kTile + 1];
  const long long plane_size = static_cast<long long>(rows) * columns;
  const int first_row = blockIdx.y * kTile, first_column = blockIdx.x * kTile;
  for (int plane = blockIdx.z; plane < planes; plane += gridDim.z) {
    const In* plane_src = src + plane * plane_size;
    Out* plane_dst = dst + plane * plane_size;
    const int column = first_column + threadIdx.x;
    const Value bias =
        column_bias != nullptr && column < columns ? static_cast<Value>(column_bias[column]) : Value(0);
    for (int i = threadIdx.y; i < kTile; i += kTileRows) {
      const int row = first_row + i;
      if (row < rows && column < columns)
        tile[i][threadIdx.x] =
            static_cast<Value>(plane_src[static_cast<long long>(row) * columns + column]) + bias;
    }
    __syncthreads();
    const int dst_column = first_row + threadIdx.x;  // dst is [columns, rows]
    for (int i = threadIdx.y; i < kTile; i += kTileRows) {
      const int dst_row = first_column + i;
      if (dst_row < columns && dst_column < rows)
        plane_dst[static_cast<long long>(dst_row) * rows + dst_column] = Out(tile[threadIdx.x][i]);
    }
    __syncthreads();  // the tile is rewritten for the next plane
  }
}

template <typename In, typename Out>
void transpose_planes(const In* src, Out* dst, std::int64_t planes, std::int64_t rows, std::int64_t columns,
                      const Out* column_bias = nullptr) {
  const std::int64_t row_tiles = (rows + kTile - 1) / kTile, column_tiles = (columns + kTile - 1) / kTile;
  // The ladder's own limit (every tensor below 2^31 elements) keeps these in int; the grid's y extent is
  // the one bound left to check.
  KILN_CHECK(row_tiles <= kMaxGridY, "conv2d ladder transpose: ", rows, " rows is more than ", kMaxGridY,
             " tiles of ", kTile);
  const dim3 grid(static_cast<unsigned>(column_tiles), static_cast<unsigned>(row_tiles),
                  static_cast<unsigned>(planes < kMaxGridZ ? planes : kMaxGridZ));
  ladder::launch("conv2d ladder layout transpose", transpose_planes_kernel<In, Out>, grid,
                 dim3(kTile, kTileRows), 0, src, dst, static_cast<int>(planes), static_cast<int>(rows),
                 static_cast<int>(columns), column_bias);
}

// y[n, k, :] += bias[k] over [N, K, plane] float, in place: the NCHW fp32 steps write y without a bias.
__global__ void add_channel_bias_kernel(float* __restrict__ y, const float* __restrict__ bias, int channels,
                                        long long plane, long long count) {
  const long long stride = static_cast<long long>(gridDim.x) * blockDim.x;
  for (long long i = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x; i < count; i += stride)
    y[i] += bias[(i / plane) % channels];
}

void add_channel_bias(const Conv2dGeometry& g, const float* bias, float* y) {
  const long long plane = g.out_height() * g.out_width(), count = g.batch * g.out_channels * plane;
  constexpr int kThreads = 256;
  const long long blocks = (count + kThreads - 1) / kThreads;
  ladder::launch("conv2d ladder bias", add_channel_bias_kernel,
                 dim3(static_cast<unsigned>(blocks < 4096 ? blocks : 4096)), dim3(kThreads), 0, y, bias,
                 static_cast<int>(g.out_channels), plane, count);
}

// `t` (NCHW, of T) as an NHWC copy in scratch.
template <typename T>
const T* to_nhwc(const T* t, const NchwShape& shape, const ladder::Scratch& scratch) {
  T* copy = scratch.as<T>();
  transpose_planes(t, copy, shape.planes, shape.channels, shape.positions);
  return copy;
}

// `t` (NHWC, of T) as an NCHW copy in scratch.
template <typename T>
const T* to_nchw(const T* t, const NchwShape& shape, const ladder::Scratch& scratch) {
  T* copy = scratch.as<T>();
  transpose_planes(t, copy, shape.planes, shape.positions, shape.channels);
  return copy;
}

// out[i] = Out(in[i] + bias[i % channels]) over [rows, channels] (bias may be null): an NHWC step's float
// output into a channels-last tensor of T, the bias added in float before the one rounding.
template <typename Out>
__global__ void round_rows_kernel(const float* __restrict__ in, Out* __restrict__ out, long long count,
                                  int channels, const Out* __restrict__ bias) {
  const long long stride = static_cast<long long>(gridDim.x) * blockDim.x;
  for (long long i = static_cast<long long>(blockIdx.x) * blockDim.x + threadIdx.x; i < count; i += stride) {
    const float b = bias != nullptr ? static_cast<float>(bias[i % channels]) : 0.0f;
    out[i] = Out(in[i] + b);
  }
}

template <typename Out>
void round_rows(const float* in, Out* out, std::int64_t count, std::int64_t channels, const Out* bias) {
  constexpr int kThreads = 256;
  const long long blocks = (count + kThreads - 1) / kThreads;
  ladder::launch("conv2d ladder output rounding", round_rows_kernel<Out>,
                 dim3(static_cast<unsigned>(blocks < 4096 ? blocks : 4096)), dim3(kThreads), 0, in, out,
                 static_cast<long long>(count), static_cast<int>(channels), bias);
}

// Which of a pass's tensors are activations (x, y, gy, gx: NCHW or channels-last as the call's geometry
// says) and which is the filter or its gradient (always [K, C/groups, R, S]).
struct ActivationRoles {
  bool first, second, output;
};
constexpr ActivationRoles activation_roles(Pass pass) {
  switch (pass) {
    case Pass::Forward:
      return {true, false, true};  // x, w -> y
    case Pass::BackwardData:
      return {true, false, true};  // gy, w -> gx
    case Pass::BackwardWeight:
      return {true, true, false};  // gy, x -> gw
  }
  return {};
}

// A channels-last call of an NHWC step: the activations are already its layout; only the filter is
// transposed to [K, R, S, C], and (backward weight) the filter gradient back. The output goes through float
// scratch, rounded (with the bias) into T.
template <typename T>
void run_nhwc_step_on_channels_last(const Step& step, const Conv2dGeometry& g, const T* first,
                                    const T* second, const T* bias, T* output) {
  const PassTensors shapes = pass_tensors(step.pass, g);
  const ActivationRoles roles = activation_roles(step.pass);
  std::optional<ladder::Scratch> filter_nhwc;  // forward and backward data: w as [K, R, S, C]
  const T* second_nhwc = second;
  if (!roles.second) {
    second_nhwc =
        to_nhwc(second, shapes.second,
                filter_nhwc.emplace(static_cast<std::size_t>(shapes.second.elements()) * sizeof(T)));
  }
  const ladder::Scratch output_float(static_cast<std::size_t>(shapes.output.elements()) * sizeof(float));
  step.launch(g, first, second_nhwc, output_float.as<float>());
  const NchwShape& out = shapes.output;
  if (roles.output) {
    round_rows(output_float.as<const float>(), output, out.elements(), out.channels, bias);
  } else {  // the filter gradient, [K, R*S, C] -> [K, C, R*S]
    transpose_planes(output_float.as<const float>(), output, out.planes, out.positions, out.channels);
  }
}

}  // namespace

PassTensors pass_tensors(Pass pass, const Conv2dGeometry& g) {
  const NchwShape input{g.batch, g.in_channels, g.in_height * g.in_width};
  const NchwShape output{g.batch, g.out_channels, g.out_height() * g.out_width()};
  const NchwShape weights{g.out_channels, g.in_channels_per_group(), g.kernel_h * g.kernel_w};
  switch (pass) {
    case Pass::Forward:
      return {input, weights, output};
    case Pass::BackwardData:
      return {output, weights, input};
    case Pass::BackwardWeight:
      return {output, input, weights};
  }
  return {};
}

template <typename T>
bool ladder_step_serves(const Step& step, const Conv2dGeometry& g) {
  // The rule, with its reasons, is cuda_tuning.hpp's, by element type name.
  const char* element_type = std::is_same_v<T, bfloat16> ? "bfloat16" : std::is_same_v<T, float> ? "float" : "double";
  return ladder_step_serves(step, g, element_type);
}

template <typename T>
void run_ladder_step(const Step& step, const Conv2dGeometry& g, const T* first, const T* second,
                     const T* bias, T* output) {
  KILN_CHECK(ladder_step_serves<T>(step, g), "conv2d ladder ", step.name, ": cannot serve this ",
             conv2d_ladder::pass_name(step.pass), " convolution (",
             std::is_same_v<T, bfloat16> ? "bfloat16" : (std::is_same_v<T, float> ? "float" : "double"),
             " tensors, C=", g.in_channels, " K=", g.out_channels, " groups=", g.groups, ")");
  KILN_CHECK(bias == nullptr || step.pass == Pass::Forward, "conv2d ladder ", step.name,
             ": only the forward pass takes a bias");
  if constexpr (!std::is_same_v<T, double>) {
    if (g.channels_last) {
      if (step.layout == Layout::Nhwc)
        return run_nhwc_step_on_channels_last(step, g, first, second, bias, output);
      // An NCHW step behind transposes of the activations.
      return run_as_nchw<T>(step.pass, g, first, second, output,
                            [&](const Conv2dGeometry& nchw, const T* a, const T* b, T* out) {
                              run_ladder_step(step, nchw, a, b, bias, out);
                            });
    }
    const PassTensors shapes = pass_tensors(step.pass, g);
    if (step.layout == Layout::Nchw) {
      if constexpr (std::is_same_v<T, float>) {
        step.launch(g, first, second, output);
        if (bias != nullptr) add_channel_bias(g, bias, output);
      }
      return;
    }
    const ladder::Scratch first_nhwc(static_cast<std::size_t>(shapes.first.elements()) * sizeof(T));
    const ladder::Scratch second_nhwc(static_cast<std::size_t>(shapes.second.elements()) * sizeof(T));
    const ladder::Scratch output_nhwc(static_cast<std::size_t>(shapes.output.elements()) * sizeof(float));
    step.launch(g, to_nhwc(first, shapes.first, first_nhwc), to_nhwc(second, shapes.second, second_nhwc),
                output_nhwc.as<float>());
    // Back to NCHW: each plane of the output, [positions, channels], transposed.
    const NchwShape& out = shapes.output;
    transpose_planes(output_nhwc.as<const float>(), output, out.planes, out.positions, out.channels, bias);
  }
}

template <typename T>
void run_as_nchw(Pass pass, const Conv2dGeometry& g, const T* first, const T* second, T* output,
                 const std::function<void(const Conv2dGeometry&, const T*, const T*, T*)>& run) {
  const PassTensors shapes = pass_tensors(pass, g);
  const ActivationRoles roles = activation_roles(pass);
  Conv2dGeometry nchw = g;
  nchw.channels_last = false;
  // Scratch for the activations only (the filter and its gradient need none).
  std::optional<ladder::Scratch> first_nchw, second_nchw, output_nchw;
  const auto scratch_for = [](std::optional<ladder::Scratch> & scratch, const NchwShape& shape) -> auto& {
    return scratch.emplace(static_cast<std::size_t>(shape.elements()) * sizeof(T));
  };
  const T* a = roles.first ? to_nchw(first, shapes.first, scratch_for(first_nchw, shapes.first)) : first;
  const T* b =
      roles.second ? to_nchw(second, shapes.second, scratch_for(second_nchw, shapes.second)) : second;
  T* out = roles.output ? scratch_for(output_nchw, shapes.output).template as<T>() : output;
  run(nchw, a, b, out);
  if (roles.output) {
    const NchwShape& o = shapes.output;
    transpose_planes(static_cast<const T*>(out), output, o.planes, o.channels, o.positions);
  }
}

template bool ladder_step_serves<float>(const Step&, const Conv2dGeometry&);
template bool ladder_step_serves<double>(const Step&, const Conv2dGeometry&);
template bool ladder_step_serves<bfloat16>(const Step&, const Conv2dGeometry&);
template void run_ladder_step<float>(const Step&, const Conv2dGeometry&, const float*, const float*,
                                     const float*, float*);
template void run_ladder_step<double>(const Step&, const Conv2dGeometry&, const double*, const double*,
                                      const double*, double*);
template void run_ladder_step<bfloat16>(const Step&, const Conv2dGeometry&, const bfloat16*, const bfloat16*,
                                        const bfloat16*, bfloat16*);
#define KILN_INSTANTIATE_RUN_AS_NCHW(T)                                             \
  template void run_as_nchw<T>(Pass, const Conv2dGeometry&, const T*, const T*, T*, \
                               const std::function<void(const Conv2dGeometry&, const T*, const T*, T*)>&);
KILN_INSTANTIATE_RUN_AS_NCHW(float)
KILN_INSTANTIATE_RUN_AS_NCHW(double)
KILN_INSTANTIATE_RUN_AS_NCHW(bfloat16)
#undef KILN_INSTANTIATE_RUN_AS_NCHW

}  // namespace kiln::kernels::cuda
