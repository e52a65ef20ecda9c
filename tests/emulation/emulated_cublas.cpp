// cuBLAS of the emulated backend (toolkit/cublas_v2.h): column-major GEMMs on the host, written from cuBLAS's
// documented contract rather than from kiln's row-major GEMM, so that the emulated backend checks
// kernels/gemm/cuda_gemm.cu's mapping (operands swapped, m and n swapped, each op kept) end to end:
//
//   C = alpha op(A) op(B) + beta C,  op(A) [m, k], op(B) [k, n], C [m, n], all column-major:
//   element (i, j) of a matrix with leading dimension ld at [i + j ld]; op(X) = X or X^T by its flag.
//   beta == 0 does not read C (C may hold NaN).
//
// As cuBLAS does, it refuses (CUBLAS_STATUS_INVALID_VALUE) negative sizes and a leading dimension smaller
// than a stored column (lda >= max(1, rows of A as stored), the same for B and C), and (as a GPU would
// fault) it refuses an operand that does not lie inside device memory, extent and batch strides included.
// Sums run in the compute type, one fused multiply-add per term in order of k: float for float and bfloat16
// GEMMs (CUBLAS_COMPUTE_32F), double for double. The real library splits k into blocks and sums those in an
// order of its own, which rounds no worse than one running sum: a test tolerance that holds here holds there.
#include <cublas_v2.h>

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "core/bfloat16.hpp"
#include "tests/emulation/cuda_emulator.hpp"

// A handle's stream: the legacy default stream until cublasSetStream.
struct cublasContext {
  cudaStream_t stream = nullptr;
};

namespace {

using kiln::bfloat16;

// One operand as cuBLAS sees it: `rows` x `cols` as stored, column-major with leading dimension ld, and
// `stride` elements from one matrix of a batch to the next.
struct Operand {
  const void* data;
  std::int64_t rows, cols, ld, stride;
  std::size_t element_bytes;
};

bool valid_leading_dimension(const Operand& x) { return x.ld >= std::max<std::int64_t>(1, x.rows); }

// Whether every element the batch touches lies inside device memory.
bool in_device_memory(const Operand& x, std::int64_t batch_count) {
  if (x.rows == 0 || x.cols == 0 || batch_count == 0) return true;
  const std::int64_t extent = (batch_count - 1) * x.stride + (x.cols - 1) * x.ld + x.rows;
  return kiln::emulation::inside_device_memory(x.data, static_cast<std::size_t>(extent) * x.element_bytes);
}

double load(const void* data, std::int64_t index, cudaDataType type) {
  switch (type) {
    case CUDA_R_32F:
      return static_cast<const float*>(data)[index];
    case CUDA_R_64F:
      return static_cast<const double*>(data)[index];
    case CUDA_R_16BF:
      return static_cast<float>(static_cast<const bfloat16*>(data)[index]);
  }
  return 0.0;
}

void store(void* data, std::int64_t index, cudaDataType type, double value) {
  switch (type) {
    case CUDA_R_32F:
      static_cast<float*>(data)[index] = static_cast<float>(value);
      return;
    case CUDA_R_64F:
      static_cast<double*>(data)[index] = value;
      return;
    case CUDA_R_16BF:
      static_cast<bfloat16*>(data)[index] = bfloat16(value);
      return;
  }
}

std::size_t bytes_of(cudaDataType type) { return type == CUDA_R_64F ? 8 : type == CUDA_R_32F ? 4 : 2; }

// The one GEMM every entry point below calls.
cublasStatus_t gemm(cublasHandle_t handle, cublasOperation_t op_a, cublasOperation_t op_b, std::int64_t m,
                    std::int64_t n, std::int64_t k, double alpha, const void* a, cudaDataType a_type,
                    std::int64_t lda, std::int64_t stride_a, const void* b, cudaDataType b_type,
                    std::int64_t ldb, std::int64_t stride_b, double beta, void* c, cudaDataType c_type,
                    std::int64_t ldc, std::int64_t stride_c, std::int64_t batch_count) {
  if (handle == nullptr) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (op_a == CUBLAS_OP_C || op_b == CUBLAS_OP_C) return CUBLAS_STATUS_NOT_SUPPORTED;  // kiln has no complex
  if (m < 0 || n < 0 || k < 0 || batch_count < 0) return CUBLAS_STATUS_INVALID_VALUE;
  const bool a_n = op_a == CUBLAS_OP_N, b_n = op_b == CUBLAS_OP_N;
  const Operand a_stored{a, a_n ? m : k, a_n ? k : m, lda, stride_a, bytes_of(a_type)};
  const Operand b_stored{b, b_n ? k : n, b_n ? n : k, ldb, stride_b, bytes_of(b_type)};
  const Operand c_stored{c, m, n, ldc, stride_c, bytes_of(c_type)};
  for (const Operand* x : {&a_stored, &b_stored, &c_stored})
    if (!valid_leading_dimension(*x)) return CUBLAS_STATUS_INVALID_VALUE;
  if (m == 0 || n == 0 || batch_count == 0) return CUBLAS_STATUS_SUCCESS;
  const std::int64_t inner = alpha == 0.0 ? 0 : k;  // alpha == 0: A and B are not read
  if (!in_device_memory(c_stored, batch_count) ||
      (inner > 0 && (!in_device_memory(a_stored, batch_count) || !in_device_memory(b_stored, batch_count))))
    return CUBLAS_STATUS_INVALID_VALUE;
  // C = alpha op(A) op(B) + beta C, computed in the compute type of `zero`; by value, as the work may run at
  // each launch of a graph being captured.
  const auto multiply = [=](auto zero) {
    using Sum = decltype(zero);
    const auto alpha_s = static_cast<Sum>(alpha), beta_s = static_cast<Sum>(beta);
    for (std::int64_t batch = 0; batch < batch_count; ++batch) {
      const std::int64_t a0 = batch * stride_a, b0 = batch * stride_b, c0 = batch * stride_c;
      for (std::int64_t j = 0; j < n; ++j) {
        for (std::int64_t i = 0; i < m; ++i) {
          Sum sum = zero;
          for (std::int64_t l = 0; l < inner; ++l) {
            const auto a_il = static_cast<Sum>(load(a, a0 + (a_n ? i + l * lda : l + i * lda), a_type));
            const auto b_lj = static_cast<Sum>(load(b, b0 + (b_n ? l + j * ldb : j + l * ldb), b_type));
            sum = std::fma(a_il, b_lj, sum);
          }
          const std::int64_t at = c0 + i + j * ldc;
          const Sum scaled = alpha_s * sum;
          store(c, at, c_type,
                beta == 0.0 ? scaled : std::fma(beta_s, static_cast<Sum>(load(c, at, c_type)), scaled));
        }
      }
    }
  };
  const bool on_legacy_stream = handle->stream == nullptr || handle->stream == cudaStreamLegacy;
  const bool queued = kiln::emulation::default_stream_work(
      [=] {
        if (c_type == CUDA_R_64F) {
          multiply(0.0);
        } else {
          multiply(0.0f);
        }
      },
      on_legacy_stream);
  return queued ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_EXECUTION_FAILED;
}

// GemmEx's types, as kiln uses them: bfloat16 A and B, bfloat16 or float C, float scalars, float sums.
bool supported_ex(cudaDataType a_type, cudaDataType b_type, cudaDataType c_type,
                  cublasComputeType_t compute) {
  return a_type == CUDA_R_16BF && b_type == CUDA_R_16BF && (c_type == CUDA_R_16BF || c_type == CUDA_R_32F) &&
         compute == CUBLAS_COMPUTE_32F;
}

}  // namespace

