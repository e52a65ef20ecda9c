// gemm on a CUDA device (gemm.hpp) through cuBLAS: the row-major BLAS-convention GEMM of gemm.hpp mapped
// onto cuBLAS's column-major one, plus the strided-batched form the convolutions use.
//
// The mapping. cuBLAS reads a row-major [R, C] matrix with row stride ld as the column-major [C, R] matrix
// with leading dimension ld: its transpose, for free. So the row-major C [M, N] is the column-major C^T
// [N, M], and
//
//   C^T = (op(A) op(B))^T = op(B)^T op(A)^T
//
// is one column-major GEMM with the operands swapped (B first), m and n swapped (cuBLAS's m = N, n = M), and
// each operand's own flag kept: B stored [K, N] (not transposed) already reads as op(B)^T [N, K]
// (CUBLAS_OP_N); B stored [N, K] (trans_b) reads as op(B) and needs CUBLAS_OP_T. Likewise A.
//
// Numerics: cuBLAS's default math mode (never changed here) computes float GEMMs in pure FP32, without TF32
// tensor cores: the result differs from the reference (a double sum, rounded once) by the rounding of a
// float sum of K products, in cuBLAS's order. bfloat16 goes through cublasGemmEx / cublasGemmStridedBatchedEx
// with CUDA_R_16BF operands and CUBLAS_COMPUTE_32F: each product of two bfloat16 values is exact in float,
// the sum is kept in float (tensor cores may add in another order), and cuBLAS writes it to a float C
// (CUDA_R_32F); alpha and beta are float. A bfloat16 C is that float C in scratch, rounded to bfloat16 once,
// here (see "bfloat16 C" below for why cuBLAS is not asked to write bfloat16). Issue 7 brings the
// tensor-core modes. cuBLAS gives bitwise the same result run after run for the same call on the same GPU
// when, as here, one stream uses the handle.
//
// beta == 0: cuBLAS does not read C then (its documented contract), so C may hold NaN, as gemm.hpp allows.
//
// Loading. cuBLAS is opened with dlopen on the first GEMM on a device, not linked: libcublasLt's static
// initializers cost about half a second at every process start (measured: `kiln --help` took 0.6 s, 52% of it
// in libcublasLt), paid by every CLI call and every test process, GPU or not. The few entry points used are
// resolved into CublasLibrary below; cublas_v2.h is included for their types only.
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <dlfcn.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <type_traits>
#include <vector>

#include "core/cuda_runtime.hpp"
#include "core/error.hpp"
#include "core/storage.hpp"
#include "kernels/cuda_launch.cuh"
#include "kernels/elementwise/elementwise.hpp"
#include "kernels/gemm/gemm.hpp"

