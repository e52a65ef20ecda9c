// Reductions on a CUDA device (reduce.hpp): Sum, Max, Min and argmax over the middle axis of a dense
// x [outer, reduced, inner], giving y or indices [outer, inner]; T is float, double or bfloat16. The same
// results as reference.cpp:
//   Sum accumulates in double (for float and bfloat16 too) and rounds to T once; it adds in another order
//   than the reference's left-to-right loop (a tree, below), so it differs from it by double rounding, not
//   more (enough to move a float or bfloat16 result by one ulp where the sum lies next to a rounding tie).
//   Max / Min / argmax pick the first NaN if there is one, else the first extreme value: exactly the
//   reference's element, whatever order the candidates meet in (see ExtremePolicy::combine).
// Deterministic: no atomics; the split of the work, and so the order of the additions, depends only on the
// geometry.
//
// Two shapes of work:
//   inner == 1 (rows: x [outer, reduced], each output reads one contiguous row), reduced >= 32:
//     reduced <= kWarpRowLength: one warp per row; its lanes stride along the row (coalesced) and meet
//       in a shuffle tree (row_warp_kernel, 8 rows per 256-thread block).
//     longer rows: one block per row, or per chunk of a row when there are too few rows to fill the GPU
//       (a full sum is outer == 1): the block's threads stride along the chunk and meet in a block tree
//       (row_block_kernel). Chunks write partial results to scratch [outer, splits], and a warp per row
//       combines them (row_warp_kernel again, reading the partials).
//   otherwise (columns: x [outer, reduced, inner]): one thread per output (o, i) walks the reduced axis,
//     neighbouring threads reading neighbouring i (coalesced). When outputs are too few to fill the GPU
//     the reduced axis is split in up to kMaxColumnSplits chunks, each walked by its own thread into
//     scratch [outer, splits, inner], which one more pass of the same kernel combines.
// inner == 1 with reduced < 32 takes the column kernel too: a warp per row would leave most lanes idle.
#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "core/cuda_runtime.hpp"
#include "core/error.hpp"
#include "core/storage.hpp"
#include "kernels/cuda_launch.cuh"
#include "kernels/reduce/reduce.hpp"

namespace kiln::kernels::cuda {
namespace {

constexpr unsigned kFullMask = 0xffffffffu;

constexpr std::int64_t kWarpRowLength = 1024;  // rows up to this long: a warp each (<= 32 per lane)
constexpr std::int64_t kTargetBlocks = 1024;   // about 8 blocks per SM on an H100 / H200 (132 SMs)
constexpr std::int64_t kMinRowChunk = 8192;    // a block's chunk of a row: 32 elements per thread or more
constexpr std::int64_t kMaxRowSplits = 256;    // the combining warp reads at most 8 partials per lane
constexpr std::int64_t kTargetThreads = kTargetBlocks * kThreadsPerBlock;
constexpr std::int64_t kMinColumnChunk = 256;  // a thread's chunk of a column
constexpr std::int64_t kMaxColumnSplits = 32;  // the combining thread walks at most this many partials

std::int64_t ceil_div(std::int64_t a, std::int64_t b) { return (a + b - 1) / b; }

// ---- what is accumulated ----------------------------------------------------------------------------
// A policy says how values become accumulators and how two accumulators combine: identity(), from(value,
// r), combine(a, b) (associative and commutative, so any tree gives the same answer up to Sum's rounding),
// shuffle_down(acc, delta) (a warp shuffle of the whole accumulator).

// Sum: a double, for float, double and bfloat16 alike.
template <typename T>
struct SumPolicy {
  using Accumulator = double;
  __device__ Accumulator identity() const { return 0.0; }
  __device__ Accumulator from(T value, std::int64_t) const { return static_cast<double>(value); }
  __device__ Accumulator combine(Accumulator a, Accumulator b) const { return a + b; }
  __device__ Accumulator shuffle_down(Accumulator a, int delta) const {
    return __shfl_down_sync(kFullMask, a, delta);
  }
};

// Max / Min (and argmax): the best value so far and its index r along the reduced axis; index -1 is the
// empty accumulator (a lane past the end of a short row). A plain aggregate, so it can live in __shared__.
template <typename T>
struct Extreme {
  T value;
  std::int64_t index;
};

// The value of the lane delta above, bit for bit. There is no 16-bit shuffle, so a bfloat16 travels as its
// bits in an unsigned (a round trip through float could quiet a signalling NaN).
template <typename T>
__device__ T shuffle_value_down(T value, int delta) {
  if constexpr (std::is_same_v<T, bfloat16>) {
    const unsigned bits = __shfl_down_sync(kFullMask, static_cast<unsigned>(value.bits), delta);
    return bfloat16::from_bits(static_cast<std::uint16_t>(bits));
  } else {
    return __shfl_down_sync(kFullMask, value, delta);
  }
}

template <typename T>
struct ExtremePolicy {
  using Accumulator = Extreme<T>;
  bool is_max;  // Max and argmax; false for Min

