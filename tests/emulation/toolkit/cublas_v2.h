// cuBLAS as kiln calls it (kernels/gemm/cuda_gemm.cu), for the emulated backend: the types, values and
// 64-bit GEMM entry points of the real <cublas_v2.h> that kiln uses. The definitions (emulated_cublas.cpp)
// are column-major GEMMs on the host, written from cuBLAS's documented contract, so the emulated backend
// checks kiln's row-major-to-column-major mapping (cuda_gemm.cu's top comment) as the real library would.
#pragma once

#include <cstdint>

#include "cuda_runtime.h"

#define CUBLAS_VER_MAJOR 13

enum cublasStatus_t {
  CUBLAS_STATUS_SUCCESS = 0,
  CUBLAS_STATUS_NOT_INITIALIZED = 1,
  CUBLAS_STATUS_INVALID_VALUE = 7,
  CUBLAS_STATUS_EXECUTION_FAILED = 13,
  CUBLAS_STATUS_NOT_SUPPORTED = 15,
};

enum cublasOperation_t { CUBLAS_OP_N = 0, CUBLAS_OP_T = 1, CUBLAS_OP_C = 2 };

// library_types.h's, in the real toolkit.
enum cudaDataType_t { CUDA_R_32F = 0, CUDA_R_64F = 1, CUDA_R_16BF = 14 };
using cudaDataType = cudaDataType_t;

enum cublasComputeType_t { CUBLAS_COMPUTE_32F = 68, CUBLAS_COMPUTE_32F_FAST_TF32 = 77 };
enum cublasGemmAlgo_t { CUBLAS_GEMM_DEFAULT = -1 };

struct cublasContext;
using cublasHandle_t = cublasContext*;

cublasStatus_t cublasCreate(cublasHandle_t* handle);
cublasStatus_t cublasSetStream(cublasHandle_t handle, cudaStream_t stream);
const char* cublasGetStatusName(cublasStatus_t status);
const char* cublasGetStatusString(cublasStatus_t status);

// C = alpha op(A) op(B) + beta C, column-major: op(A) is [m, k], op(B) [k, n], C [m, n]; beta == 0 does not
// read C.
cublasStatus_t cublasSgemm_64(cublasHandle_t handle, cublasOperation_t trans_a, cublasOperation_t trans_b,
                              std::int64_t m, std::int64_t n, std::int64_t k, const float* alpha,
                              const float* a, std::int64_t lda, const float* b, std::int64_t ldb,
                              const float* beta, float* c, std::int64_t ldc);
cublasStatus_t cublasDgemm_64(cublasHandle_t handle, cublasOperation_t trans_a, cublasOperation_t trans_b,
                              std::int64_t m, std::int64_t n, std::int64_t k, const double* alpha,
                              const double* a, std::int64_t lda, const double* b, std::int64_t ldb,
                              const double* beta, double* c, std::int64_t ldc);
cublasStatus_t cublasSgemmStridedBatched_64(cublasHandle_t handle, cublasOperation_t trans_a,
                                            cublasOperation_t trans_b, std::int64_t m, std::int64_t n,
                                            std::int64_t k, const float* alpha, const float* a,
                                            std::int64_t lda, std::int64_t stride_a, const float* b,
                                            std::int64_t ldb, std::int64_t stride_b, const float* beta,
                                            float* c, std::int64_t ldc, std::int64_t stride_c,
                                            std::int64_t batch_count);
cublasStatus_t cublasDgemmStridedBatched_64(cublasHandle_t handle, cublasOperation_t trans_a,
                                            cublasOperation_t trans_b, std::int64_t m, std::int64_t n,
                                            std::int64_t k, const double* alpha, const double* a,
                                            std::int64_t lda, std::int64_t stride_a, const double* b,
                                            std::int64_t ldb, std::int64_t stride_b, const double* beta,
                                            double* c, std::int64_t ldc, std::int64_t stride_c,
                                            std::int64_t batch_count);
// Typed by cudaDataType: kiln passes bfloat16 A and B, bfloat16 or float C, float alpha and beta.
cublasStatus_t cublasGemmEx_64(cublasHandle_t handle, cublasOperation_t trans_a, cublasOperation_t trans_b,
                               std::int64_t m, std::int64_t n, std::int64_t k, const void* alpha,
                               const void* a, cudaDataType a_type, std::int64_t lda, const void* b,
                               cudaDataType b_type, std::int64_t ldb, const void* beta, void* c,
                               cudaDataType c_type, std::int64_t ldc, cublasComputeType_t compute_type,
                               cublasGemmAlgo_t algorithm);
cublasStatus_t cublasGemmStridedBatchedEx_64(
    cublasHandle_t handle, cublasOperation_t trans_a, cublasOperation_t trans_b, std::int64_t m,
    std::int64_t n, std::int64_t k, const void* alpha, const void* a, cudaDataType a_type, std::int64_t lda,
    std::int64_t stride_a, const void* b, cudaDataType b_type, std::int64_t ldb, std::int64_t stride_b,
    const void* beta, void* c, cudaDataType c_type, std::int64_t ldc, std::int64_t stride_c,
    std::int64_t batch_count, cublasComputeType_t compute_type, cublasGemmAlgo_t algorithm);
