// Tests of the CUDA optimizer updates (kernels/optim_update/cuda_optim_update.cu): the per-tensor SGD and
// Adam/AdamW updates through dispatch with Device::cuda(), the multi-tensor *_update_many (SGD, Adam and
// the weights' moving average) over lists of 1 and of hundreds of tensors of odd sizes (more than one
// launch's table), each against the reference kernels run step by step on the same host data, float and
// double; and optim::Sgd / Adam / AdamW stepping parameters that live on the GPU against the same
// optimizers on the CPU.
//
// Tolerances: the kernels do the reference's double arithmetic and round each stored value to T once; nvcc
// fuses a * b + c into FMAs, a rounding in double, which can flip a float rounding, and three steps let such
// a flip feed the next step. float32: atol 1e-7 + rtol 1e-6 (a few float ulps); float64: atol 1e-14 + rtol
// 1e-12 (a few double ulps of the values and of the lr * update terms).
#include <doctest/doctest.h>

#include <cstdint>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "core/generator.hpp"
#include "core/tensor.hpp"
#include "kernels/optim_update/optim_update.hpp"
#include "optim/adam.hpp"
#include "optim/sgd.hpp"
#include "tests/support/cuda_testing.hpp"
#include "tests/support/fast_kernel_testing.hpp"
#include "tests/support/matches_reference.hpp"

namespace cuda_optim_update_cuda_test {

namespace {

using namespace kiln;
using kernels::AdamHyper;
using kernels::AdamSlice;
using kernels::AverageSlice;
using kernels::SgdHyper;
using kernels::SgdSlice;
using testing::have_gpu;
using testing::matches_reference;
using testing::random_values;
using testing::to_gpu;
using testing::to_host;
using testing::Tolerance;

template <typename T>
Tolerance tolerance() {
  return std::is_same_v<T, float> ? Tolerance{1e-7, 1e-6} : Tolerance{1e-14, 1e-12};
}

template <typename T>
void check_matches(const std::vector<T>& actual, const std::vector<T>& expected, const std::string& what) {
  REQUIRE(actual.size() == expected.size());
  const auto report = matches_reference(actual.data(), expected.data(),
                                        static_cast<std::int64_t>(actual.size()), tolerance<T>());
  CHECK_MESSAGE(report.ok, what, ": ", report.message);
}

// The buffer on the GPU, or no tensor (and a null pointer) for an empty one.
template <typename T>
Tensor gpu_copy(const std::vector<T>& values) {
  return values.empty() ? Tensor() : to_gpu(values);
}
template <typename T>
T* pointer(const Tensor& t) {
  return t.defined() ? t.data<T>() : nullptr;
}

// One tensor's buffers twice: on the host for the reference, and on the GPU.
template <typename T>
struct Buffers {
  std::vector<T> param, grad, state_a,
      state_b;  // SGD: state_a is the momentum buffer; Adam: exp_avg, exp_avg_sq
  Tensor param_gpu, grad_gpu, state_a_gpu, state_b_gpu;

  Buffers(std::int64_t n, std::uint64_t seed)
      : param(random_values<T>(n, seed)),
        grad(random_values<T>(n, seed + 1)),
        state_a(random_values<T>(n, seed + 2)),
        state_b(random_values<T>(n, seed + 3, 0.0f, 0.5f)),  // exp_avg_sq is never negative
        param_gpu(gpu_copy(param)),
        grad_gpu(gpu_copy(grad)),
        state_a_gpu(gpu_copy(state_a)),
        state_b_gpu(gpu_copy(state_b)) {}

