// The single dispatch point for GEMM: every caller goes through this function, and only here is an
// implementation chosen. Today every CPU call runs the reference kernel; AVX2 / AVX-512 versions (picked
// by cpu_level()) and a CUDA version (picked by device) plug in here when they exist.
#include "kernels/cpu_level.hpp"
#include "kernels/gemm/gemm.hpp"

namespace kiln::kernels {

template <typename T>
void gemm(Device device, const GemmGeometry& g, T alpha, const T* a, const T* b, T beta, T* c) {
  require_cpu(device, "gemm");
  reference::gemm(g, alpha, a, b, beta, c);
}

template void gemm<float>(Device, const GemmGeometry&, float, const float*, const float*, float, float*);
template void gemm<double>(Device, const GemmGeometry&, double, const double*, const double*, double,
                           double*);

}  // namespace kiln::kernels
