// Batch normalization on a CUDA device over channels-last tensors: the kernels of cuda_batchnorm.cu (the
// same formulas in double, the same one-pass statistics, the same fixed-order sums) with the work laid out
// for [N, H, W, C] memory, where a channel's m = N*H*W values lie C apart.
//
//   x, y, gy, gx  [N, H, W, C] in T (rows j = (n*H + h)*W + w of C values);  per-channel vectors [C]
//
// Why other kernels. cuda_batchnorm.cu gives each block one channel and its threads consecutive values of
// it: contiguous in NCHW, C values apart here, so each thread would read its own sector (for C = 16 floats,
// 8 times the bytes it uses). Here a block takes a group of up to 32 channels over a slice of rows: thread t
// works on channel t % width of the group (width = min(C, 32)) and rows t / width, + row_threads, ..., so a
// warp reads whole runs of a row's consecutive channels (32 floats: one 128-byte line; 16 channels: two
// consecutive rows' 64 bytes each). Each block writes its channels' partial sums to [C, slices], the layout
// cuda_batchnorm.cu uses, and the kernel that needs a channel's totals merges them in a fixed order, so
// every block of the channel gets the same bits.
//
// Fixed-order reductions within a block: each thread sums its rows in order; the row_threads threads of a
// channel then add their sums through shared memory, in row-thread order, one thread per channel. Nothing
// depends on timing.
#include <algorithm>
#include <cstdint>

#include "kernels/batchnorm/batchnorm.hpp"
#include "kernels/batchnorm/cuda_batchnorm_common.cuh"
#include "kernels/cuda_launch.cuh"

namespace kiln::kernels::cuda {
namespace {

using namespace batchnorm_detail;

constexpr int kMaxGroupWidth = 32;
// About 32 values per thread, as cuda_batchnorm.cu: a block's start and its reductions amortized.
constexpr std::int64_t kValuesPerSlice = 32 * kThreadsPerBlock;
constexpr std::int64_t kMaxSlices = 1024;

// How [m, C] splits into (channel group, slice of rows) work items, work = group * slices + slice.
struct RowSlices {
  std::int64_t channels;    // C
  std::int64_t rows;        // m = N * H * W
  std::int64_t groups;      // ceil(C / width)
  std::int64_t slices;      // row slices, >= 1
  std::int64_t slice_rows;  // rows per slice (the last may hold fewer, or none)
  int width;                // channels per group, min(C, 32)
  int row_threads;          // kThreadsPerBlock / width: threads per channel

