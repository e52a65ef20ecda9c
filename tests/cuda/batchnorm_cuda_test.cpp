// Tests of the CUDA batch-normalization kernels (kernels/batchnorm/cuda_batchnorm.cu), called through the
// dispatch functions with Device::cuda(), against the reference kernels on the same host data, float,
// double and bfloat16 (with float per-channel tensors), plain and with the fused ReLU or hard swish (forward
// and backward):
// train mode (y, the saved statistics, the running-statistics update, gx, ggamma, gbeta) and eval mode, over
// odd shapes (one value per channel [1, 3, 1, 1], batch 1, 1x1 planes, channels 3/17/33, planes that are not
// multiples of 32, channels of several slices, a channel mean far from zero, [128, 16, 32, 32]); NaN and
// infinity propagation; every case again on channels-last tensors (cuda_batchnorm_channels_last.cu); and the
// Tensor-level ops (raw::batchnorm2d_forward / backward) on CUDA tensors against the same ops on the CPU.
// Each test skips without a GPU.
//
// Tolerances: Tolerance::float32() / float64(), the precision's own rounding, for every output. The CUDA
// kernels compute every element's formula in double and round once, as the reference does; their
// per-channel sums are in double too, added in another order (per-thread, shuffle tree, slices), and the
// variance comes from shifted sums in one pass instead of the reference's two, which in double moves the
// statistics by a few units in the 15th digit: far inside float32's tolerance, and inside float64's
// (atol 1e-12, rtol 1e-10) for these shapes and means, except train mode's y near a large mean, where the
// reference's own sum is the looser one (train_y_tolerance). bfloat16 activations: the same double
// arithmetic, rounded once to bfloat16, can land on the other side of a rounding boundary where the two
// double results differ in the last digits: 1 bfloat16 ulp at most, inside Tolerance::bfloat16() ({1e-2,
// 1e-2}); their float per-channel results are held to Tolerance::float32().
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

#include "core/generator.hpp"
#include "core/ops.hpp"
#include "core/raw.hpp"
#include "core/tensor.hpp"
#include "kernels/batchnorm/batchnorm.hpp"
#include "tests/support/cuda_testing.hpp"
#include "tests/support/matches_reference.hpp"

