#include "kernels/random/random.hpp"

namespace kiln::kernels::reference {

template <typename T> void random_uniform(std::int64_t n, const PhiloxState& state, T low, T high, T* out) {
  for (std::int64_t i = 0; i < n; ++i) {
    out[i] = low + (high - low) * philox_uniform<T>(state, static_cast<std::uint64_t>(i));
  }
}

template <typename T> void random_normal(std::int64_t n, const PhiloxState& state, T mean, T std, T* out) {
  for (std::int64_t i = 0; i < n; ++i) {
    out[i] = mean + std * philox_normal<T>(state, static_cast<std::uint64_t>(i));
  }
}

template void random_uniform(std::int64_t, const PhiloxState&, float, float, float*);
template void random_uniform(std::int64_t, const PhiloxState&, double, double, double*);
template void random_normal(std::int64_t, const PhiloxState&, float, float, float*);
template void random_normal(std::int64_t, const PhiloxState&, double, double, double*);

}  // namespace kiln::kernels::reference
