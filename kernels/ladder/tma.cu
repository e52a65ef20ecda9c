// bf16_tensor_map_128b and float_tensor_map_128b for the CUDA build (tma.cuh); the CPU emulator defines its
// own.
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

// The map of a tensor whose element type the rules have checked.
TensorMap encode(const void* base, const TensorMapShape& shape) {
  // The driver's terms: strides in bytes for dimensions 1.., and a box's extent in elements spanned
  // (box x step), of which every step-th is taken.
  cuuint64_t sizes[kTmaMaxRank] = {}, strides[kTmaMaxRank - 1] = {};
  cuuint32_t extents[kTmaMaxRank] = {}, steps[kTmaMaxRank] = {};
  for (int i = 0; i < shape.rank; ++i) {
    sizes[i] = static_cast<cuuint64_t>(shape.sizes[i]);
    extents[i] = static_cast<cuuint32_t>(shape.box[i] * shape.steps[i]);
    steps[i] = static_cast<cuuint32_t>(shape.steps[i]);
    if (i > 0) strides[i - 1] = static_cast<cuuint64_t>(shape.strides[i] * element_bytes(shape));
  }
  // The swizzle as wide as a line (tma.cuh).
  const CUtensorMapSwizzle swizzle = line_bytes(shape) == 128  ? CU_TENSOR_MAP_SWIZZLE_128B
                                     : line_bytes(shape) == 64 ? CU_TENSOR_MAP_SWIZZLE_64B
                                                               : CU_TENSOR_MAP_SWIZZLE_32B;
  const bool floats = shape.element == TmaElement::Float;
  TensorMap map;
  // 256-byte L2 promotion: a box line is 128 bytes, and the next box along dimension 0 is the next k-tile.
  const CUresult result =
      encode_tiled()(&map, floats ? CU_TENSOR_MAP_DATA_TYPE_FLOAT32 : CU_TENSOR_MAP_DATA_TYPE_BFLOAT16,
                     static_cast<cuuint32_t>(shape.rank), const_cast<void*>(base), sizes, strides, extents,
                     steps, CU_TENSOR_MAP_INTERLEAVE_NONE, swizzle, CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
                     CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  KILN_CHECK(result == CUDA_SUCCESS, "tensor map: cuTensorMapEncodeTiled failed (CUresult ",
             static_cast<int>(result), ") for a ", floats ? "float" : "bfloat16", " tensor of rank ",
             shape.rank, ", ", box_lines(shape), " lines a box");
  return map;
}

}  // namespace

TensorMap bf16_tensor_map_128b(const bfloat16* base, const TensorMapShape& shape) {
  require_tensor_map_rules(base, TmaElement::Bf16, shape);
  return encode(base, shape);
}

TensorMap float_tensor_map_128b(const float* base, const TensorMapShape& shape) {
  require_tensor_map_rules(base, TmaElement::Float, shape);
  return encode(base, shape);
}

}  // namespace kiln::kernels::ladder