  std::int64_t n() const { return static_cast<std::int64_t>(param.size()); }
  // A new gradient for the next step, on both sides.
  void next_grad(std::uint64_t seed) {
    grad = random_values<T>(n(), seed);
    grad_gpu = gpu_copy(grad);
  }
  SgdSlice<T> sgd_gpu() const {
    return {pointer<T>(param_gpu), pointer<T>(grad_gpu), pointer<T>(state_a_gpu), n()};
  }
  AdamSlice<T> adam_gpu() const {
    return {pointer<T>(param_gpu), pointer<T>(grad_gpu), pointer<T>(state_a_gpu), pointer<T>(state_b_gpu),
            n()};
  }
  void reference_sgd(const SgdHyper& h) {
    kernels::reference::sgd_update(n(), param.data(), grad.data(),
                                   h.momentum != 0.0 ? state_a.data() : nullptr, h);
  }
  void reference_adam(const AdamHyper& h) {
    kernels::reference::adam_update(n(), param.data(), grad.data(), state_a.data(), state_b.data(), h);
  }
  void check(bool with_states, bool with_second_state, const std::string& what) const {
    if (n() == 0) return;
    check_matches(to_host<T>(param_gpu), param, what + " param");
    if (with_states) check_matches(to_host<T>(state_a_gpu), state_a, what + " first state");
    if (with_second_state) check_matches(to_host<T>(state_b_gpu), state_b, what + " second state");
  }
};

struct NamedSgd {
  const char* name;
  SgdHyper hyper;
};

std::vector<NamedSgd> sgd_variants() {
  return {{"plain", {.lr = 0.1}},
          {"weight decay", {.lr = 0.05, .weight_decay = 0.1}},
          {"momentum", {.lr = 0.05, .momentum = 0.9}},
          {"momentum, dampening, weight decay",
           {.lr = 0.05, .momentum = 0.8, .dampening = 0.3, .weight_decay = 1e-2}},
          {"nesterov", {.lr = 0.05, .momentum = 0.9, .weight_decay = 1e-3, .nesterov = true}}};
}

struct NamedAdam {
  const char* name;
  AdamHyper hyper;
};

std::vector<NamedAdam> adam_variants() {
  return {{"adam", {.lr = 0.01}},
          {"adam with weight decay",
           {.lr = 0.01, .beta1 = 0.8, .beta2 = 0.99, .eps = 1e-6, .weight_decay = 0.05}},
          {"adamw", {.lr = 0.01, .weight_decay = 0.05, .decoupled_weight_decay = true}}};
}

constexpr int kSteps = 3;

}  // namespace

TEST_CASE_TEMPLATE("cuda: sgd_update (momentum, nesterov, first_step, weight decay) matches the reference", T,
                   float, double) {
  if (!have_gpu()) return;
  for (const std::int64_t n : {1, 255, 100003}) {
    for (const NamedSgd& variant : sgd_variants()) {
      INFO("n ", n, ", ", variant.name);
      Buffers<T> buffers(n, 7);
      for (int step = 0; step < kSteps; ++step) {
        SgdHyper h = variant.hyper;
        h.first_step = step == 0 && h.momentum != 0.0;  // the first step writes the buffer without reading it
        if (step > 0) buffers.next_grad(100 + step);
        const SgdSlice<T> gpu = buffers.sgd_gpu();
        kernels::sgd_update<T>(Device::cuda(), n, gpu.param, gpu.grad,
                               h.momentum != 0.0 ? gpu.momentum_buffer : nullptr, h);
        buffers.reference_sgd(h);
        buffers.check(h.momentum != 0.0, false, "step " + std::to_string(step));
      }
    }
  }
}

TEST_CASE_TEMPLATE("cuda: adam_update (Adam, Adam with L2, AdamW) matches the reference", T, float, double) {
  if (!have_gpu()) return;
  for (const std::int64_t n : {1, 255, 100003}) {
    for (const NamedAdam& variant : adam_variants()) {
      INFO("n ", n, ", ", variant.name);
      Buffers<T> buffers(n, 9);
      for (int step = 0; step < kSteps; ++step) {
        AdamHyper h = variant.hyper;
        h.step = step + 1;
        if (step > 0) buffers.next_grad(200 + step);
        const AdamSlice<T> gpu = buffers.adam_gpu();
        kernels::adam_update<T>(Device::cuda(), n, gpu.param, gpu.grad, gpu.exp_avg, gpu.exp_avg_sq, h);
        buffers.reference_adam(h);
        buffers.check(true, true, "step " + std::to_string(step));
      }
    }
  }
}

namespace {

// Sizes of `count` tensors: odd ones from 1 to a few thousand, with empty tensors, one of exactly one
// chunk of the kernel (4096), and one of many chunks among them.
std::vector<std::int64_t> odd_sizes(int count) {
  std::vector<std::int64_t> sizes;
  for (int t = 0; t < count; ++t) sizes.push_back((static_cast<std::int64_t>(t) * 7919 + 13) % 5003);
  if (count > 3) {
    sizes[1] = 0;
    sizes[2] = 4096;
    sizes[3] = 100003;
    sizes[count - 1] = 0;
  }
  return sizes;
}

template <typename T>
std::vector<Buffers<T>> make_tensors(const std::vector<std::int64_t>& sizes, std::uint64_t seed) {
  std::vector<Buffers<T>> tensors;
  tensors.reserve(sizes.size());
  for (std::size_t t = 0; t < sizes.size(); ++t) tensors.emplace_back(sizes[t], seed + 10 * t);
  return tensors;
}

}  // namespace

TEST_CASE_TEMPLATE("cuda: sgd_update_many over 1 and 700 tensors matches the per-tensor reference", T, float,
                   double) {
  if (!have_gpu()) return;
  for (const int count : {1, 700}) {  // 700: more than one launch's table holds
    for (const NamedSgd& variant : sgd_variants()) {
      INFO(count, " tensors, ", variant.name);
      std::vector<Buffers<T>> tensors = make_tensors<T>(odd_sizes(count), 3);
      for (int step = 0; step < kSteps; ++step) {
        SgdHyper h = variant.hyper;
        h.first_step = step == 0 && h.momentum != 0.0;
        std::vector<SgdSlice<T>> slices;
        for (Buffers<T>& tensor : tensors) {
          if (step > 0) tensor.next_grad(300 + step);
          SgdSlice<T> slice = tensor.sgd_gpu();
          if (h.momentum == 0.0) slice.momentum_buffer = nullptr;
          slices.push_back(slice);
        }
        kernels::sgd_update_many<T>(Device::cuda(), h, slices);
        for (Buffers<T>& tensor : tensors) tensor.reference_sgd(h);
        for (std::size_t t = 0; t < tensors.size(); ++t) {
          tensors[t].check(h.momentum != 0.0, false,
                           "step " + std::to_string(step) + ", tensor " + std::to_string(t));
        }
      }
    }
  }
}

TEST_CASE_TEMPLATE("cuda: adam_update_many over 1 and 700 tensors matches the per-tensor reference", T, float,
                   double) {
  if (!have_gpu()) return;
  for (const int count : {1, 700}) {
    for (const NamedAdam& variant : adam_variants()) {
      INFO(count, " tensors, ", variant.name);
      std::vector<Buffers<T>> tensors = make_tensors<T>(odd_sizes(count), 5);
      for (int step = 0; step < kSteps; ++step) {
        AdamHyper h = variant.hyper;
        h.step = step + 1;
        std::vector<AdamSlice<T>> slices;
        for (Buffers<T>& tensor : tensors) {
          if (step > 0) tensor.next_grad(400 + step);
          slices.push_back(tensor.adam_gpu());
        }
        kernels::adam_update_many<T>(Device::cuda(), h, slices);
        for (Buffers<T>& tensor : tensors) tensor.reference_adam(h);
        for (std::size_t t = 0; t < tensors.size(); ++t) {
          tensors[t].check(true, true, "step " + std::to_string(step) + ", tensor " + std::to_string(t));
        }
      }
    }
  }
}

TEST_CASE_TEMPLATE("cuda: average_update_many over 1 and 700 tensors matches the per-tensor reference", T,
                   float, double) {
  if (!have_gpu()) return;
  for (const int count : {1, 700}) {
    for (const double decay : {0.0, 0.9, 0.9999}) {
      INFO(count, " tensors, decay ", decay);
      // param is the average, grad the weight it follows (a new one each step).
      std::vector<Buffers<T>> tensors = make_tensors<T>(odd_sizes(count), 7);
      for (int step = 0; step < kSteps; ++step) {
        std::vector<AverageSlice<T>> slices;
        for (Buffers<T>& tensor : tensors) {
          if (step > 0) tensor.next_grad(500 + step);
          slices.push_back({pointer<T>(tensor.param_gpu), pointer<T>(tensor.grad_gpu), tensor.n()});
        }
        kernels::average_update_many<T>(Device::cuda(), decay, slices);
        for (Buffers<T>& tensor : tensors) {
          kernels::reference::average_update(tensor.n(), tensor.param.data(), tensor.grad.data(), decay);
        }
        for (std::size_t t = 0; t < tensors.size(); ++t) {
          tensors[t].check(false, false, "step " + std::to_string(step) + ", tensor " + std::to_string(t));
        }
      }
    }
  }
}

TEST_CASE("cuda: an empty list, and a list of empty tensors, launch nothing") {
  if (!have_gpu()) return;
  CHECK_NOTHROW(kernels::sgd_update_many<float>(Device::cuda(), {.lr = 0.1}, {}));
  const std::vector<AdamSlice<double>> empty_tensors(3);  // null pointers, n == 0
  CHECK_NOTHROW(kernels::adam_update_many<double>(Device::cuda(), {.lr = 0.1}, empty_tensors));
  CHECK_NOTHROW(kernels::average_update_many<float>(Device::cuda(), 0.5, {}));
  kiln::cuda::synchronize(0);
}

// ---- optimizers on CUDA parameters ---------------------------------------------------------------------

namespace {

// The same parameters twice, on the CPU and on the GPU, with the same gradients each step. A float64
// parameter puts a second dtype in the groups.
struct TwinParameters {
  std::vector<NamedTensor> cpu, gpu;

