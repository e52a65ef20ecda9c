// The single dispatch point for the reduction family: every caller goes through these functions, and only
// here is an implementation chosen. Today every CPU call runs the reference kernels; AVX2 / AVX-512
// versions (picked by cpu_level()) and CUDA versions (picked by device) plug in here when they exist.
#include "kernels/cpu_level.hpp"
#include "kernels/reduce/reduce.hpp"

namespace kiln::kernels {

template <typename T>
void reduce(Device device, ReduceOp op, const ReduceGeometry& g, const T* x, T* y) {
  require_cpu(device, "reduce");
  reference::reduce(op, g, x, y);
}

template <typename T>
void argmax(Device device, const ReduceGeometry& g, const T* x, std::int64_t* indices) {
  require_cpu(device, "argmax");
  reference::argmax(g, x, indices);
}

template void reduce<float>(Device, ReduceOp, const ReduceGeometry&, const float*, float*);
template void reduce<double>(Device, ReduceOp, const ReduceGeometry&, const double*, double*);
template void argmax<float>(Device, const ReduceGeometry&, const float*, std::int64_t*);
template void argmax<double>(Device, const ReduceGeometry&, const double*, std::int64_t*);

}  // namespace kiln::kernels
