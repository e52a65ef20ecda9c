// GEMM speed in GFLOP/s and % of this machine's measured FP32 peak (bench/support/peak.hpp), on the
// shapes kiln runs: squares 128..2048, the ResNet-20 convolutions at batch 128 as im2col + GEMM, small
// Linear layers, and MobileNet's 1x1 layers with the images' columns in blocks where they lie. Each shape at
// 1 and 2 threads, at the dispatch level KILN_CPU_LEVEL allows; tiny shapes also against the reference
// kernel, which shows where (if anywhere) the simple loop wins.
//
//   build/gemm_bench --benchmark_filter=square       (or conv_, linear_, blocked_columns, bf16_pointwise)
#include <benchmark/benchmark.h>

#include <cstdint>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "bench/support/aligned_floats.hpp"
#include "bench/support/peak.hpp"
#include "core/bfloat16.hpp"
#include "kernels/cpu_level.hpp"
#include "kernels/gemm/gemm.hpp"
#include "kernels/parallel.hpp"

namespace {

namespace kernels = kiln::kernels;

// count floats uniform in [-1, 1].
kiln::bench::AlignedFloats random_floats(std::int64_t count, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> uniform(-1.0f, 1.0f);
  kiln::bench::AlignedFloats floats(static_cast<std::size_t>(count));
  for (float& x : floats) x = uniform(rng);
  return floats;
}

// Times `product`, one GEMM of geometry g, on `threads` threads, with its GFLOP/s and % of this machine's
// FP32 peak as counters.
template <typename Product>
void time_product(benchmark::State& state, const kernels::GemmGeometry& g, int threads,
                  const Product& product) {
  const double peak = kiln::bench::fp32_peak_gflops(threads);
  kernels::set_compute_threads(threads);
  for (auto _ : state) {
    product();
    benchmark::ClobberMemory();
  }
  kernels::set_compute_threads(0);
  const double gflop = 2.0 * static_cast<double>(g.m * g.n * g.k) * 1e-9;
  state.counters["GFLOP"] = benchmark::Counter(gflop, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["pct_of_peak"] =
      benchmark::Counter(gflop * 100.0 / peak, benchmark::Counter::kIsIterationInvariantRate);
}

// Times C = op(A) op(B) of geometry g: the fast dispatch, or the reference.
void time_gemm(benchmark::State& state, const kernels::GemmGeometry& g, int threads, bool use_reference,
               const float* a, const float* b, float* c) {
  time_product(state, g, threads, [&] {
    if (use_reference) {
      kernels::reference::gemm<float>(g, 1.0f, a, b, 0.0f, c);
    } else {
      kernels::gemm<float>(kiln::Device::cpu(), g, 1.0f, a, b, 0.0f, c);
    }
    benchmark::DoNotOptimize(c);
  });
}

// C[m, n] = op(A) op(B), every matrix dense.
kernels::GemmGeometry dense_geometry(std::int64_t m, std::int64_t n, std::int64_t k, bool trans_a,
                                     bool trans_b) {
  return {.m = m,
          .n = n,
          .k = k,
          .trans_a = trans_a,
          .trans_b = trans_b,
          .lda = trans_a ? m : k,
          .ldb = trans_b ? k : n,
          .ldc = n};
}

// Arguments: m, n, k, trans_a, trans_b, threads, use_reference.
void run_gemm(benchmark::State& state) {
  const std::int64_t m = state.range(0), n = state.range(1), k = state.range(2);
  const bool trans_a = state.range(3) != 0, trans_b = state.range(4) != 0;
  const int threads = static_cast<int>(state.range(5));
  const bool use_reference = state.range(6) != 0;
  const kernels::GemmGeometry g = dense_geometry(m, n, k, trans_a, trans_b);
  const kiln::bench::AlignedFloats a = random_floats(m * k, 1), b = random_floats(k * n, 2);
  kiln::bench::AlignedFloats c(static_cast<std::size_t>(m * n), 0.0f);
  time_gemm(state, g, threads, use_reference, a.data(), b.data(), c.data());
  state.SetLabel(use_reference ? "reference" : std::string(kernels::cpu_level_name(kernels::cpu_level())));
}

void name_arguments(benchmark::internal::Benchmark* bench) {
  bench->ArgNames({"m", "n", "k", "ta", "tb", "thr", "ref"})->UseRealTime();
}

void square(benchmark::internal::Benchmark* bench) {
  name_arguments(bench);
  for (const int threads : {1, 2}) {
    for (const std::int64_t size : {128, 256, 512, 1024, 2048})
      bench->Args({size, size, size, 0, 0, threads, 0});
  }
}

// ResNet-20, batch 128, per image. Forward C[Co, OH*OW] = W[Co, Ci*9] col[Ci*9, OH*OW]; backward-data
// col = W^T gy (trans_a); backward-weight gW = gy col^T (trans_b) over a chunk of 8 images (K = 8*OH*OW).
void conv_forward(benchmark::internal::Benchmark* bench) {
  name_arguments(bench);
  for (const int threads : {1, 2}) {
    for (const auto& [co, k, n] :
         {std::tuple{16, 144, 1024}, {32, 288, 256}, {64, 576, 64}, {16, 27, 1024}}) {
      bench->Args({co, n, k, 0, 0, threads, 0});
    }
  }
}
void conv_backward_data(benchmark::internal::Benchmark* bench) {
  name_arguments(bench);
  for (const int threads : {1, 2}) {
    for (const auto& [m, k, n] : {std::tuple{144, 16, 1024}, {288, 32, 256}, {576, 64, 64}}) {
      bench->Args({m, n, k, 1, 0, threads, 0});
    }
  }
}
void conv_backward_weight(benchmark::internal::Benchmark* bench) {
  name_arguments(bench);
  for (const int threads : {1, 2}) {
    for (const auto& [m, n, k] : {std::tuple{16, 144, 8 * 1024}, {32, 288, 8 * 256}, {64, 576, 8 * 64}}) {
      bench->Args({m, n, k, 0, 1, threads, 0});
    }
  }
}
// Linear at batch 128: forward y[B, out] = x[B, in] W^T[in, out] (trans_b), backward-weight
// gW[out, in] = gy^T[out, B] x[B, in] (trans_a); on one thread, fast and reference.
void linear(benchmark::internal::Benchmark* bench) {
  name_arguments(bench);
  for (const int use_reference : {0, 1}) {
    for (const auto& [m, n, k, ta, tb] : {std::tuple{128, 10, 64, 0, 1},
                                          {10, 64, 128, 1, 0},
                                          {128, 64, 10, 0, 0},
                                          {128, 128, 256, 0, 1},
                                          {8, 8, 8, 0, 0},
                                          {1, 1, 1, 0, 0}}) {
      bench->Args({m, n, k, ta, tb, 1, use_reference});
    }
  }
}

// A chunk of NCHW images as the GEMM takes them in a 1x1 convolution (GemmGeometry::column_block): C
// [Co, images * P] = W [Co, Ci] x X [Ci, images * P], each image's P columns where it lies in the batch,
// against the same product with its columns side by side (blocked = 0), which is what blocks must match.
// Arguments: co, ci, P, images, blocked, threads.
void run_blocked_columns(benchmark::State& state) {
  const std::int64_t co = state.range(0), ci = state.range(1), plane = state.range(2),
                     images = state.range(3);
  const bool blocked = state.range(4) != 0;
  const int threads = static_cast<int>(state.range(5));
  const std::int64_t n = images * plane;
  kernels::GemmGeometry g{.m = co, .n = n, .k = ci, .lda = ci, .ldb = n, .ldc = n};
  if (blocked) {
    g.ldb = g.ldc = plane;
    g.column_block = plane;
    g.b_column_block_stride = ci * plane;
    g.c_column_block_stride = co * plane;
  }
  const kiln::bench::AlignedFloats a = random_floats(co * ci, 1), b = random_floats(ci * n, 2);
  kiln::bench::AlignedFloats c(static_cast<std::size_t>(co * n), 0.0f);
  time_gemm(state, g, threads, false, a.data(), b.data(), c.data());
  state.SetLabel(blocked ? "blocks" : "side by side");
}

// MobileNet's pointwise chunks at batch 128: 128 -> 128 at 16x16 (4 images), 512 -> 512 at 4x4 (64),
// 1024 -> 1024 at 2x2 (the whole batch, 512 columns).
void blocked_columns(benchmark::internal::Benchmark* bench) {
  bench->ArgNames({"co", "ci", "P", "images", "blocked", "thr"})->UseRealTime();
  for (const int threads : {1, 2}) {
    for (const auto& [channels, plane, images] : {std::tuple{128, 256, 4}, {512, 16, 64}, {1024, 4, 128}}) {
      for (const int blocked : {0, 1}) bench->Args({channels, channels, plane, images, blocked, threads});
    }
  }
}

// bfloat16 A, B and C through dispatch: the AVX512-BF16 kernel where the CPU has it, else (or with
// KILN_AVX512_BF16=0) the operands widened to float and C rounded. The shapes of MobileNet's channels-last
// pointwise layers at batch 128, rows = images x pixels: forward y[rows, Co] = x[rows, Ci] w^T (trans_b),
// backward-data gx[rows, Ci] = gy[rows, Co] w, and backward-weight gw[Co, Ci] = gy^T x (trans_a) into float
// sums, as the convolution rounds them once at the end (AVX512-BF16 only: the float path's weight gradient
// goes in chunks, conv2d_bench measures it). GFLOP/s, and % of the FP32 peak, which the pair
// dot products can exceed up to twice. Arguments: m, n, k, trans_a, trans_b, threads, float_output.
void run_bf16_gemm(benchmark::State& state) {
  const std::int64_t m = state.range(0), n = state.range(1), k = state.range(2);
  const bool trans_a = state.range(3) != 0, trans_b = state.range(4) != 0, float_output = state.range(6) != 0;
  const int threads = static_cast<int>(state.range(5));
  const kernels::GemmGeometry g = dense_geometry(m, n, k, trans_a, trans_b);
  const kiln::bench::AlignedFloats a_floats = random_floats(m * k, 1), b_floats = random_floats(k * n, 2);
  const std::vector<kiln::bfloat16> a(a_floats.begin(), a_floats.end()), b(b_floats.begin(), b_floats.end());
  std::vector<kiln::bfloat16> c(static_cast<std::size_t>(m * n));
  kiln::bench::AlignedFloats sums(static_cast<std::size_t>(m * n), 0.0f);
  const bool dot_products = kernels::avx512_bf16_usable();
  if (float_output && !dot_products) {
    state.SkipWithError("float sums from bfloat16 need AVX512-BF16");
    return;
  }
  time_product(state, g, threads, [&] {
    if (float_output) {
      kernels::avx512_bf16::gemm(g, 1.0f, a.data(), b.data(), 0.0f, sums.data());
      benchmark::DoNotOptimize(sums.data());
    } else {
      kernels::gemm<kiln::bfloat16>(kiln::Device::cpu(), g, 1.0f, a.data(), b.data(), 0.0f, c.data());
      benchmark::DoNotOptimize(c.data());
    }
  });
  state.SetLabel(dot_products ? "avx512_bf16" : "widened to float");
}

void bf16_pointwise(benchmark::internal::Benchmark* bench) {
  bench->ArgNames({"m", "n", "k", "ta", "tb", "thr", "float_c"})->UseRealTime();
  for (const int threads : {1, 2}) {
    for (const auto& [rows, ci, co] : {std::tuple{128 * 1024, 32, 64},
                                       {128 * 256, 128, 128},
                                       {128 * 16, 512, 512},
                                       {128 * 4, 1024, 1024}}) {
      bench->Args({rows, co, ci, 0, 1, threads, 0});  // forward
      bench->Args({rows, ci, co, 0, 0, threads, 0});  // backward-data
      bench->Args({co, ci, rows, 1, 0, threads, 1});  // backward-weight
    }
  }
}

}  // namespace

BENCHMARK(run_bf16_gemm)->Name("bf16_pointwise")->Apply(bf16_pointwise);
BENCHMARK(run_blocked_columns)->Name("blocked_columns")->Apply(blocked_columns);
BENCHMARK(run_gemm)->Name("square")->Apply(square);
BENCHMARK(run_gemm)->Name("conv_forward")->Apply(conv_forward);
BENCHMARK(run_gemm)->Name("conv_backward_data")->Apply(conv_backward_data);
BENCHMARK(run_gemm)->Name("conv_backward_weight")->Apply(conv_backward_weight);
BENCHMARK(run_gemm)->Name("linear")->Apply(linear);

BENCHMARK_MAIN();