  __device__ Accumulator identity() const { return {T(0), -1}; }
  __device__ Accumulator from(T value, std::int64_t r) const { return {value, r}; }
  // The better of a and b: a NaN beats every number, a larger (Max) or smaller (Min) number beats the
  // rest, and between equals (two NaNs, or equal numbers, -0 == +0 included) the lower index wins. That is
  // the minimum under a strict total order, so it does not depend on the order candidates meet in, and
  // it picks what the reference's scan picks: the first NaN, else the first extreme value.
  __device__ Accumulator combine(Accumulator a, Accumulator b) const {
    if (b.index < 0) return a;
    if (a.index < 0) return b;
    const bool a_nan = isnan(a.value), b_nan = isnan(b.value);
    if (a_nan != b_nan) return a_nan ? a : b;
    if (a_nan || a.value == b.value) return a.index < b.index ? a : b;
    const bool a_better = is_max ? a.value > b.value : a.value < b.value;
    return a_better ? a : b;
  }
  __device__ Accumulator shuffle_down(Accumulator a, int delta) const {
    return {shuffle_value_down(a.value, delta), __shfl_down_sync(kFullMask, a.index, delta)};
  }
};

// ---- where accumulators come from and go ------------------------------------------------------------
// A source gives the accumulator for flat offset `offset` of its buffer, whose index along the reduced
// axis is r; a sink stores a finished accumulator at flat position `at` of its buffer.

// The input x itself.
template <class Policy, typename T>
struct ValueSource {
  Policy policy;
  const T* x;
  __device__ typename Policy::Accumulator operator()(std::int64_t offset, std::int64_t r) const {
    return policy.from(x[offset], r);
  }
};

// Partial results of a first pass (their indices already refer to the full reduced axis).
template <class Accumulator>
struct PartialSource {
  const Accumulator* partials;
  __device__ Accumulator operator()(std::int64_t offset, std::int64_t) const { return partials[offset]; }
};

template <class Accumulator>
struct PartialSink {
  Accumulator* partials;
  __device__ void store(std::int64_t at, const Accumulator& acc) const { partials[at] = acc; }
};

// y: the sum rounded to T once, or the extreme value.
template <typename T>
struct ValueSink {
  T* y;
  __device__ void store(std::int64_t at, double sum) const { y[at] = static_cast<T>(sum); }
  __device__ void store(std::int64_t at, const Extreme<T>& best) const { y[at] = best.value; }
};

// argmax's indices.
template <typename T>
struct IndexSink {
  std::int64_t* indices;
  __device__ void store(std::int64_t at, const Extreme<T>& best) const { indices[at] = best.index; }
};

// ---- trees ------------------------------------------------------------------------------------------

// The combination of every lane's acc, in lane 0. The whole warp must call it (the shuffles name all 32
// lanes); lanes with nothing to add hold the identity.
template <class Policy>
__device__ typename Policy::Accumulator warp_combine(const Policy& policy, typename Policy::Accumulator acc) {
#pragma unroll
  for (int delta = kWarpSize / 2; delta > 0; delta /= 2)
    acc = policy.combine(acc, policy.shuffle_down(acc, delta));
  return acc;
}

// The combination of every thread's acc, in thread 0. The whole block must call it. warp_results is the
// block's __shared__ scratch, one slot per warp; the final barrier lets the caller reuse it at once.
template <class Policy>
__device__ typename Policy::Accumulator block_combine(const Policy& policy, typename Policy::Accumulator acc,
                                                      typename Policy::Accumulator* warp_results) {
  const int lane = threadIdx.x % kWarpSize, warp = threadIdx.x / kWarpSize;
  acc = warp_combine(policy, acc);
  if (lane == 0) warp_results[warp] = acc;
  __syncthreads();
  if (warp == 0) acc = warp_combine(policy, lane < kWarpsPerBlock ? warp_results[lane] : policy.identity());
  __syncthreads();
  return acc;
}

// ---- kernels ----------------------------------------------------------------------------------------

// Rows [rows, length] of `source`, one warp per row (grid-stride over rows): lane l combines elements
// l, l + 32, ... and the warp's tree gives the row's result, stored at `row`. `row` is the same for the
// whole warp, so every lane reaches the shuffles together.
template <class Policy, class Source, class Sink>
__global__ void row_warp_kernel(Policy policy, Source source, std::int64_t rows, std::int64_t length,
                                Sink sink) {
  const int lane = threadIdx.x % kWarpSize;
  const std::int64_t warps_in_grid = static_cast<std::int64_t>(gridDim.x) * kWarpsPerBlock;
  for (std::int64_t row = static_cast<std::int64_t>(blockIdx.x) * kWarpsPerBlock + threadIdx.x / kWarpSize;
       row < rows; row += warps_in_grid) {
    typename Policy::Accumulator acc = policy.identity();
    for (std::int64_t r = lane; r < length; r += kWarpSize)
      acc = policy.combine(acc, source(row * length + r, r));
    acc = warp_combine(policy, acc);
    if (lane == 0) sink.store(row, acc);
  }
}

// Rows [rows, length] of `source`, each cut into `splits` chunks of `chunk` elements; one block per
// (row, chunk) unit (grid-stride over units): thread t combines the chunk's elements t, t + 256, ... and
// the block's tree gives the unit's result, stored at unit = row * splits + s (the row itself when
// splits == 1). `unit` is the same for the whole block, so every thread reaches the barriers together.
template <class Policy, class Source, class Sink>
__global__ void row_block_kernel(Policy policy, Source source, std::int64_t rows, std::int64_t length,
                                 std::int64_t splits, std::int64_t chunk, Sink sink) {
  __shared__ typename Policy::Accumulator warp_results[kWarpsPerBlock];
  for (std::int64_t unit = blockIdx.x; unit < rows * splits; unit += gridDim.x) {
    const std::int64_t row = unit / splits, begin = unit % splits * chunk;
    const std::int64_t end = std::min(length, begin + chunk);
    typename Policy::Accumulator acc = policy.identity();
    for (std::int64_t r = begin + threadIdx.x; r < end; r += kThreadsPerBlock)
      acc = policy.combine(acc, source(row * length + r, r));
    acc = block_combine(policy, acc, warp_results);
    if (threadIdx.x == 0) sink.store(unit, acc);
  }
}

// Columns of `source` [outer, length, inner], the length axis cut into `splits` chunks of `chunk`; one
// thread per (o, s, i) (grid-stride), walking its chunk of the column in order. Consecutive threads take
// consecutive i, so each step of a warp reads consecutive addresses. The result goes to
// (o * splits + s) * inner + i: y [outer, inner] when splits == 1, else partials [outer, splits, inner].
template <class Policy, class Source, class Sink>
__global__ void column_kernel(Policy policy, Source source, std::int64_t outer, std::int64_t length,
                              std::int64_t inner, std::int64_t splits, std::int64_t chunk, Sink sink) {
  const std::int64_t count = outer * splits * inner;
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t t = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; t < count;
       t += stride) {
    const std::int64_t i = t % inner, s = t / inner % splits, o = t / inner / splits;
    const std::int64_t begin = s * chunk, end = std::min(length, begin + chunk);
    typename Policy::Accumulator acc = policy.identity();
#pragma unroll 4
    for (std::int64_t r = begin; r < end; ++r)
      acc = policy.combine(acc, source((o * length + r) * inner + i, r));
    sink.store(t, acc);
  }
}

// ---- the two shapes of work -------------------------------------------------------------------------

// Rows: x [outer, reduced] (inner == 1), reduced >= 32.
template <typename T, class Policy, class Sink>
void reduce_rows(Device device, const Policy& policy, const ReduceGeometry& g, const T* x, Sink sink,
                 const char* name) {
  using Accumulator = typename Policy::Accumulator;
  const ValueSource<Policy, T> source{policy, x};
  if (g.reduced <= kWarpRowLength) {
    launch(name, row_warp_kernel<Policy, ValueSource<Policy, T>, Sink>, grid_blocks(g.outer, kWarpsPerBlock),
           kThreadsPerBlock, policy, source, g.outer, g.reduced, sink);
    return;
  }
  const std::int64_t splits =
      std::clamp(std::min(ceil_div(kTargetBlocks, g.outer), ceil_div(g.reduced, kMinRowChunk)),
                 std::int64_t{1}, kMaxRowSplits);
  const std::int64_t chunk = ceil_div(g.reduced, splits);
  if (splits == 1) {
    launch(name, row_block_kernel<Policy, ValueSource<Policy, T>, Sink>, grid_blocks(g.outer, 1),
           kThreadsPerBlock, policy, source, g.outer, g.reduced, 1, chunk, sink);
    return;
  }
  // Partials [outer, splits]. Freeing the scratch when this function returns, before the kernels have
  // run, is safe: every kernel runs on the compute stream, so whatever reuses the block is ordered after.
  const auto scratch =
      Storage::allocate(static_cast<std::size_t>(g.outer * splits) * sizeof(Accumulator), device);
  auto* partials = static_cast<Accumulator*>(scratch->data());
  launch(name, row_block_kernel<Policy, ValueSource<Policy, T>, PartialSink<Accumulator>>,
         grid_blocks(g.outer * splits, 1), kThreadsPerBlock, policy, source, g.outer, g.reduced, splits,
         chunk, PartialSink<Accumulator>{partials});
  launch(name, row_warp_kernel<Policy, PartialSource<Accumulator>, Sink>,
         grid_blocks(g.outer, kWarpsPerBlock), kThreadsPerBlock, policy, PartialSource<Accumulator>{partials},
         g.outer, splits, sink);
}

// Columns: x [outer, reduced, inner].
template <typename T, class Policy, class Sink>
void reduce_columns(Device device, const Policy& policy, const ReduceGeometry& g, const T* x, Sink sink,
                    const char* name) {
  using Accumulator = typename Policy::Accumulator;
  const ValueSource<Policy, T> source{policy, x};
  const std::int64_t outputs = g.outer * g.inner;
  const std::int64_t splits =
      std::clamp(std::min(ceil_div(kTargetThreads, outputs), ceil_div(g.reduced, kMinColumnChunk)),
                 std::int64_t{1}, kMaxColumnSplits);
  const std::int64_t chunk = ceil_div(g.reduced, splits);
  if (splits == 1) {
    launch(name, column_kernel<Policy, ValueSource<Policy, T>, Sink>, grid_blocks(outputs, kThreadsPerBlock),
           kThreadsPerBlock, policy, source, g.outer, g.reduced, g.inner, 1, g.reduced, sink);
    return;
  }
  // Partials [outer, splits, inner]; freed early as in reduce_rows (same stream, so safe).
  const auto scratch =
      Storage::allocate(static_cast<std::size_t>(outputs * splits) * sizeof(Accumulator), device);
  auto* partials = static_cast<Accumulator*>(scratch->data());
  launch(name, column_kernel<Policy, ValueSource<Policy, T>, PartialSink<Accumulator>>,
         grid_blocks(outputs * splits, kThreadsPerBlock), kThreadsPerBlock, policy, source, g.outer,
         g.reduced, g.inner, splits, chunk, PartialSink<Accumulator>{partials});
  launch(name, column_kernel<Policy, PartialSource<Accumulator>, Sink>,
         grid_blocks(outputs, kThreadsPerBlock), kThreadsPerBlock, policy,
         PartialSource<Accumulator>{partials}, g.outer, splits, g.inner, 1, splits, sink);
}

template <typename T, class Policy, class Sink>
void reduce_any(Device device, const Policy& policy, const ReduceGeometry& g, const T* x, Sink sink,
                const char* name) {
  if (g.outer * g.inner == 0) return;  // no outputs
  if (g.inner == 1 && g.reduced >= kWarpSize) return reduce_rows(device, policy, g, x, sink, name);
  reduce_columns(device, policy, g, x, sink, name);
}

}  // namespace

