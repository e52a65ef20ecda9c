// The conv2d bias kernels (bias_kernel.hpp) at avx512 width.
#include "kernels/conv2d/avx512_vector.hpp"
#include "kernels/conv2d/bias_kernel.hpp"
#include "kernels/conv2d/conv2d.hpp"

namespace kiln::kernels::avx512 {

void conv2d_add_bias(const Conv2dGeometry& g, const float* bias, float* y) {
  conv2d_bias::add_bias<FloatVector>(g, bias, y);
}
void conv2d_backward_bias(const Conv2dGeometry& g, const float* gy, float* gb) {
  conv2d_bias::backward_bias<FloatVector>(g, gy, gb);
}

}  // namespace kiln::kernels::avx512