  __host__ __device__ std::int64_t work_items() const { return groups * slices; }
};

RowSlices plan_row_slices(const BatchNorm2dGeometry& g) {
  RowSlices s{};
  s.channels = g.channels;
  s.rows = g.batch * g.height * g.width;
  s.width = static_cast<int>(std::min<std::int64_t>(g.channels, kMaxGroupWidth));
  s.row_threads = kThreadsPerBlock / s.width;
  s.groups = (g.channels + s.width - 1) / s.width;
  const std::int64_t rows_per_slice = std::max<std::int64_t>(1, kValuesPerSlice / s.width);
  s.slices = std::clamp<std::int64_t>((s.rows + rows_per_slice - 1) / rows_per_slice, 1, kMaxSlices);
  s.slice_rows = (s.rows + s.slices - 1) / s.slices;
  return s;
}

// This thread's place in a block: its channel (c, or -1 where the thread has none: past C, or one of the
// kThreadsPerBlock % width threads left over) and its first row within a slice.
struct Lane {
  std::int64_t c;
  int row;     // 0 .. row_threads - 1
  int column;  // the channel's index within the group, 0 .. width - 1
};
__device__ Lane lane_of(const RowSlices& s, std::int64_t group) {
  const int t = static_cast<int>(threadIdx.x);
  Lane lane{-1, t / s.width, t % s.width};
  const std::int64_t c = group * s.width + lane.column;
  if (lane.row < s.row_threads && c < s.channels) lane.c = c;
  return lane;
}

// Calls visit(offset) for this thread's values of its channel in slice `slice`: rows begin + lane.row,
// + row_threads, ... below the slice's end; value (j, c) at offset j * C + c.
template <class Visit>
__device__ void for_each_row_value(const RowSlices& s, const Lane& lane, std::int64_t slice, Visit&& visit) {
  if (lane.c < 0) return;
  const std::int64_t begin = slice * s.slice_rows;
  const std::int64_t end = begin + s.slice_rows < s.rows ? begin + s.slice_rows : s.rows;
  for (std::int64_t j = begin + lane.row; j < end; j += s.row_threads) visit(j * s.channels + lane.c);
}

// The sum over the block's row threads of each channel's `mine`, in row-thread order, returned to every
// thread of the channel (and {} to threads with none). Every thread of the block must call it.
__device__ PairSums channel_sum(const RowSlices& s, const Lane& lane, PairSums mine) {
  __shared__ PairSums cells[kThreadsPerBlock];
  __shared__ PairSums totals[kMaxGroupWidth];
  cells[threadIdx.x] = mine;
  __syncthreads();
  if (lane.row == 0 && lane.c >= 0) {
    PairSums total{};
    for (int r = 0; r < s.row_threads; ++r) total = total + cells[r * s.width + lane.column];
    totals[lane.column] = total;
  }
  __syncthreads();
  const PairSums result = lane.c >= 0 ? totals[lane.column] : PairSums{};
  __syncthreads();  // a caller that loops may write cells again
  return result;
}

// A block's partial sums into partial_a / partial_b [C, slices], at (c, slice).
__device__ void store_partials(const RowSlices& s, const Lane& lane, std::int64_t slice, PairSums mine,
                               double* partial_a, double* partial_b) {
  const PairSums sums = channel_sum(s, lane, mine);
  if (lane.row == 0 && lane.c >= 0) {
    partial_a[lane.c * s.slices + slice] = sums.a;
    partial_b[lane.c * s.slices + slice] = sums.b;
  }
}

// The totals of the thread's channel's partial sums [C, slices], in every thread of the channel: row thread r
// adds slices r, r + row_threads, ... and channel_sum adds the row threads' sums in order, so every block of
// the channel gets the same bits.
__device__ PairSums channel_totals(const RowSlices& s, const Lane& lane, const double* partial_a,
                                   const double* partial_b) {
  PairSums mine{};
  if (lane.c >= 0) {
    for (std::int64_t slice = lane.row; slice < s.slices; slice += s.row_threads) {
      mine.a += partial_a[lane.c * s.slices + slice];
      mine.b += partial_b[lane.c * s.slices + slice];
    }
  }
  return channel_sum(s, lane, mine);
}

// Statistics are taken around x[0, 0, 0, c], as in cuda_batchnorm.cu (zero when not finite, or no values).
template <typename T>
__device__ double statistics_shift(const RowSlices& s, const T* x, std::int64_t c) {
  if (s.rows == 0) return 0.0;
  const double first = static_cast<double>(x[c]);
  return isfinite(first) ? first : 0.0;
}

// ---- forward -----------------------------------------------------------------------------------------

// One block per (group, slice): sum d and sum d^2 over the slice, d = x - shift.
template <typename T>
__global__ void forward_partial_sums_kernel(RowSlices s, const T* x, double* partial_d, double* partial_d2) {
  for (std::int64_t work = blockIdx.x; work < s.work_items(); work += gridDim.x) {  // uniform in the block
    const std::int64_t group = work / s.slices, slice = work % s.slices;
    const Lane lane = lane_of(s, group);
    const double shift = lane.c >= 0 ? statistics_shift(s, x, lane.c) : 0.0;
    PairSums sums{};
    for_each_row_value(s, lane, slice, [&](std::int64_t offset) {
      const double d = static_cast<double>(x[offset]) - shift;
      sums.a += d;
      sums.b += d * d;
    });
    store_partials(s, lane, slice, sums, partial_d, partial_d2);
  }
}

// y = (x - mean) * invstd * gamma + beta over the thread's values, plus the residual when there is one,
// then the fused activation.
template <typename T>
__device__ void normalize_values(const RowSlices& s, const Lane& lane, std::int64_t slice,
                                 FusedActivation activation, const T* x, const T* residual, double mean,
                                 double invstd, double scale, double bias, T* y) {
  for_each_row_value(s, lane, slice, [&](std::int64_t offset) {
    y[offset] = normalized(x, residual, offset, mean, invstd, scale, bias, activation);
  });
}

// One block per (group, slice): the channels' statistics from their merged partial sums, as in
// cuda_batchnorm.cu (the blocks of slice 0 save them and move the running statistics), then normalize.
template <typename T>
__global__ void train_normalize_kernel(RowSlices s, FusedActivation activation, const T* x, const T* residual,
                                       const opmath_t<T>* gamma, const opmath_t<T>* beta, double eps,
                                       double momentum, const double* partial_d, const double* partial_d2,
                                       opmath_t<T>* save_mean, opmath_t<T>* save_invstd,
                                       opmath_t<T>* running_mean, opmath_t<T>* running_var, T* y) {
  for (std::int64_t work = blockIdx.x; work < s.work_items(); work += gridDim.x) {  // uniform in the block
    const std::int64_t group = work / s.slices, slice = work % s.slices;
    const Lane lane = lane_of(s, group);
    const PairSums totals = channel_totals(s, lane, partial_d, partial_d2);
    if (lane.c < 0) continue;
    const std::int64_t c = lane.c;
    const ChannelMoments moments = channel_moments(totals, s.rows, statistics_shift(s, x, c), eps);
    if (slice == 0 && lane.row == 0) {
      store_statistics<T>(c, moments, s.rows, momentum, save_mean, save_invstd, running_mean, running_var);
    }
    normalize_values(s, lane, slice, activation, x, residual, moments.mean, moments.invstd,
                     static_cast<double>(gamma[c]), static_cast<double>(beta[c]), y);
  }
}

template <typename T>
__global__ void eval_normalize_kernel(RowSlices s, FusedActivation activation, const T* x, const T* residual,
                                      const opmath_t<T>* gamma, const opmath_t<T>* beta,
                                      RunningStatistics<T> statistics, T* y) {
  for (std::int64_t work = blockIdx.x; work < s.work_items(); work += gridDim.x) {
    const std::int64_t group = work / s.slices, slice = work % s.slices;
    const Lane lane = lane_of(s, group);
    if (lane.c < 0) continue;
    normalize_values(s, lane, slice, activation, x, residual, statistics.mean(lane.c),
                     statistics.invstd(lane.c), static_cast<double>(gamma[lane.c]),
                     static_cast<double>(beta[lane.c]), y);
  }
}

// ---- backward ----------------------------------------------------------------------------------------

// One block per (group, slice): sum gy' and sum gy' * xhat; in eval mode (eval_gx given) also
// gx = gy' * gamma * invstd.
template <typename T, class Statistics>
__global__ void backward_partial_sums_kernel(RowSlices s, FusedActivation activation, const T* x, const T* gy,
                                             const T* y, const opmath_t<T>* gamma, const opmath_t<T>* beta,
                                             Statistics statistics, double* partial_gy,
                                             double* partial_gy_xhat, T* eval_gx, T* gy_through_relu) {
  for (std::int64_t work = blockIdx.x; work < s.work_items(); work += gridDim.x) {
    const std::int64_t group = work / s.slices, slice = work % s.slices;
    const Lane lane = lane_of(s, group);
    PairSums sums{};
    if (lane.c >= 0) {
      const double mean = statistics.mean(lane.c), invstd = statistics.invstd(lane.c);
      const double eval_scale = static_cast<double>(gamma[lane.c]) * invstd;
      const ChannelAffine channel{mean, invstd, static_cast<double>(gamma[lane.c]),
                                  static_cast<double>(beta[lane.c])};
      for_each_row_value(s, lane, slice, [&](std::int64_t offset) {
        const T through = gradient_into_batchnorm(activation, gy, y, x, offset, channel);
        if (gy_through_relu) gy_through_relu[offset] = through;
        const double g = static_cast<double>(through);
        const double xhat = (static_cast<double>(x[offset]) - mean) * invstd;
        sums.a += g;
        sums.b += g * xhat;
        if (eval_gx) eval_gx[offset] = static_cast<T>(g * eval_scale);
      });
    }
    store_partials(s, lane, slice, sums, partial_gy, partial_gy_xhat);
  }
}

// One block per (group, slice): gbeta and ggamma from the merged partial sums (the blocks of slice 0 write
// them), then gx = gamma * invstd / m * (m * gy' - gbeta - xhat * ggamma).
template <typename T>
__global__ void train_gx_kernel(RowSlices s, FusedActivation activation, const T* x, const T* gy, const T* y,
                                const opmath_t<T>* gamma, const opmath_t<T>* beta,
                                SavedStatistics<T> statistics, const double* partial_gy,
                                const double* partial_gy_xhat, T* gx, opmath_t<T>* ggamma,
                                opmath_t<T>* gbeta) {
  const double m = static_cast<double>(s.rows);
  for (std::int64_t work = blockIdx.x; work < s.work_items(); work += gridDim.x) {  // uniform in the block
    const std::int64_t group = work / s.slices, slice = work % s.slices;
    const Lane lane = lane_of(s, group);
    const PairSums totals = channel_totals(s, lane, partial_gy, partial_gy_xhat);
    if (lane.c < 0) continue;
    const std::int64_t c = lane.c;
    if (slice == 0 && lane.row == 0) {
      gbeta[c] = static_cast<opmath_t<T>>(totals.a);
      ggamma[c] = static_cast<opmath_t<T>>(totals.b);
    }
    const double mean = statistics.mean(c), invstd = statistics.invstd(c);
    const double factor = static_cast<double>(gamma[c]) * invstd / m;
    const ChannelAffine channel{mean, invstd, static_cast<double>(gamma[c]), static_cast<double>(beta[c])};
    for_each_row_value(s, lane, slice, [&](std::int64_t offset) {
      const double g = static_cast<double>(gradient_into_batchnorm(activation, gy, y, x, offset, channel));
      const double xhat = (static_cast<double>(x[offset]) - mean) * invstd;
      gx[offset] = static_cast<T>(factor * (m * g - totals.a - xhat * totals.b));
    });
  }
}

unsigned work_blocks(const RowSlices& s) { return grid_blocks(s.work_items(), 1); }

}  // namespace

namespace channels_last {

template <typename T>
void batchnorm2d_forward_train(Device device, const BatchNorm2dGeometry& g, const T* x,
                               const opmath_t<T>* gamma, const opmath_t<T>* beta, opmath_t<T> eps,
                               opmath_t<T> momentum, opmath_t<T>* running_mean, opmath_t<T>* running_var,
                               T* y, opmath_t<T>* save_mean, opmath_t<T>* save_invstd, const T* residual) {
  const RowSlices s = plan_row_slices(g);
  const Scratch scratch(s.channels * s.slices, device);
  launch("batchnorm2d_forward_train (channels-last statistics)", forward_partial_sums_kernel<T>,
         work_blocks(s), kThreadsPerBlock, s, x, scratch.partial_a, scratch.partial_b);
  launch("batchnorm2d_forward_train (channels-last normalize)", train_normalize_kernel<T>, work_blocks(s),
         kThreadsPerBlock, s, FusedActivation::of(g), x, residual, gamma, beta, static_cast<double>(eps),
         static_cast<double>(momentum), scratch.partial_a, scratch.partial_b, save_mean, save_invstd,
         running_mean, running_var, y);
}

template <typename T>
void batchnorm2d_forward_eval(const BatchNorm2dGeometry& g, const T* x, const opmath_t<T>* gamma,
                              const opmath_t<T>* beta, const opmath_t<T>* running_mean,
                              const opmath_t<T>* running_var, opmath_t<T> eps, T* y, const T* residual) {
  const RowSlices s = plan_row_slices(g);
  if (s.rows == 0) return;
  launch("batchnorm2d_forward_eval (channels-last)", eval_normalize_kernel<T>, work_blocks(s),
         kThreadsPerBlock, s, FusedActivation::of(g), x, residual, gamma, beta,
         RunningStatistics<T>{running_mean, running_var, static_cast<double>(eps)}, y);
}

template <typename T>
void batchnorm2d_backward_train(Device device, const BatchNorm2dGeometry& g, const T* x, const T* gy,
                                const T* y, const opmath_t<T>* gamma, const opmath_t<T>* beta,
                                const opmath_t<T>* save_mean, const opmath_t<T>* save_invstd, T* gx,
                                opmath_t<T>* ggamma, opmath_t<T>* gbeta, T* gy_through_relu) {
  const RowSlices s = plan_row_slices(g);
  const Scratch scratch(s.channels * s.slices, device);
  const SavedStatistics<T> statistics{save_mean, save_invstd};
  launch("batchnorm2d_backward_train (channels-last sums)",
         backward_partial_sums_kernel<T, SavedStatistics<T>>, work_blocks(s), kThreadsPerBlock, s,
         FusedActivation::of(g), x, gy, y, gamma, beta, statistics, scratch.partial_a, scratch.partial_b,
         static_cast<T*>(nullptr), g.fused_relu ? gy_through_relu : nullptr);
  launch("batchnorm2d_backward_train (channels-last gx)", train_gx_kernel<T>, work_blocks(s),
         kThreadsPerBlock, s, FusedActivation::of(g), x, gy, y, gamma, beta, statistics, scratch.partial_a,
         scratch.partial_b, gx, ggamma, gbeta);
}

template <typename T>
void batchnorm2d_backward_eval(Device device, const BatchNorm2dGeometry& g, const T* x, const T* gy,
                               const T* y, const opmath_t<T>* gamma, const opmath_t<T>* beta,
                               const opmath_t<T>* running_mean, const opmath_t<T>* running_var,
                               opmath_t<T> eps, T* gx, opmath_t<T>* ggamma, opmath_t<T>* gbeta,
                               T* gy_through_relu) {
  const RowSlices s = plan_row_slices(g);
  const Scratch scratch(s.channels * s.slices, device);
  launch("batchnorm2d_backward_eval (channels-last sums and gx)",
         backward_partial_sums_kernel<T, RunningStatistics<T>>, work_blocks(s), kThreadsPerBlock, s,
         FusedActivation::of(g), x, gy, y, gamma, beta,
         RunningStatistics<T>{running_mean, running_var, static_cast<double>(eps)}, scratch.partial_a,
         scratch.partial_b, gx, g.fused_relu ? gy_through_relu : nullptr);
  launch("batchnorm2d_backward_eval (channels-last sums)", finish_gradient_sums_kernel<opmath_t<T>>,
         grid_blocks(s.channels), kThreadsPerBlock, s.channels, s.slices, scratch.partial_a,
         scratch.partial_b, gbeta, ggamma);
}

#define KILN_CHANNELS_LAST_BATCHNORM(T)                                                                  \
  template void batchnorm2d_forward_train<T>(                                                            \
      Device, const BatchNorm2dGeometry&, const T*, const opmath_t<T>*, const opmath_t<T>*, opmath_t<T>, \
      opmath_t<T>, opmath_t<T>*, opmath_t<T>*, T*, opmath_t<T>*, opmath_t<T>*, const T*);                \
  template void batchnorm2d_forward_eval<T>(const BatchNorm2dGeometry&, const T*, const opmath_t<T>*,    \
                                            const opmath_t<T>*, const opmath_t<T>*, const opmath_t<T>*,  \
                                            opmath_t<T>, T*, const T*);                                  \
  template void batchnorm2d_backward_train<T>(                                                           \
      Device, const BatchNorm2dGeometry&, const T*, const T*, const T*, const opmath_t<T>*,              \
      const opmath_t<T>*, const opmath_t<T>*, const opmath_t<T>*, T*, opmath_t<T>*, opmath_t<T>*, T*);   \
  template void batchnorm2d_backward_eval<T>(Device, const BatchNorm2dGeometry&, const T*, const T*,     \
                                             const T*, const opmath_t<T>*, const opmath_t<T>*,           \
                                             const opmath_t<T>*, const opmath_t<T>*, opmath_t<T>, T*,    \
                                             opmath_t<T>*, opmath_t<T>*, T*);
KILN_CHANNELS_LAST_BATCHNORM(float)
KILN_CHANNELS_LAST_BATCHNORM(double)
KILN_CHANNELS_LAST_BATCHNORM(bfloat16)
#undef KILN_CHANNELS_LAST_BATCHNORM

}  // namespace channels_last
}  // namespace kiln::kernels::cuda
