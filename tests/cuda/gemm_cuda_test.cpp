// Tests of GEMM on a CUDA device (kernels/gemm/cuda_gemm.cu, through cuBLAS) against the reference GEMM:
// every transpose combination, odd sizes, leading dimensions wider than a row, alpha / beta cases, beta == 0
// over a C full of NaN, k == 0, the strided-batched form, and raw::matmul on CUDA tensors against the CPU;
// float, double and bfloat16 (plus the bfloat16-in, float-out forms). Each test skips (with a message) where
// there is no GPU.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

#include "core/bfloat16.hpp"
#include "core/error.hpp"
#include "core/raw.hpp"
#include "core/tensor.hpp"
#include "kernels/gemm/gemm.hpp"
#include "tests/support/cuda_testing.hpp"
#include "tests/support/fast_kernel_testing.hpp"
#include "tests/support/gemm_testing.hpp"
#include "tests/support/matches_reference.hpp"

namespace cuda_gemm_cuda_test {

namespace {

using namespace kiln;
using kernels::GemmGeometry;
using testing::a_elements;
using testing::b_elements;
using testing::c_elements;
using testing::matches_reference;
using testing::padded_gemm_geometry;
using testing::random_values;
using testing::Tolerance;

// A dot product of K terms in [-1, 1) rounds each of its K additions, by about 2^-24 (float) or 2^-53
// (double) of a partial sum that grows like sqrt(K): some 1.5e-8 * K in all for float. The tolerance allows
// ten times that (at least the usual 1e-5): a wrong index or a missed term is off by the size of a term.
//
// bfloat16: cuBLAS sums the (exact) products in float, with that float error, and rounds once to bfloat16,
// which may land one bfloat16 step (at most 2^-7 of the value) from the reference's rounding of the exact
// sum.
template <typename T>
Tolerance sum_tolerance(std::int64_t terms) {
  if constexpr (std::is_same_v<T, bfloat16>) {
    return {std::max(1e-5, 2e-7 * static_cast<double>(terms)), 1.0 / 128};
  } else if constexpr (std::is_same_v<T, float>) {
    return {std::max(1e-5, 2e-7 * static_cast<double>(terms)), 1e-4};
  } else {
    return {std::max(1e-12, 4e-16 * static_cast<double>(terms)), 1e-10};
  }
}

std::string describe(const GemmGeometry& g) {
  return "m=" + std::to_string(g.m) + " n=" + std::to_string(g.n) + " k=" + std::to_string(g.k) +
         (g.trans_a ? " A^T" : "") + (g.trans_b ? " B^T" : "") + " lda=" + std::to_string(g.lda) +
         " ldb=" + std::to_string(g.ldb) + " ldc=" + std::to_string(g.ldc);
}

// A quiet NaN of T (std::numeric_limits has none for bfloat16).
template <typename T>
T quiet_nan() {
  return T(std::numeric_limits<float>::quiet_NaN());
}

// Runs the dispatch gemm on cuda:0 and the reference on the host over the same A, B and C (C random, or
// all NaN when c_nan), and compares the whole C buffer: the elements between ldc and n must come back as they
// went in (neither kernel may touch them).
template <typename T>
void check_gemm(const GemmGeometry& g, opmath_t<T> alpha, opmath_t<T> beta, bool c_nan, unsigned seed) {
  INFO(describe(g), " alpha=", alpha, " beta=", beta, c_nan ? " C=NaN" : "");
  const std::vector<T> a = random_values<T>(a_elements(g), seed);
  const std::vector<T> b = random_values<T>(b_elements(g), seed + 1);
  std::vector<T> c = random_values<T>(c_elements(g), seed + 2);
  if (c_nan) c.assign(c.size(), quiet_nan<T>());

  std::vector<T> expected = c;
  kernels::reference::gemm(g, alpha, a.data(), b.data(), beta, expected.data());

  const Tensor a_gpu = testing::to_gpu(a), b_gpu = testing::to_gpu(b), c_gpu = testing::to_gpu(c);
  kernels::gemm(Device::cuda(), g, alpha, a_gpu.data<T>(), b_gpu.data<T>(), beta, c_gpu.data<T>());
  const std::vector<T> actual = testing::to_host<T>(c_gpu);

  const auto report = matches_reference(actual.data(), expected.data(), c_elements(g), sum_tolerance<T>(g.k));
  CHECK_MESSAGE(report.ok, report.message);
}

template <typename T>
void check_every_transpose_and_size() {
  const std::int64_t sizes[][3] = {{1, 1, 1},   {7, 33, 129}, {129, 7, 33},   {33, 129, 1},
                                   {1, 129, 7}, {7, 1, 33},   {129, 129, 129}};
  unsigned seed = 1;
  for (const auto& size : sizes) {
    for (const bool trans_a : {false, true}) {
      for (const bool trans_b : {false, true}) {
        for (const std::int64_t extra : {0, 3}) {
          const GemmGeometry g = padded_gemm_geometry(size[0], size[1], size[2], trans_a, trans_b, extra);
          check_gemm<T>(g, 1, 0, false, seed += 3);
          check_gemm<T>(g, 0.5, -2, false, seed += 3);
          check_gemm<T>(g, -1.5, 1, false, seed += 3);
          check_gemm<T>(g, 2, 0, true, seed += 3);  // beta == 0 must not read the NaNs in C
        }
      }
    }
  }
}

TEST_CASE("cuda: gemm matches the reference for every transpose, odd sizes, wide ld, alpha and beta") {
  if (!testing::have_gpu()) return;
  SUBCASE("float32") { check_every_transpose_and_size<float>(); }
  SUBCASE("float64") { check_every_transpose_and_size<double>(); }
  SUBCASE("bfloat16") { check_every_transpose_and_size<bfloat16>(); }
}

TEST_CASE("cuda: gemm with k == 0 scales C by beta, and writes zeros over NaN when beta == 0") {
  if (!testing::have_gpu()) return;
  for (const bool trans_a : {false, true}) {
    const GemmGeometry g = padded_gemm_geometry(7, 33, 0, trans_a, false, 2);
    check_gemm<float>(g, 1.0f, 0.5f, false, 11);
    check_gemm<float>(g, 1.0f, 0.0f, true, 12);
    check_gemm<double>(g, 2.0, -1.0, false, 13);
    check_gemm<bfloat16>(g, 1.0f, 0.5f, false, 14);
    check_gemm<bfloat16>(g, 1.0f, 0.0f, true, 15);
  }
}

TEST_CASE("cuda: gemm ignores the ld of a one-row matrix and refuses overlapping rows") {
  if (!testing::have_gpu()) return;
  // m == 1: A [1, K] and C [1, N] have one stored row, so lda and ldc are never used (cuBLAS would refuse
  // them as they are; the mapping replaces them).
  const GemmGeometry one_row{.m = 1, .n = 33, .k = 7, .lda = 1, .ldb = 33, .ldc = 1};
  check_gemm<float>(one_row, 1.0f, 0.0f, false, 21);
  check_gemm<double>(one_row, 1.0, 1.0, false, 22);

  // Two stored rows of A [2, 7] with lda 3 would overlap: an error naming gemm, never a crash.
  const GemmGeometry overlapping{.m = 2, .n = 5, .k = 7, .lda = 3, .ldb = 5, .ldc = 5};
  const Tensor a = testing::empty_gpu<float>(64), b = testing::empty_gpu<float>(64),
               c = testing::empty_gpu<float>(64);
  CHECK_THROWS_WITH_AS(kernels::gemm(Device::cuda(), overlapping, 1.0f, a.data<float>(), b.data<float>(),
                                     0.0f, c.data<float>()),
                       doctest::Contains("gemm on CUDA: lda"), Error);
}

#ifdef KILN_WITH_CUDA  // gemm_strided_batched exists only in a CUDA build
// gemm_strided_batched against the reference run once per batch entry, with A shared (stride 0) and B and C
// strided by more than a matrix (the gaps must come back untouched).
template <typename T>
void check_strided_batched(bool trans_a, bool trans_b, opmath_t<T> beta, bool c_nan) {
  const GemmGeometry g = padded_gemm_geometry(33, 7, 17, trans_a, trans_b, 1);
  const std::int64_t batch = 5, stride_a = 0, stride_b = b_elements(g) + 5, stride_c = c_elements(g) + 3;
  INFO(describe(g), " batch=", batch, " beta=", beta, c_nan ? " C=NaN" : "");
  const std::vector<T> a = random_values<T>(a_elements(g), 31);
  const std::vector<T> b = random_values<T>(batch * stride_b, 32);
  std::vector<T> c = random_values<T>(batch * stride_c, 33);
  if (c_nan) c.assign(c.size(), quiet_nan<T>());

  std::vector<T> expected = c;
  for (std::int64_t i = 0; i < batch; ++i) {
    kernels::reference::gemm(g, 0.75, a.data() + i * stride_a, b.data() + i * stride_b, beta,
                             expected.data() + i * stride_c);
  }
  const Tensor a_gpu = testing::to_gpu(a), b_gpu = testing::to_gpu(b), c_gpu = testing::to_gpu(c);
  kernels::cuda::gemm_strided_batched(g, batch, stride_a, stride_b, stride_c, 0.75, a_gpu.data<T>(),
                                      b_gpu.data<T>(), beta, c_gpu.data<T>());
  const std::vector<T> actual = testing::to_host<T>(c_gpu);
  const auto report =
      matches_reference(actual.data(), expected.data(), batch * stride_c, sum_tolerance<T>(g.k));
  CHECK_MESSAGE(report.ok, report.message);
}

TEST_CASE("cuda: strided-batched gemm matches the reference per batch entry, with a shared A") {
  if (!testing::have_gpu()) return;
  for (const bool trans_a : {false, true}) {
    for (const bool trans_b : {false, true}) {
      check_strided_batched<float>(trans_a, trans_b, 0.0f, true);
      check_strided_batched<float>(trans_a, trans_b, 1.0f, false);
      check_strided_batched<double>(trans_a, trans_b, -0.5, false);
      check_strided_batched<bfloat16>(trans_a, trans_b, 0.0f, true);
      check_strided_batched<bfloat16>(trans_a, trans_b, -0.5f, false);
    }
  }
}

// The bfloat16-in, float-out forms against the float reference on the same (widened) values: C float, so
// only the float summation error remains (and beta = 1 adds to C in float, as the convolution's weight
// gradient does across chunks). One plain GEMM and one strided-batched with a shared A.
void check_into_float(bool trans_a, bool trans_b, float beta, bool c_nan) {
  const GemmGeometry g = padded_gemm_geometry(33, 7, 129, trans_a, trans_b, 2);
  const std::int64_t batch = 3, stride_b = b_elements(g) + 5, stride_c = c_elements(g) + 3;
  INFO(describe(g), " beta=", beta, c_nan ? " C=NaN" : "");
  const std::vector<bfloat16> a = random_values<bfloat16>(a_elements(g), 61);
  const std::vector<bfloat16> b = random_values<bfloat16>(batch * stride_b, 62);
  std::vector<float> c = random_values<float>(batch * stride_c, 63);
  if (c_nan) c.assign(c.size(), quiet_nan<float>());
  const std::vector<float> a_float(a.begin(), a.end()), b_float(b.begin(), b.end());

  std::vector<float> expected = c;
  for (std::int64_t i = 0; i < batch; ++i) {
    kernels::reference::gemm(g, 1.5f, a_float.data(), b_float.data() + i * stride_b, beta,
                             expected.data() + i * stride_c);
  }
  const Tensor a_gpu = testing::to_gpu(a), b_gpu = testing::to_gpu(b);
  const Tensor c_batched = testing::to_gpu(c), c_single = testing::to_gpu(c);
  kernels::cuda::gemm_strided_batched_into_float(g, batch, 0, stride_b, stride_c, 1.5f,
                                                 a_gpu.data<bfloat16>(), b_gpu.data<bfloat16>(), beta,
                                                 c_batched.data<float>());
  kernels::cuda::gemm_into_float(g, 1.5f, a_gpu.data<bfloat16>(), b_gpu.data<bfloat16>(), beta,
                                 c_single.data<float>());
  const std::vector<float> batched = testing::to_host<float>(c_batched),
                           single = testing::to_host<float>(c_single);
  auto report =
      matches_reference(batched.data(), expected.data(), batch * stride_c, sum_tolerance<float>(g.k));
  CHECK_MESSAGE(report.ok, "strided-batched: ", report.message);
  // The single GEMM wrote only the first matrix; the rest of its buffer must be c as it went in.
  std::vector<float> expected_single = c;
  std::copy(expected.begin(), expected.begin() + stride_c, expected_single.begin());
  report =
      matches_reference(single.data(), expected_single.data(), batch * stride_c, sum_tolerance<float>(g.k));
  CHECK_MESSAGE(report.ok, "single: ", report.message);
}

TEST_CASE("cuda: bfloat16 gemm into a float C matches the float reference on the same values") {
  if (!testing::have_gpu()) return;
  for (const bool trans_a : {false, true}) {
    for (const bool trans_b : {false, true}) {
      check_into_float(trans_a, trans_b, 0.0f, true);
      check_into_float(trans_a, trans_b, 1.0f, false);
    }
  }
}
#endif

TEST_CASE("cuda: gemm gives the same bits on every run") {
  if (!testing::have_gpu()) return;
  const GemmGeometry g = padded_gemm_geometry(129, 129, 1029, false, true, 0);
  const std::vector<float> a = random_values<float>(a_elements(g), 41),
                           b = random_values<float>(b_elements(g), 42);
  const Tensor a_gpu = testing::to_gpu(a), b_gpu = testing::to_gpu(b);
  std::vector<std::vector<float>> runs;
  for (int run = 0; run < 2; ++run) {
    const Tensor c_gpu = testing::empty_gpu<float>(c_elements(g));
    kernels::gemm(Device::cuda(), g, 1.0f, a_gpu.data<float>(), b_gpu.data<float>(), 0.0f,
                  c_gpu.data<float>());
    runs.push_back(testing::to_host<float>(c_gpu));
  }
  CHECK(runs[0] == runs[1]);
}

// raw::matmul on CUDA tensors (outputs allocated on the inputs' device) against the same call on the CPU:
// a broadcast batch of [2, 33, 17] @ [17, 9], and A as a transposed view of a [17, 33] tensor made on the
// device, which matmul hands to GEMM as trans_a with no copy.
// bfloat16: both sides round once from their own float sums, so they may lie one bfloat16 step either side
// of the exact value: twice sum_tolerance's relative part.
template <typename T>
Tolerance cross_device_tolerance(std::int64_t terms) {
  Tolerance tolerance = sum_tolerance<T>(terms);
  if constexpr (std::is_same_v<T, bfloat16>) tolerance.rtol *= 2;
  return tolerance;
}

template <typename T>
void check_matmul_cases() {
  const Tensor a = Tensor::from_vector(random_values<T>(2 * 33 * 17, 51), Shape{2, 33, 17});
  const Tensor b = Tensor::from_vector(random_values<T>(17 * 9, 52), Shape{17, 9});
  const Tensor a_stored_transposed = Tensor::from_vector(random_values<T>(17 * 33, 53), Shape{17, 33});
  const Tensor b_gpu = b.to(Device::cuda());

  const Tensor batched = raw::matmul(a.to(Device::cuda()), b_gpu);
  CHECK(batched.device() == Device::cuda());
  CHECK(batched.dtype() == dtype_of_v<T>);
  auto report =
      matches_reference(batched.to(Device::cpu()), raw::matmul(a, b), cross_device_tolerance<T>(17));
  CHECK_MESSAGE(report.ok, report.message);

  const Tensor transposed = raw::matmul(a_stored_transposed.to(Device::cuda()).transpose(0, 1), b_gpu);
  report =
      matches_reference(transposed.to(Device::cpu()), raw::matmul(a_stored_transposed.transpose(0, 1), b),
                        cross_device_tolerance<T>(17));
  CHECK_MESSAGE(report.ok, report.message);
}

TEST_CASE("cuda: raw::matmul on CUDA tensors matches the CPU") {
  if (!testing::have_gpu()) return;
  SUBCASE("float32") { check_matmul_cases<float>(); }
  SUBCASE("float64") { check_matmul_cases<double>(); }
  SUBCASE("bfloat16") { check_matmul_cases<bfloat16>(); }
}

}  // namespace

}  // namespace cuda_gemm_cuda_test
