// The single dispatch point for GEMM: every caller goes through this function, and only here is an
// implementation chosen. float runs the fastest version cpu_level() allows (AVX-512, then AVX2, then the
// reference); double is used only by gradient checks and keeps the reference. On a CUDA device both run
// through cuBLAS (cuda_gemm.cu).
#include <type_traits>

#include "kernels/cpu_level.hpp"
#include "kernels/gemm/gemm.hpp"

namespace kiln::kernels {

template <typename T>
void gemm(Device device, const GemmGeometry& g, T alpha, const T* a, const T* b, T beta, T* c) {
#ifdef KILN_WITH_CUDA
  if (device.is_cuda()) return cuda::gemm(g, alpha, a, b, beta, c);
#endif
  require_cpu(device, "gemm");
  if constexpr (std::is_same_v<T, float>) {
    switch (cpu_level()) {
      case CpuLevel::Avx512:
        return avx512::gemm(g, alpha, a, b, beta, c);
      case CpuLevel::Avx2:
        return avx2::gemm(g, alpha, a, b, beta, c);
      case CpuLevel::Reference:
        break;
    }
  }
  reference::gemm(g, alpha, a, b, beta, c);
}

template void gemm<float>(Device, const GemmGeometry&, float, const float*, const float*, float, float*);
template void gemm<double>(Device, const GemmGeometry&, double, const double*, const double*, double,
                           double*);

}  // namespace kiln::kernels