cublasStatus_t cublasCreate(cublasHandle_t* handle) {
  *handle = new cublasContext;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetStream(cublasHandle_t handle, cudaStream_t stream) {
  if (handle == nullptr) return CUBLAS_STATUS_NOT_INITIALIZED;
  handle->stream = stream;
  return CUBLAS_STATUS_SUCCESS;
}

const char* cublasGetStatusName(cublasStatus_t status) {
  switch (status) {
    case CUBLAS_STATUS_SUCCESS:
      return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED:
      return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_INVALID_VALUE:
      return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_NOT_SUPPORTED:
      return "CUBLAS_STATUS_NOT_SUPPORTED";
    case CUBLAS_STATUS_EXECUTION_FAILED:
      return "CUBLAS_STATUS_EXECUTION_FAILED";
  }
  return "CUBLAS_STATUS_UNKNOWN";
}

const char* cublasGetStatusString(cublasStatus_t status) {
  switch (status) {
    case CUBLAS_STATUS_SUCCESS:
      return "success";
    case CUBLAS_STATUS_NOT_INITIALIZED:
      return "the library was not initialized";
    case CUBLAS_STATUS_INVALID_VALUE:
      return "an invalid value was used as an argument";
    case CUBLAS_STATUS_NOT_SUPPORTED:
      return "the functionality requested is not supported";
    case CUBLAS_STATUS_EXECUTION_FAILED:
      return "the GPU program failed to execute";
  }
  return "unknown status";
}

cublasStatus_t cublasSgemm_64(cublasHandle_t handle, cublasOperation_t trans_a, cublasOperation_t trans_b,
                              std::int64_t m, std::int64_t n, std::int64_t k, const float* alpha,
                              const float* a, std::int64_t lda, const float* b, std::int64_t ldb,
                              const float* beta, float* c, std::int64_t ldc) {
  return gemm(handle, trans_a, trans_b, m, n, k, *alpha, a, CUDA_R_32F, lda, 0, b, CUDA_R_32F, ldb, 0, *beta,
              c, CUDA_R_32F, ldc, 0, 1);
}

cublasStatus_t cublasDgemm_64(cublasHandle_t handle, cublasOperation_t trans_a, cublasOperation_t trans_b,
                              std::int64_t m, std::int64_t n, std::int64_t k, const double* alpha,
                              const double* a, std::int64_t lda, const double* b, std::int64_t ldb,
                              const double* beta, double* c, std::int64_t ldc) {
  return gemm(handle, trans_a, trans_b, m, n, k, *alpha, a, CUDA_R_64F, lda, 0, b, CUDA_R_64F, ldb, 0, *beta,
              c, CUDA_R_64F, ldc, 0, 1);
}

cublasStatus_t cublasSgemmStridedBatched_64(cublasHandle_t handle, cublasOperation_t trans_a,
                                            cublasOperation_t trans_b, std::int64_t m, std::int64_t n,
                                            std::int64_t k, const float* alpha, const float* a,
                                            std::int64_t lda, std::int64_t stride_a, const float* b,
                                            std::int64_t ldb, std::int64_t stride_b, const float* beta,
                                            float* c, std::int64_t ldc, std::int64_t stride_c,
                                            std::int64_t batch_count) {
  return gemm(handle, trans_a, trans_b, m, n, k, *alpha, a, CUDA_R_32F, lda, stride_a, b, CUDA_R_32F, ldb,
              stride_b, *beta, c, CUDA_R_32F, ldc, stride_c, batch_count);
}

cublasStatus_t cublasDgemmStridedBatched_64(cublasHandle_t handle, cublasOperation_t trans_a,
                                            cublasOperation_t trans_b, std::int64_t m, std::int64_t n,
                                            std::int64_t k, const double* alpha, const double* a,
                                            std::int64_t lda, std::int64_t stride_a, const double* b,
                                            std::int64_t ldb, std::int64_t stride_b, const double* beta,
                                            double* c, std::int64_t ldc, std::int64_t stride_c,
                                            std::int64_t batch_count) {
  return gemm(handle, trans_a, trans_b, m, n, k, *alpha, a, CUDA_R_64F, lda, stride_a, b, CUDA_R_64F, ldb,
              stride_b, *beta, c, CUDA_R_64F, ldc, stride_c, batch_count);
}

cublasStatus_t cublasGemmEx_64(cublasHandle_t handle, cublasOperation_t trans_a, cublasOperation_t trans_b,
                               std::int64_t m, std::int64_t n, std::int64_t k, const void* alpha,
                               const void* a, cudaDataType a_type, std::int64_t lda, const void* b,
                               cudaDataType b_type, std::int64_t ldb, const void* beta, void* c,
                               cudaDataType c_type, std::int64_t ldc, cublasComputeType_t compute_type,
                               cublasGemmAlgo_t) {
  if (!supported_ex(a_type, b_type, c_type, compute_type)) return CUBLAS_STATUS_NOT_SUPPORTED;
  return gemm(handle, trans_a, trans_b, m, n, k, *static_cast<const float*>(alpha), a, a_type, lda, 0, b,
              b_type, ldb, 0, *static_cast<const float*>(beta), c, c_type, ldc, 0, 1);
}

cublasStatus_t cublasGemmStridedBatchedEx_64(
    cublasHandle_t handle, cublasOperation_t trans_a, cublasOperation_t trans_b, std::int64_t m,
    std::int64_t n, std::int64_t k, const void* alpha, const void* a, cudaDataType a_type, std::int64_t lda,
    std::int64_t stride_a, const void* b, cudaDataType b_type, std::int64_t ldb, std::int64_t stride_b,
    const void* beta, void* c, cudaDataType c_type, std::int64_t ldc, std::int64_t stride_c,
    std::int64_t batch_count, cublasComputeType_t compute_type, cublasGemmAlgo_t) {
  if (!supported_ex(a_type, b_type, c_type, compute_type)) return CUBLAS_STATUS_NOT_SUPPORTED;
  return gemm(handle, trans_a, trans_b, m, n, k, *static_cast<const float*>(alpha), a, a_type, lda, stride_a,
              b, b_type, ldb, stride_b, *static_cast<const float*>(beta), c, c_type, ldc, stride_c,
              batch_count);
}
