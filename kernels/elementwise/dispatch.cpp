// The single dispatch point for the elementwise family: every caller goes through these functions, and only
// here is an implementation chosen. Today every CPU call runs the reference kernels; AVX2 / AVX-512
// versions (picked by cpu_level()) and CUDA versions (picked by device) plug in here when they exist.
#include "kernels/cpu_level.hpp"
#include "kernels/elementwise/elementwise.hpp"

namespace kiln::kernels {

template <typename T>
void unary_forward(Device device, UnaryOp op, const UnaryParams& params, std::int64_t n, const T* x, T* y) {
  require_cpu(device, "unary_forward");
  reference::unary_forward(op, params, n, x, y);
}

template <typename T>
void unary_backward(Device device, UnaryOp op, const UnaryParams& params, std::int64_t n, const T* x,
                    const T* y, const T* gy, T* gx) {
  require_cpu(device, "unary_backward");
  reference::unary_backward(op, params, n, x, y, gy, gx);
}

template <typename T>
void binary_forward(Device device, BinaryOp op, int rank, const std::int64_t* sizes, const T* a,
                    const std::int64_t* a_strides, const T* b, const std::int64_t* b_strides, T* out) {
  require_cpu(device, "binary_forward");
  reference::binary_forward(op, rank, sizes, a, a_strides, b, b_strides, out);
}

template <typename Src, typename Dst>
void copy_strided(Device device, int rank, const std::int64_t* sizes, const Src* src,
                  const std::int64_t* src_strides, Dst* dst, const std::int64_t* dst_strides) {
  require_cpu(device, "copy_strided");
  reference::copy_strided(rank, sizes, src, src_strides, dst, dst_strides);
}

template <typename T>
void fill(Device device, std::int64_t n, T value, T* out) {
  require_cpu(device, "fill");
  reference::fill(n, value, out);
}

template void unary_forward<float>(Device, UnaryOp, const UnaryParams&, std::int64_t, const float*, float*);
template void unary_forward<double>(Device, UnaryOp, const UnaryParams&, std::int64_t, const double*,
                                    double*);
template void unary_backward<float>(Device, UnaryOp, const UnaryParams&, std::int64_t, const float*,
                                    const float*, const float*, float*);
template void unary_backward<double>(Device, UnaryOp, const UnaryParams&, std::int64_t, const double*,
                                     const double*, const double*, double*);

template void binary_forward<float>(Device, BinaryOp, int, const std::int64_t*, const float*,
                                    const std::int64_t*, const float*, const std::int64_t*, float*);
template void binary_forward<double>(Device, BinaryOp, int, const std::int64_t*, const double*,
                                     const std::int64_t*, const double*, const std::int64_t*, double*);

// copy_strided: every pair of float, double and int64, and uint8 -> float / double (decoded images).
template void copy_strided<float, float>(Device, int, const std::int64_t*, const float*, const std::int64_t*,
                                         float*, const std::int64_t*);
template void copy_strided<float, double>(Device, int, const std::int64_t*, const float*, const std::int64_t*,
                                          double*, const std::int64_t*);
template void copy_strided<float, std::int64_t>(Device, int, const std::int64_t*, const float*,
                                                const std::int64_t*, std::int64_t*, const std::int64_t*);
template void copy_strided<double, float>(Device, int, const std::int64_t*, const double*,
                                          const std::int64_t*, float*, const std::int64_t*);
template void copy_strided<double, double>(Device, int, const std::int64_t*, const double*,
                                           const std::int64_t*, double*, const std::int64_t*);
template void copy_strided<double, std::int64_t>(Device, int, const std::int64_t*, const double*,
                                                 const std::int64_t*, std::int64_t*, const std::int64_t*);
template void copy_strided<std::int64_t, float>(Device, int, const std::int64_t*, const std::int64_t*,
                                                const std::int64_t*, float*, const std::int64_t*);
template void copy_strided<std::int64_t, double>(Device, int, const std::int64_t*, const std::int64_t*,
                                                 const std::int64_t*, double*, const std::int64_t*);
template void copy_strided<std::int64_t, std::int64_t>(Device, int, const std::int64_t*, const std::int64_t*,
                                                       const std::int64_t*, std::int64_t*,
                                                       const std::int64_t*);
template void copy_strided<std::uint8_t, float>(Device, int, const std::int64_t*, const std::uint8_t*,
                                                const std::int64_t*, float*, const std::int64_t*);
template void copy_strided<std::uint8_t, double>(Device, int, const std::int64_t*, const std::uint8_t*,
                                                 const std::int64_t*, double*, const std::int64_t*);

template void fill<float>(Device, std::int64_t, float, float*);
template void fill<double>(Device, std::int64_t, double, double*);
template void fill<std::int64_t>(Device, std::int64_t, std::int64_t, std::int64_t*);

}  // namespace kiln::kernels
