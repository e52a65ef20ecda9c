#include "optim/clip.hpp"

#include <cmath>
#include <optional>
#include <span>

#include "core/autograd.hpp"
#include "core/error.hpp"
#include "core/ops.hpp"
#include "kernels/grad_clip/grad_clip.hpp"

namespace kiln::optim {

Tensor clip_grad_norm(const std::vector<Tensor>& parameters, double max_norm) {
  KILN_CHECK(std::isfinite(max_norm) && max_norm > 0.0, "clip_grad_norm: max_norm ", max_norm,
             " should be a finite number > 0");
  NoGradGuard no_grad;
  std::vector<kernels::ClipSlice<float>> floats;
  std::vector<kernels::ClipSlice<double>> doubles;
  std::optional<Device> device;
  for (const Tensor& parameter : parameters) {
    Tensor grad = parameter.grad();
    if (!grad.defined()) continue;
    KILN_CHECK(grad.dtype() == DType::Float32 || grad.dtype() == DType::Float64,
               "clip_grad_norm: a gradient is ", grad.describe(), " (expected float32 or float64)");
    if (!device) device = grad.device();
    KILN_CHECK(grad.device() == *device, "clip_grad_norm: gradients on ", device->str(), " and on ",
               grad.device().str(), " (expected one device)");
    if (!grad.is_contiguous()) {  // the kernels scale a dense buffer in place: make the gradient one
      grad = grad.contiguous();
      Tensor(parameter).set_grad(grad);
    }
    if (grad.dtype() == DType::Float32) {
      floats.push_back({grad.data<float>(), grad.numel()});
    } else {
      doubles.push_back({grad.data<double>(), grad.numel()});
    }
  }
  Tensor sum_of_squares = Tensor::zeros({}, DType::Float64, device.value_or(Device::cpu()));
  if (!device) return sum_of_squares;
  auto* sum = sum_of_squares.data<double>();
  kernels::add_sum_of_squares_many<float>(*device, floats, sum);
  kernels::add_sum_of_squares_many<double>(*device, doubles, sum);
  kernels::clip_to_norm_many<float>(*device, floats, sum, max_norm);
  kernels::clip_to_norm_many<double>(*device, doubles, sum, max_norm);
  return sqrt(sum_of_squares);
}

}  // namespace kiln::optim