namespace kiln::kernels::cuda {
namespace {

// ---- the cuBLAS library, opened on first use -----------------------------------------------------------

// The exported name of an entry point: cublas_v2.h maps some names by macro (cublasCreate -> cublasCreate_v2,
// cublasSgemm_64 -> cublasSgemm_v2_64), and the macro is expanded before it is stringified.
#define KILN_CUBLAS_STRINGIFY(name) #name
#define KILN_CUBLAS_SYMBOL(name) KILN_CUBLAS_STRINGIFY(name)

struct CublasLibrary {
  decltype(&cublasCreate) create;
  decltype(&cublasSetStream) set_stream;
  decltype(&cublasGetStatusName) status_name;
  decltype(&cublasGetStatusString) status_string;
  decltype(&cublasSgemm_64) sgemm;
  decltype(&cublasDgemm_64) dgemm;
  decltype(&cublasSgemmStridedBatched_64) sgemm_strided_batched;
  decltype(&cublasDgemmStridedBatched_64) dgemm_strided_batched;
  decltype(&cublasGemmEx_64) gemm_ex;
  decltype(&cublasGemmStridedBatchedEx_64) gemm_strided_batched_ex;
};

template <typename Function>
Function resolve(void* library, const char* library_name, const char* symbol) {
  void* address = dlsym(library, symbol);
  KILN_CHECK(address != nullptr, "gemm on CUDA: ", library_name, " has no ", symbol, " (", dlerror(), ")");
  return reinterpret_cast<Function>(address);
}

#ifdef KILN_CUDA_EMULATION
// The emulated backend (tests/emulation) links column-major host GEMMs under cuBLAS's names instead.
CublasLibrary open_cublas() {
  return {&cublasCreate,
          &cublasSetStream,
          &cublasGetStatusName,
          &cublasGetStatusString,
          &cublasSgemm_64,
          &cublasDgemm_64,
          &cublasSgemmStridedBatched_64,
          &cublasDgemmStridedBatched_64,
          &cublasGemmEx_64,
          &cublasGemmStridedBatchedEx_64};
}
#else
// Opens the cuBLAS of the toolkit kiln was compiled with (its soname, libcublas.so.<major>), found the way
// the dynamic loader finds the CUDA runtime (the executable's run path, then the system's library path).
// Never closed, like the handles below.
CublasLibrary open_cublas() {
  const std::string name = "libcublas.so." + std::to_string(CUBLAS_VER_MAJOR);
  void* library = dlopen(name.c_str(), RTLD_NOW | RTLD_LOCAL);
  KILN_CHECK(library != nullptr, "gemm on CUDA: cannot load cuBLAS (", dlerror(),
             "); it comes with the CUDA toolkit: add its lib64 folder to LD_LIBRARY_PATH");
  const char* n = name.c_str();
  return {resolve<decltype(&cublasCreate)>(library, n, KILN_CUBLAS_SYMBOL(cublasCreate)),
          resolve<decltype(&cublasSetStream)>(library, n, KILN_CUBLAS_SYMBOL(cublasSetStream)),
          resolve<decltype(&cublasGetStatusName)>(library, n, KILN_CUBLAS_SYMBOL(cublasGetStatusName)),
          resolve<decltype(&cublasGetStatusString)>(library, n, KILN_CUBLAS_SYMBOL(cublasGetStatusString)),
          resolve<decltype(&cublasSgemm_64)>(library, n, KILN_CUBLAS_SYMBOL(cublasSgemm_64)),
          resolve<decltype(&cublasDgemm_64)>(library, n, KILN_CUBLAS_SYMBOL(cublasDgemm_64)),
          resolve<decltype(&cublasSgemmStridedBatched_64)>(library, n,
                                                           KILN_CUBLAS_SYMBOL(cublasSgemmStridedBatched_64)),
          resolve<decltype(&cublasDgemmStridedBatched_64)>(library, n,
                                                           KILN_CUBLAS_SYMBOL(cublasDgemmStridedBatched_64)),
          resolve<decltype(&cublasGemmEx_64)>(library, n, KILN_CUBLAS_SYMBOL(cublasGemmEx_64)),
          resolve<decltype(&cublasGemmStridedBatchedEx_64)>(
              library, n, KILN_CUBLAS_SYMBOL(cublasGemmStridedBatchedEx_64))};
}
#endif

// Opened once, by the first caller (a magic static: thread-safe); a failure throws again at every call.
const CublasLibrary& cublas() {
  static const CublasLibrary library = open_cublas();
  return library;
}

// ---- the cuBLAS handle -------------------------------------------------------------------------------

// Throws a kiln::Error naming the cuBLAS call and its status ("gemm on CUDA: cublasSgemm_64 failed:
// CUBLAS_STATUS_INVALID_VALUE (an invalid value was used as an argument)").
void check_cublas(cublasStatus_t status, const char* call) {
  if (status == CUBLAS_STATUS_SUCCESS) return;
  fail("gemm on CUDA: ", call, " failed: ", cublas().status_name(status), " (",
       cublas().status_string(status), ")");
}

// The cuBLAS handle of the current device, created on first use (a handle belongs to the device current at
// its creation). Creation is serialized by a mutex; using one handle from several host threads at once is
// safe in cuBLAS as long as nobody changes its settings, and nothing here does after creation. Its stream
// is the device's compute stream, where every kiln kernel runs, so GEMMs and kernels stay in order (and a
// CUDA graph captures both).
//
// The handles are never destroyed: cublasDestroy at static-destruction time could run after the CUDA runtime
// has begun shutting down (the order is unspecified) and fail or crash, and the driver frees a process's
// device resources when it exits anyway. A handle holds a few MiB of workspace per device.
cublasHandle_t handle_for_current_device() {
  static std::mutex mutex;
  static std::vector<cublasHandle_t> handles;  // indexed by device; nullptr until first used
  const int device = kiln::cuda::current_device();
  const std::lock_guard lock(mutex);
  const auto index = static_cast<std::size_t>(device);
  if (handles.size() <= index) handles.resize(index + 1, nullptr);
  if (handles[index] == nullptr) {
    cublasHandle_t handle = nullptr;
    check_cublas(cublas().create(&handle), "cublasCreate");
    check_cublas(cublas().set_stream(handle, static_cast<cudaStream_t>(kiln::cuda::compute_stream(device))),
                 "cublasSetStream");
    handles[index] = handle;
  }
  return handles[index];
}

// ---- row-major to column-major -----------------------------------------------------------------------

// The leading dimension cuBLAS gets for a row-major matrix stored [rows, cols] with row stride ld. cuBLAS
// refuses ld < cols (its rows would overlap) even when there is one row and ld is never used, so a
// one-row matrix gets ld = cols; otherwise ld must hold a row.
std::int64_t leading_dimension(std::int64_t ld, std::int64_t rows, std::int64_t cols, const char* name) {
  if (rows <= 1) return std::max<std::int64_t>(cols, 1);
  KILN_CHECK(ld >= cols, "gemm on CUDA: ", name, " = ", ld, " is smaller than a stored row of ", cols,
             " elements (cuBLAS needs rows that do not overlap)");
  return ld;
}

// One cuBLAS call computing the row-major C = alpha op(A) op(B) + beta C (see the top of the file).
struct ColumnMajorCall {
  cublasOperation_t op_b, op_a;  // cuBLAS's first operand is B, its second A
  std::int64_t m, n, k;          // cuBLAS's: N, M, K
  std::int64_t ldb, lda, ldc;
};

ColumnMajorCall column_major_call(const GemmGeometry& g) {
  const std::int64_t a_rows = g.trans_a ? g.k : g.m, a_cols = g.trans_a ? g.m : g.k;  // A as stored
  const std::int64_t b_rows = g.trans_b ? g.n : g.k, b_cols = g.trans_b ? g.k : g.n;  // B as stored
  return {g.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N,
          g.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N,
          g.n,
          g.m,
          g.k,
          leading_dimension(g.ldb, b_rows, b_cols, "ldb"),
          leading_dimension(g.lda, a_rows, a_cols, "lda"),
          leading_dimension(g.ldc, g.m, g.n, "ldc")};
}

// The cuBLAS entry points by element type (the _64 forms take 64-bit sizes, so no size is truncated).
cublasStatus_t cublas_gemm(cublasHandle_t handle, const ColumnMajorCall& call, const float* alpha,
                           const float* b, const float* a, const float* beta, float* c) {
  return cublas().sgemm(handle, call.op_b, call.op_a, call.m, call.n, call.k, alpha, b, call.ldb, a, call.lda,
                        beta, c, call.ldc);
}
cublasStatus_t cublas_gemm(cublasHandle_t handle, const ColumnMajorCall& call, const double* alpha,
                           const double* b, const double* a, const double* beta, double* c) {
  return cublas().dgemm(handle, call.op_b, call.op_a, call.m, call.n, call.k, alpha, b, call.ldb, a, call.lda,
                        beta, c, call.ldc);
}
cublasStatus_t cublas_gemm_strided_batched(cublasHandle_t handle, const ColumnMajorCall& call,
                                           std::int64_t batch_count, std::int64_t stride_a,
                                           std::int64_t stride_b, std::int64_t stride_c, const float* alpha,
                                           const float* b, const float* a, const float* beta, float* c) {
  return cublas().sgemm_strided_batched(handle, call.op_b, call.op_a, call.m, call.n, call.k, alpha, b,
                                        call.ldb, stride_b, a, call.lda, stride_a, beta, c, call.ldc,
                                        stride_c, batch_count);
}
cublasStatus_t cublas_gemm_strided_batched(cublasHandle_t handle, const ColumnMajorCall& call,
                                           std::int64_t batch_count, std::int64_t stride_a,
                                           std::int64_t stride_b, std::int64_t stride_c, const double* alpha,
                                           const double* b, const double* a, const double* beta, double* c) {
  return cublas().dgemm_strided_batched(handle, call.op_b, call.op_a, call.m, call.n, call.k, alpha, b,
                                        call.ldb, stride_b, a, call.lda, stride_a, beta, c, call.ldc,
                                        stride_c, batch_count);
}
// bfloat16 A and B (both CUDA_R_16BF), C of type CType (bfloat16 or float), float alpha and beta, summed in
// float (CUBLAS_COMPUTE_32F; cuBLAS picks the algorithm, tensor cores where it can).
template <typename CType>
cudaDataType c_data_type() {
  return std::is_same_v<CType, float> ? CUDA_R_32F : CUDA_R_16BF;
}
template <typename CType>
cublasStatus_t cublas_gemm(cublasHandle_t handle, const ColumnMajorCall& call, const float* alpha,
                           const bfloat16* b, const bfloat16* a, const float* beta, CType* c) {
  return cublas().gemm_ex(handle, call.op_b, call.op_a, call.m, call.n, call.k, alpha, b, CUDA_R_16BF,
                          call.ldb, a, CUDA_R_16BF, call.lda, beta, c, c_data_type<CType>(), call.ldc,
                          CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
}
template <typename CType>
cublasStatus_t cublas_gemm_strided_batched(cublasHandle_t handle, const ColumnMajorCall& call,
                                           std::int64_t batch_count, std::int64_t stride_a,
                                           std::int64_t stride_b, std::int64_t stride_c, const float* alpha,
                                           const bfloat16* b, const bfloat16* a, const float* beta,
                                           CType* c) {
  return cublas().gemm_strided_batched_ex(handle, call.op_b, call.op_a, call.m, call.n, call.k, alpha, b,
                                          CUDA_R_16BF, call.ldb, stride_b, a, CUDA_R_16BF, call.lda, stride_a,
                                          beta, c, c_data_type<CType>(), call.ldc, stride_c, batch_count,
                                          CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
}
const char* gemm_name(float) { return "cublasSgemm_64"; }
const char* gemm_name(double) { return "cublasDgemm_64"; }
const char* gemm_name(bfloat16) { return "cublasGemmEx_64"; }
const char* strided_batched_name(float) { return "cublasSgemmStridedBatched_64"; }
const char* strided_batched_name(double) { return "cublasDgemmStridedBatched_64"; }
const char* strided_batched_name(bfloat16) { return "cublasGemmStridedBatchedEx_64"; }

// ---- k == 0 ------------------------------------------------------------------------------------------

// C_i = alpha * 0 + beta * C_i over batch_count matrices [m, n]: the product of an empty sum, written the
// way the reference writes it (beta == 0 never reads C). One thread per element of C in a grid-stride loop
// (element e is column e % n of row (e / n) % m of matrix e / (m * n)). Done here rather than trusting
// cuBLAS's k == 0 handling, which its documentation does not spell out. Computed in T's opmath_t (float for
// bfloat16) and rounded to T once.
template <typename T>
__global__ void scale_by_beta_kernel(std::int64_t batch_count, std::int64_t m, std::int64_t n,
                                     std::int64_t ldc, std::int64_t stride_c, opmath_t<T> alpha,
                                     opmath_t<T> beta, T* c) {
  using Op = opmath_t<T>;
  const std::int64_t total = batch_count * m * n;
  const std::int64_t stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t e = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; e < total;
       e += stride) {
    const std::int64_t col = e % n, row = (e / n) % m, matrix = e / (m * n);
    T& c_ij = c[matrix * stride_c + row * ldc + col];
    c_ij = static_cast<T>(alpha * Op(0) + (beta == Op(0) ? Op(0) : beta * static_cast<Op>(c_ij)));
  }
}

template <typename T>
void scale_by_beta(const GemmGeometry& g, std::int64_t batch_count, std::int64_t stride_c, opmath_t<T> alpha,
                   opmath_t<T> beta, T* c) {
  const std::int64_t total = batch_count * g.m * g.n;
  const auto blocks = grid_blocks(total);
  launch("gemm (k == 0)", scale_by_beta_kernel<T>, blocks, kThreadsPerBlock, batch_count, g.m, g.n, g.ldc,
         stride_c, alpha, beta, c);
}

// The two entry points for every (A/B type, C type) pair cuBLAS is asked for: T A and B, CType C.
template <typename T, typename CType>
void cublas_gemm_of(const GemmGeometry& g, opmath_t<T> alpha, const T* a, const T* b, opmath_t<T> beta,
                    CType* c) {
  if (g.m == 0 || g.n == 0) return;
  if (g.k == 0) return scale_by_beta<CType>(g, 1, 0, alpha, beta, c);
  const ColumnMajorCall call = column_major_call(g);
  check_cublas(cublas_gemm(handle_for_current_device(), call, &alpha, b, a, &beta, c), gemm_name(T{}));
}

template <typename T, typename CType>
void cublas_gemm_strided_batched_of(const GemmGeometry& g, std::int64_t batch_count, std::int64_t stride_a,
                                    std::int64_t stride_b, std::int64_t stride_c, opmath_t<T> alpha,
                                    const T* a, const T* b, opmath_t<T> beta, CType* c) {
  if (g.m == 0 || g.n == 0 || batch_count == 0) return;
  if (g.k == 0) return scale_by_beta<CType>(g, batch_count, stride_c, alpha, beta, c);
  const ColumnMajorCall call = column_major_call(g);
  check_cublas(cublas_gemm_strided_batched(handle_for_current_device(), call, batch_count, stride_a, stride_b,
                                           stride_c, &alpha, b, a, &beta, c),
               strided_batched_name(T{}));
}

// ---- bfloat16 C ----------------------------------------------------------------------------------------

// cuBLAS is never asked to write bfloat16. Measured on an H200 (cuBLAS 13.1): a strided-batched GemmEx with
// bfloat16 C, beta = 1 and K = 144 (a 3x3 convolution over 16 channels, through im2col) came out 0.0586
// where the float sum rounds to 0.0554, an error of 2e-4 of its terms' magnitudes, six times what float sums
// allow and the size of bfloat16 roundings of partial sums; CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION
// changed no bit, and the same products written as float were right. So C = alpha op(A) op(B) + beta C for a
// bfloat16 C [m, n] (row stride ldc, batch_count matrices stride_c apart) is computed as a dense float C in
// scratch, holding C's values first when beta reads them, and rounded back to C once: the two conversions are
// the elementwise family's strided copy (exact from bfloat16, round to nearest even to it). The scratch
// comes from the caching allocator and is released on return while the kernels may still be queued: safe,
// since everything runs on the compute stream, so a later user of the block is ordered after them.
void gemm_strided_batched_bfloat16(const GemmGeometry& g, std::int64_t batch_count, std::int64_t stride_a,
                                   std::int64_t stride_b, std::int64_t stride_c, float alpha,
                                   const bfloat16* a, const bfloat16* b, float beta, bfloat16* c) {
  if (g.m == 0 || g.n == 0 || batch_count == 0) return;
  const std::int64_t total = batch_count * g.m * g.n;
  const std::shared_ptr<Storage> scratch = Storage::allocate(static_cast<std::size_t>(total) * sizeof(float),
                                                             Device::cuda(kiln::cuda::current_device()));
  float* wide = static_cast<float*>(scratch->data());
  const std::int64_t sizes[3] = {batch_count, g.m, g.n};
  const std::int64_t c_strides[3] = {stride_c, g.ldc, 1}, dense_strides[3] = {g.m * g.n, g.n, 1};
  if (beta != 0.0f)
    kernels::cuda::copy_strided(3, sizes, static_cast<const bfloat16*>(c), c_strides, wide, dense_strides);
  GemmGeometry dense = g;
  dense.ldc = g.n;
  cublas_gemm_strided_batched_of<bfloat16, float>(dense, batch_count, stride_a, stride_b, g.m * g.n, alpha, a,
                                                  b, beta, wide);
  kernels::cuda::copy_strided(3, sizes, static_cast<const float*>(wide), dense_strides, c, c_strides);
}

// The entry points by C's type: float and double C go to cuBLAS as they are, bfloat16 C through float.
template <typename T>
void gemm_strided_batched_of(const GemmGeometry& g, std::int64_t batch_count, std::int64_t stride_a,
                             std::int64_t stride_b, std::int64_t stride_c, opmath_t<T> alpha, const T* a,
                             const T* b, opmath_t<T> beta, T* c) {
  if constexpr (std::is_same_v<T, bfloat16>) {
    gemm_strided_batched_bfloat16(g, batch_count, stride_a, stride_b, stride_c, alpha, a, b, beta, c);
  } else {
    cublas_gemm_strided_batched_of<T, T>(g, batch_count, stride_a, stride_b, stride_c, alpha, a, b, beta, c);
  }
}

}  // namespace

template <typename T>
void gemm(const GemmGeometry& g, opmath_t<T> alpha, const T* a, const T* b, opmath_t<T> beta, T* c) {
  if constexpr (std::is_same_v<T, bfloat16>) {
    gemm_strided_batched_bfloat16(g, 1, 0, 0, 0, alpha, a, b, beta, c);
  } else {
    cublas_gemm_of<T, T>(g, alpha, a, b, beta, c);
  }
}

template <typename T>
void gemm_strided_batched(const GemmGeometry& g, std::int64_t batch_count, std::int64_t stride_a,
                          std::int64_t stride_b, std::int64_t stride_c, opmath_t<T> alpha, const T* a,
                          const T* b, opmath_t<T> beta, T* c) {
  gemm_strided_batched_of<T>(g, batch_count, stride_a, stride_b, stride_c, alpha, a, b, beta, c);
}

void gemm_into_float(const GemmGeometry& g, float alpha, const bfloat16* a, const bfloat16* b, float beta,
                     float* c) {
  cublas_gemm_of<bfloat16, float>(g, alpha, a, b, beta, c);
}

void gemm_strided_batched_into_float(const GemmGeometry& g, std::int64_t batch_count, std::int64_t stride_a,
                                     std::int64_t stride_b, std::int64_t stride_c, float alpha,
                                     const bfloat16* a, const bfloat16* b, float beta, float* c) {
  cublas_gemm_strided_batched_of<bfloat16, float>(g, batch_count, stride_a, stride_b, stride_c, alpha, a, b,
                                                  beta, c);
}

template void gemm<float>(const GemmGeometry&, float, const float*, const float*, float, float*);
template void gemm<double>(const GemmGeometry&, double, const double*, const double*, double, double*);
template void gemm_strided_batched<float>(const GemmGeometry&, std::int64_t, std::int64_t, std::int64_t,
                                          std::int64_t, float, const float*, const float*, float, float*);
template void gemm_strided_batched<double>(const GemmGeometry&, std::int64_t, std::int64_t, std::int64_t,
                                           std::int64_t, double, const double*, const double*, double,
                                           double*);
template void gemm<bfloat16>(const GemmGeometry&, float, const bfloat16*, const bfloat16*, float, bfloat16*);
template void gemm_strided_batched<bfloat16>(const GemmGeometry&, std::int64_t, std::int64_t, std::int64_t,
                                             std::int64_t, float, const bfloat16*, const bfloat16*, float,
                                             bfloat16*);

}  // namespace kiln::kernels::cuda
