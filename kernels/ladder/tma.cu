// bf16_tensor_map_128b for the CUDA build (tma.cuh); the CPU emulator defines its own.
//
// A tensor map is encoded by the driver API (cuTensorMapEncodeTiled), which kiln does not link: the runtime
// hands out the driver's entry point by name and ABI version, so libkiln keeps depending on the runtime
// alone, as it does for everything else.
#include <cuda.h>
#include <cudaTypedefs.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "core/error.hpp"
#include "kernels/ladder/tma.cuh"

namespace kiln::kernels::ladder {
namespace {

// cuTensorMapEncodeTiled as of CUDA 12.0, its signature since; looked up once.
PFN_cuTensorMapEncodeTiled_v12000 encode_tiled() {
  static const PFN_cuTensorMapEncodeTiled_v12000 encode = [] {
    void* function = nullptr;
    cudaDriverEntryPointQueryResult found = cudaDriverEntryPointSymbolNotFound;
    const cudaError_t status = cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &function, 12000,
                                                                cudaEnableDefault, &found);
    KILN_CHECK(status == cudaSuccess && found == cudaDriverEntryPointSuccess && function != nullptr,
               "tensor map: the driver has no cuTensorMapEncodeTiled (cudaGetDriverEntryPointByVersion: ",
               cudaGetErrorString(status), ")");
    return reinterpret_cast<PFN_cuTensorMapEncodeTiled_v12000>(function);
  }();
  return encode;
}

}  // namespace

TensorMap bf16_tensor_map_128b(const bfloat16* base, std::int64_t rows, std::int64_t columns, int box_rows) {
  require_tensor_map_rules(base, rows, columns, box_rows);
  // Dimensions innermost first: columns, then rows; one stride, the row pitch in bytes.
  const cuuint64_t dimensions[2] = {static_cast<cuuint64_t>(columns), static_cast<cuuint64_t>(rows)};
  const cuuint64_t row_pitch[1] = {static_cast<cuuint64_t>(columns) * sizeof(bfloat16)};
  const cuuint32_t box[2] = {static_cast<cuuint32_t>(kTmaBoxColumns), static_cast<cuuint32_t>(box_rows)};
  const cuuint32_t element_steps[2] = {1, 1};
  TensorMap map;
  // 256-byte L2 promotion: a box line is 128 bytes, and the next box along the row is the next k-tile.
  const CUresult result =
      encode_tiled()(&map, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 2, const_cast<bfloat16*>(base), dimensions,
                     row_pitch, box, element_steps, CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
                     CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  KILN_CHECK(result == CUDA_SUCCESS, "tensor map: cuTensorMapEncodeTiled failed (CUresult ",
             static_cast<int>(result), ") for a ", rows, " x ", columns, " bfloat16 matrix in boxes of ",
             box_rows, " x ", kTmaBoxColumns);
  return map;
}

}  // namespace kiln::kernels::ladder
