// The single dispatch point for gradient clipping: a CUDA device runs the multi-tensor kernels
// (cuda_grad_clip.cu) in a build with CUDA; the CPU runs the reference. A model's gradients are a few
// hundred thousand to a few million elements, read once or twice a step: next to the step's convolutions
// that is noise on the CPU, and no vectorized version would be felt.
#include <span>

#include "core/profiler.hpp"
#include "kernels/cpu_level.hpp"
#include "kernels/grad_clip/grad_clip.hpp"

namespace kiln::kernels {

template <typename T>
void add_sum_of_squares_many(Device device, std::span<const ClipSlice<T>> slices, double* sum_of_squares) {
  profiler::Scope profile("add_sum_of_squares_many", device, dtype_of_v<T>);
#ifdef KILN_WITH_CUDA
  if (device.is_cuda()) return cuda::add_sum_of_squares_many(device, slices, sum_of_squares);
#endif
  require_cpu(device, "add_sum_of_squares_many");
  reference::add_sum_of_squares_many(slices, sum_of_squares);
}

template <typename T>
void clip_to_norm_many(Device device, std::span<const ClipSlice<T>> slices, const double* sum_of_squares,
                       double max_norm) {
  profiler::Scope profile("clip_to_norm_many", device, dtype_of_v<T>);
#ifdef KILN_WITH_CUDA
  if (device.is_cuda()) return cuda::clip_to_norm_many(slices, sum_of_squares, max_norm);
#endif
  require_cpu(device, "clip_to_norm_many");
  reference::clip_to_norm_many(slices, sum_of_squares, max_norm);
}

template void add_sum_of_squares_many<float>(Device, std::span<const ClipSlice<float>>, double*);
template void add_sum_of_squares_many<double>(Device, std::span<const ClipSlice<double>>, double*);
template void clip_to_norm_many<float>(Device, std::span<const ClipSlice<float>>, const double*, double);
template void clip_to_norm_many<double>(Device, std::span<const ClipSlice<double>>, const double*, double);

}  // namespace kiln::kernels