namespace cuda_batchnorm_cuda_test {

namespace {

using namespace kiln;
using kernels::BatchNorm2dGeometry;
using testing::empty_gpu;
using testing::have_gpu;
using testing::matches_reference;
using testing::to_gpu;
using testing::to_host;
using testing::Tolerance;
namespace ref = kernels::reference;

std::int64_t numel(const BatchNorm2dGeometry& g) { return g.batch * g.channels * g.height * g.width; }

template <typename T>
std::vector<T> values_around(std::int64_t count, std::uint64_t seed, double offset = 0.0) {
  std::mt19937_64 engine(seed);
  std::uniform_real_distribution<double> uniform(-1.0, 1.0);
  std::vector<T> values(static_cast<std::size_t>(count));
  for (T& v : values) v = static_cast<T>(offset + uniform(engine));
  return values;
}

struct Case {
  BatchNorm2dGeometry g;
  double offset;  // added to x: a channel mean far from zero tests the shifted one-pass variance
};

std::string describe(const Case& c) {
  std::ostringstream out;
  out << "[" << c.g.batch << ", " << c.g.channels << ", " << c.g.height << ", " << c.g.width << "]"
      << (c.g.fused_relu ? " fused relu" : "")
      << (c.g.fused_relu && !std::isinf(c.g.relu_upper) ? " capped" : "")
      << (c.g.fused_hardswish ? " fused hardswish" : "") << " offset " << c.offset;
  return out.str();
}

// The kernels cut a channel of m values into slices of at most 8192 (cuda_batchnorm.cu); the cases cover
// one slice, several slices, and 1x1 planes across slices.
std::vector<Case> plain_cases() {
  return {
      {{.batch = 1, .channels = 3, .height = 1, .width = 1}, 0.0},       // one value per channel
      {{.batch = 1, .channels = 3, .height = 2, .width = 3}, 0.0},       // batch 1
      {{.batch = 2, .channels = 5, .height = 1, .width = 1}, 0.0},       // 1x1 planes
      {{.batch = 3, .channels = 17, .height = 5, .width = 7}, 3.0},      // 35-value planes
      {{.batch = 7, .channels = 33, .height = 3, .width = 3}, 0.0},      // 33 channels
      {{.batch = 3, .channels = 3, .height = 33, .width = 35}, 10.0},    // planes longer than a block's step
      {{.batch = 16, .channels = 3, .height = 40, .width = 41}, 0.0},    // 4 slices per channel
      {{.batch = 20000, .channels = 2, .height = 1, .width = 1}, 5.0},   // 3 slices of 1x1 planes
      {{.batch = 2, .channels = 2, .height = 300, .width = 47}, 100.0},  // mean 100 next to spread 0.6
      {{.batch = 128, .channels = 16, .height = 32, .width = 32}, 0.0},  // 16 slices per channel
  };
}

// Each plain case, then each again with the ReLU fused (about half of y is then clamped to zero, so the
// backward's mask matters), and with it capped at 0.5 (ReLU6's kind of cap, low enough that a good share of
// y is clamped to it; exact in bfloat16); then the hard swish fused on the cases up to several slices per
// channel (its gradient is recomputed from x per element, so the larger shapes' slicing adds nothing).
std::vector<Case> all_cases() {
  std::vector<Case> cases = plain_cases();
  for (const float cap : {std::numeric_limits<float>::infinity(), 0.5f}) {
    for (Case c : plain_cases()) {
      c.g.fused_relu = true;
      c.g.relu_upper = cap;
      cases.push_back(c);
    }
  }
  for (Case c : plain_cases()) {
    if (numel(c.g) > 100000) continue;
    c.g.fused_hardswish = true;
    cases.push_back(c);
  }
  return cases;
}

// Tolerance::of<T>() for float and double (per-channel values of bfloat16 activations are float);
// Tolerance::bfloat16() for bfloat16 activations (see the top).
template <typename T>
Tolerance tolerance() {
  if constexpr (std::is_same_v<T, bfloat16>) return Tolerance::bfloat16();
  return Tolerance::of<T>();
}

template <typename T>
void check(const Tensor& actual_gpu, const std::vector<T>& expected, const char* what,
           const Tolerance& allowed = tolerance<T>()) {
  const std::vector<T> actual = to_host<T>(actual_gpu);
  REQUIRE(actual.size() == expected.size());
  const auto report =
      matches_reference(actual.data(), expected.data(), static_cast<std::int64_t>(actual.size()), allowed);
  const std::string message = std::string(what) + ": " + report.message;  // CHECK_MESSAGE takes one operand
  CHECK_MESSAGE(report.ok, message);
}

// The tolerance of train mode's y. In float64 the reference is the looser side: its mean is one sequential
// double sum over the channel's m values, off by up to about m 2^-53 |offset| when they sit near `offset`
// (the kernels' per-thread sums and tree are closer), and y inherits that error times invstd * gamma, below
// 4 here. At offset 100 and m = 28,200 that came to 1.7e-12 on the emulator, past float64's atol of 1e-12.
template <typename T>
Tolerance train_y_tolerance(const Case& c) {
  Tolerance allowed = tolerance<T>();
  if constexpr (std::is_same_v<T, double>) {
    const double m = static_cast<double>(c.g.batch * c.g.height * c.g.width);
    allowed.atol += 4.0 * m * 0x1p-53 * std::abs(c.offset);
  }
  return allowed;
}

// Forward then backward in train mode, on the GPU and with the reference, from the same inputs. The GPU
// backward reads the reference forward's saved statistics (and, fused, its y), so its check isolates the
// backward kernels.
template <typename T>
void check_train(const Case& c, const std::vector<T>& x, std::uint64_t seed) {
  const BatchNorm2dGeometry& g = c.g;
  const std::int64_t n = numel(g), channels = g.channels;
  using P = opmath_t<T>;  // the per-channel type
  const std::vector<T> gy = values_around<T>(n, seed + 1);
  const std::vector<P> gamma = values_around<P>(channels, seed + 2, 1.0),
                       beta = values_around<P>(channels, seed + 3);
  const P eps = P(1e-5), momentum = P(0.1);
  const auto size = static_cast<std::size_t>(n), csize = static_cast<std::size_t>(channels);

  std::vector<T> y(size);
  std::vector<P> save_mean(csize), save_invstd(csize), running_mean(csize, P(0.5)), running_var(csize, P(2));
  ref::batchnorm2d_forward_train(g, x.data(), gamma.data(), beta.data(), eps, momentum, running_mean.data(),
                                 running_var.data(), y.data(), save_mean.data(), save_invstd.data());
  std::vector<T> gx(size);
  std::vector<P> ggamma(csize), gbeta(csize);
  ref::batchnorm2d_backward_train(g, x.data(), gy.data(), y.data(), gamma.data(), beta.data(),
                                  save_mean.data(), save_invstd.data(), gx.data(), ggamma.data(),
                                  gbeta.data());

  const Tensor x_gpu = to_gpu(x), gy_gpu = to_gpu(gy), gamma_gpu = to_gpu(gamma), beta_gpu = to_gpu(beta);
  const Tensor running_mean_gpu = to_gpu(std::vector<P>(csize, P(0.5)));
  const Tensor running_var_gpu = to_gpu(std::vector<P>(csize, P(2)));
  const Tensor y_gpu = empty_gpu<T>(n), save_mean_gpu = empty_gpu<P>(channels),
               save_invstd_gpu = empty_gpu<P>(channels);
  kernels::batchnorm2d_forward_train(Device::cuda(), g, x_gpu.data<T>(), gamma_gpu.data<P>(),
                                     beta_gpu.data<P>(), eps, momentum, running_mean_gpu.data<P>(),
                                     running_var_gpu.data<P>(), y_gpu.data<T>(), save_mean_gpu.data<P>(),
                                     save_invstd_gpu.data<P>());
  check(y_gpu, y, "y", train_y_tolerance<T>(c));
  check(save_mean_gpu, save_mean, "save_mean");
  check(save_invstd_gpu, save_invstd, "save_invstd");
  check(running_mean_gpu, running_mean, "running_mean");
  check(running_var_gpu, running_var, "running_var");

  const Tensor reference_y = to_gpu(y), reference_mean = to_gpu(save_mean),
               reference_invstd = to_gpu(save_invstd);
  const Tensor gx_gpu = empty_gpu<T>(n), ggamma_gpu = empty_gpu<P>(channels),
               gbeta_gpu = empty_gpu<P>(channels);
  kernels::batchnorm2d_backward_train(
      Device::cuda(), g, x_gpu.data<T>(), gy_gpu.data<T>(), g.fused_relu ? reference_y.data<T>() : nullptr,
      gamma_gpu.data<P>(), beta_gpu.data<P>(), reference_mean.data<P>(), reference_invstd.data<P>(),
      gx_gpu.data<T>(), ggamma_gpu.data<P>(), gbeta_gpu.data<P>());
  check(gx_gpu, gx, "gx");
  check(ggamma_gpu, ggamma, "ggamma");
  check(gbeta_gpu, gbeta, "gbeta");

  // Without running statistics (null pointers) the rest is unchanged.
  const Tensor y2_gpu = empty_gpu<T>(n), mean2_gpu = empty_gpu<P>(channels),
               invstd2_gpu = empty_gpu<P>(channels);
  kernels::batchnorm2d_forward_train(Device::cuda(), g, x_gpu.data<T>(), gamma_gpu.data<P>(),
                                     beta_gpu.data<P>(), eps, momentum, static_cast<P*>(nullptr),
                                     static_cast<P*>(nullptr), y2_gpu.data<T>(), mean2_gpu.data<P>(),
                                     invstd2_gpu.data<P>());
  check(y2_gpu, y, "y without running statistics", train_y_tolerance<T>(c));
  check(invstd2_gpu, save_invstd, "save_invstd without running statistics");
}

template <typename T>
void check_eval(const Case& c, const std::vector<T>& x, std::uint64_t seed) {
  const BatchNorm2dGeometry& g = c.g;
  const std::int64_t n = numel(g), channels = g.channels;
  using P = opmath_t<T>;  // the per-channel type
  const std::vector<T> gy = values_around<T>(n, seed + 1);
  const std::vector<P> gamma = values_around<P>(channels, seed + 2, 1.0),
                       beta = values_around<P>(channels, seed + 3);
  const std::vector<P> running_mean = values_around<P>(channels, seed + 4, c.offset);
  const std::vector<P> running_var = values_around<P>(channels, seed + 5, 2.0);
  const P eps = P(1e-5);
  const auto size = static_cast<std::size_t>(n), csize = static_cast<std::size_t>(channels);

  std::vector<T> y(size), gx(size);
  std::vector<P> ggamma(csize), gbeta(csize);
  ref::batchnorm2d_forward_eval(g, x.data(), gamma.data(), beta.data(), running_mean.data(),
                                running_var.data(), eps, y.data());
  ref::batchnorm2d_backward_eval(g, x.data(), gy.data(), y.data(), gamma.data(), beta.data(),
                                 running_mean.data(), running_var.data(), eps, gx.data(), ggamma.data(),
                                 gbeta.data());

  const Tensor x_gpu = to_gpu(x), gy_gpu = to_gpu(gy), gamma_gpu = to_gpu(gamma), beta_gpu = to_gpu(beta);
  const Tensor running_mean_gpu = to_gpu(running_mean), running_var_gpu = to_gpu(running_var);
  const Tensor y_gpu = empty_gpu<T>(n);
  kernels::batchnorm2d_forward_eval(Device::cuda(), g, x_gpu.data<T>(), gamma_gpu.data<P>(),
                                    beta_gpu.data<P>(), running_mean_gpu.data<P>(), running_var_gpu.data<P>(),
                                    eps, y_gpu.data<T>());
  check(y_gpu, y, "eval y");

  const Tensor reference_y = to_gpu(y);
  const Tensor gx_gpu = empty_gpu<T>(n), ggamma_gpu = empty_gpu<P>(channels),
               gbeta_gpu = empty_gpu<P>(channels);
  kernels::batchnorm2d_backward_eval(
      Device::cuda(), g, x_gpu.data<T>(), gy_gpu.data<T>(), g.fused_relu ? reference_y.data<T>() : nullptr,
      gamma_gpu.data<P>(), beta_gpu.data<P>(), running_mean_gpu.data<P>(), running_var_gpu.data<P>(), eps,
      gx_gpu.data<T>(), ggamma_gpu.data<P>(), gbeta_gpu.data<P>());
  check(gx_gpu, gx, "eval gx");
  check(ggamma_gpu, ggamma, "eval ggamma");
  check(gbeta_gpu, gbeta, "eval gbeta");
}

}  // namespace

TEST_CASE("cuda: batchnorm2d train forward and backward match the reference, plain and fused ReLU") {
  if (!have_gpu()) return;
  std::uint64_t seed = 1;
  for (const Case& c : all_cases()) {
    INFO(describe(c));
    check_train<float>(c, values_around<float>(numel(c.g), seed, c.offset), seed + 10);
    check_train<double>(c, values_around<double>(numel(c.g), seed, c.offset), seed + 10);
    seed += 20;
  }
}

// A channel of more slices than a block has threads (263 slices of 8192 values): the kernels that merge a
// channel's partial sums (cuda_batchnorm.cu: channel_totals) then add several per thread.
TEST_CASE("cuda: batchnorm2d train over more slices per channel than a block has threads") {
  if (!have_gpu()) return;
  const Case c{{.batch = 2100, .channels = 1, .height = 32, .width = 32}, 1.0};
  INFO(describe(c));
  check_train<float>(c, values_around<float>(numel(c.g), 5, c.offset), 15);
}

TEST_CASE("cuda: batchnorm2d eval forward and backward match the reference, plain and fused ReLU") {
  if (!have_gpu()) return;
  std::uint64_t seed = 1000;
  for (const Case& c : all_cases()) {
    INFO(describe(c));
    check_eval<float>(c, values_around<float>(numel(c.g), seed, c.offset), seed + 10);
    check_eval<double>(c, values_around<double>(numel(c.g), seed, c.offset), seed + 10);
    seed += 20;
  }
}

TEST_CASE("cuda: batchnorm2d propagates NaN and infinity through a channel's statistics as the reference") {
  if (!have_gpu()) return;
  // Channel 0 holds a NaN (its statistics and every y are NaN), channel 1 is finite, channel 2 holds +inf at
  // x[0, 2, 0, 0], the value the one-pass statistics are shifted by (the mean is then inf, the variance
  // NaN), channel 3 holds +inf elsewhere; with and without the fused ReLU (relu keeps a NaN).
  for (const bool fused_relu : {false, true}) {
    const Case c{{.batch = 2, .channels = 4, .height = 4, .width = 5, .fused_relu = fused_relu}, 0.0};
    INFO(describe(c));
    std::vector<float> x = values_around<float>(numel(c.g), 77);
    const std::int64_t plane = c.g.height * c.g.width;
    x[static_cast<std::size_t>(0 * plane + 7)] = std::numeric_limits<float>::quiet_NaN();  // n 0, c 0
    x[static_cast<std::size_t>(2 * plane)] = std::numeric_limits<float>::infinity();       // n 0, c 2, first
    x[static_cast<std::size_t>((4 + 3) * plane + 3)] = std::numeric_limits<float>::infinity();  // n 1, c 3
    check_train<float>(c, x, 78);
    check_eval<float>(c, x, 79);
  }
}

// Channels-last tensors, [N, H, W, C] (cuda_batchnorm_channels_last.cu: blocks over groups of up to 32
// channels and slices of rows): every case again, the reference reading the same layout.
TEST_CASE("cuda: channels-last batchnorm2d train and eval match the reference, every precision") {
  if (!have_gpu()) return;
  std::vector<Case> cases = all_cases();
  cases.push_back({{.batch = 4, .channels = 72, .height = 5, .width = 3}, 2.0});  // groups of 32, 32 and 8
  std::uint64_t seed = 3000;
  for (Case c : cases) {
    c.g.channels_last = true;
    INFO(describe(c), " channels-last");
    check_train<float>(c, values_around<float>(numel(c.g), seed, c.offset), seed + 10);
    check_eval<float>(c, values_around<float>(numel(c.g), seed, c.offset), seed + 10);
    check_train<double>(c, values_around<double>(numel(c.g), seed, c.offset), seed + 10);
    check_train<bfloat16>(c, values_around<bfloat16>(numel(c.g), seed, c.offset), seed + 10);
    check_eval<bfloat16>(c, values_around<bfloat16>(numel(c.g), seed, c.offset), seed + 10);
    seed += 20;
  }
}

TEST_CASE("cuda: channels-last batchnorm2d propagates NaN and infinity as the reference") {
  if (!have_gpu()) return;
  // As the NCHW case above, in [N, H, W, C]: channel 0 holds a NaN, channel 2 holds +inf at x[0, 0, 0, 2],
  // the value its statistics are shifted by, channel 3 holds +inf elsewhere.
  for (const bool fused_relu : {false, true}) {
    const Case c{
        {.batch = 2, .channels = 4, .height = 4, .width = 5, .fused_relu = fused_relu, .channels_last = true},
        0.0};
    INFO(describe(c), " channels-last");
    std::vector<float> x = values_around<float>(numel(c.g), 87);
    x[static_cast<std::size_t>(7 * 4 + 0)] = std::numeric_limits<float>::quiet_NaN();  // row 7, c 0
    x[2] = std::numeric_limits<float>::infinity();                                     // row 0, c 2
    x[static_cast<std::size_t>(23 * 4 + 3)] = std::numeric_limits<float>::infinity();  // row 23, c 3
    check_train<float>(c, x, 88);
    check_eval<float>(c, x, 89);
  }
}

TEST_CASE("cuda: the Tensor-level batchnorm2d on CUDA tensors matches the same op on the CPU") {
  if (!have_gpu()) return;
  // The CPU side runs the AVX kernels where the CPU has them, whose float partial sums (up to 1024 values
  // before going to double) are looser than the reference's: atol 1e-4 + rtol 1e-4 for everything, as in
  // tests/kernels/batchnorm_fast_test.cpp.
  constexpr Tolerance kCpuFloat{1e-4, 1e-4};
  Generator generator(11);
  const Tensor x = Tensor::randn({6, 17, 9, 7}, DType::Float32, &generator);
  const Tensor gy = Tensor::randn({6, 17, 9, 7}, DType::Float32, &generator);
  const Tensor gamma = Tensor::randn({17}, DType::Float32, &generator);
  const Tensor beta = Tensor::randn({17}, DType::Float32, &generator);
  auto on_gpu = [](const Tensor& t) { return t.to(Device::cuda()); };
  auto expect_close = [&](const Tensor& gpu, const Tensor& cpu, const char* what) {
    REQUIRE(gpu.device() == Device::cuda());
    const auto report = matches_reference(gpu.to(Device::cpu()), cpu, kCpuFloat);
    CHECK_MESSAGE(report.ok, what, ": ", report.message);
  };
  for (const bool training : {true, false}) {
    for (const bool fused_relu : {false, true}) {
      INFO((training ? "train" : "eval"), (fused_relu ? ", fused relu" : ""));
      const BatchNormOptions options{
          .training = training, .momentum = 0.1, .eps = 1e-5, .fused_relu = fused_relu};
      const Tensor running_mean = Tensor::full({17}, 0.25), running_var = Tensor::full({17}, 1.5);
      const Tensor running_mean_gpu = on_gpu(running_mean), running_var_gpu = on_gpu(running_var);

      const raw::BatchNormResult cpu =
          raw::batchnorm2d_forward(x, gamma, beta, running_mean, running_var, options);
      const raw::BatchNormResult gpu = raw::batchnorm2d_forward(on_gpu(x), on_gpu(gamma), on_gpu(beta),
                                                                running_mean_gpu, running_var_gpu, options);
      expect_close(gpu.output, cpu.output, "output");
      expect_close(running_mean_gpu, running_mean, "running_mean");
      expect_close(running_var_gpu, running_var, "running_var");
      if (training) {
        expect_close(gpu.save_mean, cpu.save_mean, "save_mean");
        expect_close(gpu.save_invstd, cpu.save_invstd, "save_invstd");
      }

      const raw::BatchNormGrads cpu_grads =
          raw::batchnorm2d_backward(gy, x, gamma, beta, cpu, running_mean, running_var, options);
      const raw::BatchNormGrads gpu_grads =
          raw::batchnorm2d_backward(on_gpu(gy), on_gpu(x), on_gpu(gamma), on_gpu(beta), gpu, running_mean_gpu,
                                    running_var_gpu, options);
      expect_close(gpu_grads.x, cpu_grads.x, "grad x");
      expect_close(gpu_grads.gamma, cpu_grads.gamma, "grad gamma");
      expect_close(gpu_grads.beta, cpu_grads.beta, "grad beta");
    }
  }
}

// A residual block's tail as one op, batch_norm2d(x) + residual with the ReLU after it (ResNet's) and without
// (MobileNetV2's), on CUDA tensors in either layout (the residual in the other one too), train and eval,
// forward and every gradient (x, the residual, gamma, beta) through autograd, against the same op on the CPU
// (AVX kernels: kCpuFloat as above).
TEST_CASE("cuda: batch_norm2d_add on CUDA tensors matches the CPU, either layout, with its gradients") {
  if (!have_gpu()) return;
  constexpr Tolerance kCpuFloat{1e-4, 1e-4};
  Generator generator(12);
  const Tensor x = Tensor::randn({5, 17, 6, 7}, DType::Float32, &generator);
  const Tensor residual = Tensor::randn({5, 17, 6, 7}, DType::Float32, &generator);
  const Tensor gy = Tensor::randn({5, 17, 6, 7}, DType::Float32, &generator);
  const Tensor gamma = Tensor::randn({17}, DType::Float32, &generator);
  const Tensor beta = Tensor::randn({17}, DType::Float32, &generator);
  const auto run = [&](Device device, bool channels_last, bool training, bool relu) {
    const auto leaf = [&](const Tensor& t, bool last) {
      const Tensor moved = t.to(device);
      return (last ? moved.channels_last() : moved).detach().set_requires_grad(true);
    };
    Tensor x_leaf = leaf(x, channels_last), residual_leaf = leaf(residual, !channels_last);
    Tensor gamma_leaf = leaf(gamma, false), beta_leaf = leaf(beta, false);
    const Tensor running_mean = Tensor::full({17}, 0.25).to(device),
                 running_var = Tensor::full({17}, 1.5).to(device);
    const Tensor y = batch_norm2d_add(x_leaf, residual_leaf, gamma_leaf, beta_leaf, running_mean, running_var,
                                      {.training = training, .fused_relu = relu});
    CHECK(y.is_channels_last() == channels_last);
    sum(y * gy.to(device)).backward();
    return std::vector<Tensor>{
        y,          x_leaf.grad(), residual_leaf.grad(), gamma_leaf.grad(), beta_leaf.grad(), running_mean,
        running_var};
  };
  const char* names[] = {"output",    "grad x",       "grad residual", "grad gamma",
                         "grad beta", "running_mean", "running_var"};
  for (const bool channels_last : {false, true}) {
    for (const bool training : {true, false}) {
      for (const bool relu : {true, false}) {
        INFO((channels_last ? "channels-last" : "nchw"), (training ? ", train" : ", eval"),
             (relu ? ", relu" : ""));
        const std::vector<Tensor> cpu = run(Device::cpu(), channels_last, training, relu);
        const std::vector<Tensor> gpu = run(Device::cuda(), channels_last, training, relu);
        for (std::size_t i = 0; i < cpu.size(); ++i) {
          REQUIRE(gpu[i].device() == Device::cuda());
          const auto report = matches_reference(gpu[i].to(Device::cpu()), cpu[i], kCpuFloat);
          CHECK_MESSAGE(report.ok, names[i], ": ", report.message);
        }
      }
    }
  }
}

TEST_CASE("cuda: bfloat16 batchnorm2d train and eval, float parameters, match the bfloat16 reference") {
  if (!have_gpu()) return;
  std::uint64_t seed = 2000;
  for (const Case& c : all_cases()) {
    INFO(describe(c), " bfloat16");
    check_train<bfloat16>(c, values_around<bfloat16>(numel(c.g), seed, c.offset), seed + 10);
    check_eval<bfloat16>(c, values_around<bfloat16>(numel(c.g), seed, c.offset), seed + 10);
    seed += 20;
  }
}

TEST_CASE("cuda: bfloat16 batchnorm2d propagates NaN and infinity as the bfloat16 reference") {
  if (!have_gpu()) return;
  // The channels of the float case above: NaN in channel 0, +inf at the shift value of channel 2 and
  // elsewhere in channel 3.
  for (const bool fused_relu : {false, true}) {
    const Case c{{.batch = 2, .channels = 4, .height = 4, .width = 5, .fused_relu = fused_relu}, 0.0};
    INFO(describe(c), " bfloat16");
    std::vector<bfloat16> x = values_around<bfloat16>(numel(c.g), 87);
    const std::int64_t plane = c.g.height * c.g.width;
    x[static_cast<std::size_t>(0 * plane + 7)] = bfloat16(std::numeric_limits<float>::quiet_NaN());
    x[static_cast<std::size_t>(2 * plane)] = bfloat16(std::numeric_limits<float>::infinity());
    x[static_cast<std::size_t>((4 + 3) * plane + 3)] = bfloat16(std::numeric_limits<float>::infinity());
    check_train<bfloat16>(c, x, 88);
    check_eval<bfloat16>(c, x, 89);
  }
}

TEST_CASE("cuda: the Tensor-level batchnorm2d on a bfloat16 CUDA x with float32 parameters matches the CPU") {
  if (!have_gpu()) return;
  // The CPU runs the bfloat16 reference. Activations: Tolerance::bfloat16(). Per-channel float32 results:
  // atol 1e-4 + rtol 1e-4. Both sides sum in double, but each backward reads its own forward's saved
  // statistics, which may differ in the last float bit, and ggamma sums 378 products of them per channel.
  constexpr Tolerance kChannel{1e-4, 1e-4};
  Generator generator(13);
  const Shape shape{6, 17, 9, 7};
  const Tensor x = Tensor::from_vector(values_around<bfloat16>(shape.numel(), 21), shape);
  const Tensor gy = Tensor::from_vector(values_around<bfloat16>(shape.numel(), 22), shape);
  const Tensor gamma = Tensor::randn({17}, DType::Float32, &generator);
  const Tensor beta = Tensor::randn({17}, DType::Float32, &generator);
  auto on_gpu = [](const Tensor& t) { return t.to(Device::cuda()); };
  auto expect_activation = [&](const Tensor& gpu, const Tensor& cpu, const char* what) {
    REQUIRE(gpu.device() == Device::cuda());
    REQUIRE(gpu.dtype() == DType::BFloat16);
    const std::vector<bfloat16> actual = gpu.to(Device::cpu()).to_vector<bfloat16>();
    const std::vector<bfloat16> expected = cpu.to_vector<bfloat16>();
    REQUIRE(actual.size() == expected.size());
    const auto report = matches_reference(actual.data(), expected.data(),
                                          static_cast<std::int64_t>(actual.size()), Tolerance::bfloat16());
    CHECK_MESSAGE(report.ok, what, ": ", report.message);
  };
  auto expect_channel = [&](const Tensor& gpu, const Tensor& cpu, const char* what) {
    REQUIRE(gpu.device() == Device::cuda());
    REQUIRE(gpu.dtype() == DType::Float32);
    const auto report = matches_reference(gpu.to(Device::cpu()), cpu, kChannel);
    CHECK_MESSAGE(report.ok, what, ": ", report.message);
  };
  for (const bool training : {true, false}) {
    for (const bool fused_relu : {false, true}) {
      INFO((training ? "train" : "eval"), (fused_relu ? ", fused relu" : ""));
      const BatchNormOptions options{
          .training = training, .momentum = 0.1, .eps = 1e-5, .fused_relu = fused_relu};
      const Tensor running_mean = Tensor::full({17}, 0.25), running_var = Tensor::full({17}, 1.5);
      const Tensor running_mean_gpu = on_gpu(running_mean), running_var_gpu = on_gpu(running_var);

      const raw::BatchNormResult cpu =
          raw::batchnorm2d_forward(x, gamma, beta, running_mean, running_var, options);
      const raw::BatchNormResult gpu = raw::batchnorm2d_forward(on_gpu(x), on_gpu(gamma), on_gpu(beta),
                                                                running_mean_gpu, running_var_gpu, options);
      expect_activation(gpu.output, cpu.output, "output");
      expect_channel(running_mean_gpu, running_mean, "running_mean");
      expect_channel(running_var_gpu, running_var, "running_var");
      if (training) {
        expect_channel(gpu.save_mean, cpu.save_mean, "save_mean");
        expect_channel(gpu.save_invstd, cpu.save_invstd, "save_invstd");
      }

      const raw::BatchNormGrads cpu_grads =
          raw::batchnorm2d_backward(gy, x, gamma, beta, cpu, running_mean, running_var, options);
      const raw::BatchNormGrads gpu_grads =
          raw::batchnorm2d_backward(on_gpu(gy), on_gpu(x), on_gpu(gamma), on_gpu(beta), gpu, running_mean_gpu,
                                    running_var_gpu, options);
      expect_activation(gpu_grads.x, cpu_grads.x, "grad x");
      expect_channel(gpu_grads.gamma, cpu_grads.gamma, "grad gamma");
      expect_channel(gpu_grads.beta, cpu_grads.beta, "grad beta");
    }
  }
}

}  // namespace cuda_batchnorm_cuda_test