template <typename T>
void reduce(Device device, ReduceOp op, const ReduceGeometry& g, const T* x, T* y) {
  if (op == ReduceOp::Sum) return reduce_any(device, SumPolicy<T>{}, g, x, ValueSink<T>{y}, "reduce (sum)");
  const char* name = op == ReduceOp::Max ? "reduce (max)" : "reduce (min)";
  // The reference reads x[o, 0, i] regardless; here an empty axis is refused rather than read past.
  KILN_CHECK(g.reduced > 0 || g.outer * g.inner == 0, name, ": the reduced axis is empty");
  reduce_any(device, ExtremePolicy<T>{op == ReduceOp::Max}, g, x, ValueSink<T>{y}, name);
}

template <typename T>
void argmax(Device device, const ReduceGeometry& g, const T* x, std::int64_t* indices) {
  KILN_CHECK(g.reduced > 0 || g.outer * g.inner == 0, "argmax: the reduced axis is empty");
  reduce_any(device, ExtremePolicy<T>{true}, g, x, IndexSink<T>{indices}, "argmax");
}

template void reduce<float>(Device, ReduceOp, const ReduceGeometry&, const float*, float*);
template void reduce<double>(Device, ReduceOp, const ReduceGeometry&, const double*, double*);
template void reduce<bfloat16>(Device, ReduceOp, const ReduceGeometry&, const bfloat16*, bfloat16*);
template void argmax<float>(Device, const ReduceGeometry&, const float*, std::int64_t*);
template void argmax<double>(Device, const ReduceGeometry&, const double*, std::int64_t*);
template void argmax<bfloat16>(Device, const ReduceGeometry&, const bfloat16*, std::int64_t*);

}  // namespace kiln::kernels::cuda