  TwinParameters() {
    Generator generator(71);
    const std::vector<std::pair<Shape, DType>> shapes = {
        {{3, 5}, DType::Float32}, {{7}, DType::Float32}, {{2, 3, 3, 3}, DType::Float32},
        {{4}, DType::Float64},    {{1}, DType::Float32}, {{33, 65}, DType::Float32}};
    for (std::size_t p = 0; p < shapes.size(); ++p) {
      Tensor value = Tensor::randn(shapes[p].first, shapes[p].second, &generator);
      Tensor on_gpu = value.to(Device::cuda());
      const std::string name = "parameter" + std::to_string(p);
      cpu.emplace_back(name, value.set_requires_grad());
      gpu.emplace_back(name, on_gpu.set_requires_grad());
    }
  }

  // Gives every parameter but `skipped` (an index, or -1) a new random gradient, the same on both sides.
  void set_grads(std::uint64_t seed, int skipped) {
    Generator generator(seed);
    for (std::size_t p = 0; p < cpu.size(); ++p) {
      Tensor& host = cpu[p].second;
      Tensor& device = gpu[p].second;
      if (static_cast<int>(p) == skipped) {
        host.set_grad(Tensor());
        device.set_grad(Tensor());
        continue;
      }
      const Tensor grad = Tensor::randn(host.shape(), host.dtype(), &generator);
      host.set_grad(grad);
      device.set_grad(grad.to(Device::cuda()));
    }
  }
};

void check_same(const std::vector<NamedTensor>& gpu, const std::vector<NamedTensor>& cpu, const char* what) {
  REQUIRE(gpu.size() == cpu.size());
  for (std::size_t i = 0; i < gpu.size(); ++i) {
    INFO(what, " ", cpu[i].first);
    CHECK(gpu[i].first == cpu[i].first);
    CHECK(gpu[i].second.device() == Device::cuda());
    const Tolerance tolerance =
        gpu[i].second.dtype() == DType::Float32 ? Tolerance{1e-7, 1e-6} : Tolerance{1e-14, 1e-12};
    const auto report = matches_reference(gpu[i].second.to(Device::cpu()), cpu[i].second, tolerance);
    CHECK_MESSAGE(report.ok, report.message);
  }
}

// Three steps of `make(parameters)` on both sides; at step 2 parameter 1 has no gradient, so its step
// count (Adam) or first step (SGD) falls behind the others', and the groups split.
template <class Make>
void step_both(Make make) {
  TwinParameters twins;
  auto cpu_optimizer = make(twins.cpu);
  auto gpu_optimizer = make(twins.gpu);
  for (int step = 0; step < 3; ++step) {
    twins.set_grads(80 + step, step == 0 ? 1 : -1);
    cpu_optimizer.step();
    gpu_optimizer.step();
  }
  check_same(twins.gpu, twins.cpu, "parameter");
  check_same(gpu_optimizer.state_tensors(), cpu_optimizer.state_tensors(), "state");
  CHECK(gpu_optimizer.state_json() == cpu_optimizer.state_json());
}

}  // namespace

TEST_CASE("cuda: optim::Sgd steps CUDA parameters as it steps CPU ones") {
  if (!have_gpu()) return;
  step_both([](const std::vector<NamedTensor>& parameters) {
    return optim::Sgd(parameters, {.lr = 0.05, .momentum = 0.9, .weight_decay = 1e-2, .nesterov = true});
  });
  step_both([](const std::vector<NamedTensor>& parameters) { return optim::Sgd(parameters, {.lr = 0.1}); });
}

TEST_CASE("cuda: optim::Adam and AdamW step CUDA parameters as they step CPU ones") {
  if (!have_gpu()) return;
  step_both([](const std::vector<NamedTensor>& parameters) {
    return optim::Adam(parameters, {.lr = 0.01, .weight_decay = 1e-2});
  });
  step_both(
      [](const std::vector<NamedTensor>& parameters) { return optim::AdamW(parameters, {.lr = 0.01}); });
}

}  // namespace cuda_optim_update_cuda_test
