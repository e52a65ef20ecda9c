// Reference gradient clipping (grad_clip.hpp): the formulas as loops, in double, in order.
#include <span>

#include "kernels/grad_clip/grad_clip.hpp"

namespace kiln::kernels::reference {

template <typename T>
void add_sum_of_squares_many(std::span<const ClipSlice<T>> slices, double* sum_of_squares) {
  double sum = 0.0;
  for (const ClipSlice<T>& slice : slices) {
    for (std::int64_t i = 0; i < slice.n; ++i) {
      const auto value = static_cast<double>(slice.data[i]);
      sum += value * value;
    }
  }
  *sum_of_squares += sum;
}

template <typename T>
void clip_to_norm_many(std::span<const ClipSlice<T>> slices, const double* sum_of_squares, double max_norm) {
  const double coefficient = clip_coefficient(*sum_of_squares, max_norm);
  if (coefficient == 1.0) return;
  for (const ClipSlice<T>& slice : slices) {
    for (std::int64_t i = 0; i < slice.n; ++i)
      slice.data[i] = static_cast<T>(static_cast<double>(slice.data[i]) * coefficient);
  }
}

template void add_sum_of_squares_many<float>(std::span<const ClipSlice<float>>, double*);
template void add_sum_of_squares_many<double>(std::span<const ClipSlice<double>>, double*);
template void clip_to_norm_many<float>(std::span<const ClipSlice<float>>, const double*, double);
template void clip_to_norm_many<double>(std::span<const ClipSlice<double>>, const double*, double);

}  // namespace kiln::kernels::reference
