// Reference take (take.hpp): the formula as a loop.
#include <limits>

#include "kernels/take/take.hpp"

namespace kiln::kernels::reference {

template <typename T>
void take(std::int64_t n, const T* table, std::int64_t size, const std::int64_t* indices, T* y) {
  for (std::int64_t i = 0; i < n; ++i) {
    const std::int64_t index = indices[i];
    y[i] = index >= 0 && index < size ? table[index] : std::numeric_limits<T>::quiet_NaN();
  }
}

template void take<float>(std::int64_t, const float*, std::int64_t, const std::int64_t*, float*);
template void take<double>(std::int64_t, const double*, std::int64_t, const std::int64_t*, double*);

}  // namespace kiln::kernels::reference
