// Tests of the CUDA softmax, log-softmax, cross-entropy and BCE-with-logits kernels
// (kernels/softmax/cuda_softmax.cu, kernels/loss/cuda_loss.cu), called through the dispatch functions
// with Device::cuda(), against the reference kernels on the same host data, float and double.
//
// Shapes cover each launch shape: one thread per row (inner > 1), one warp per row (inner == 1, dim <= 512:
// 1, 10, 33 classes) and one block per row (1000, 5000 classes); row counts of 1, odd ones, and enough to
// need several grid-stride passes. Inputs include extreme logits (+-80, -inf, whole rows of -inf or NaN).
//
// Tolerances: the kernels do the reference's double arithmetic and round each output to T once; only the
// order of the double sums differs. float32: atol 1e-7 + rtol 1e-6, a few float ulps (the double
// difference can flip one rounding, and a backward output that cancels to near 0 inherits an absolute
// double error of about 1e-16 times its terms). float64: Tolerance::float64() (1e-12 + 1e-10), room for
// sums of 5000 terms added in another order (about n * 1e-16 relative at worst).
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "core/generator.hpp"
#include "core/raw.hpp"
#include "core/tensor.hpp"
#include "kernels/cuda_grid.hpp"
#include "kernels/loss/bce_with_logits.hpp"
#include "kernels/loss/cross_entropy.hpp"
#include "kernels/softmax/softmax.hpp"
#include "tests/support/cuda_testing.hpp"
#include "tests/support/fast_kernel_testing.hpp"
#include "tests/support/matches_reference.hpp"

namespace cuda_softmax_loss_cuda_test {

namespace {

using namespace kiln;
using kernels::CrossEntropyGeometry;
using kernels::SoftmaxGeometry;
using testing::empty_gpu;
using testing::have_gpu;
using testing::matches_reference;
using testing::random_values;
using testing::to_gpu;
using testing::to_host;
using testing::Tolerance;

template <typename T>
Tolerance tolerance() {
  return std::is_same_v<T, float> ? Tolerance{1e-7, 1e-6} : Tolerance::float64();
}

template <typename T>
void check_matches(const std::vector<T>& actual, const std::vector<T>& expected, const std::string& what) {
  REQUIRE(actual.size() == expected.size());
  const auto report = matches_reference(actual.data(), expected.data(),
                                        static_cast<std::int64_t>(actual.size()), tolerance<T>());
  CHECK_MESSAGE(report.ok, what, ": ", report.message);
}

std::string describe(const SoftmaxGeometry& g) {
  return "[outer " + std::to_string(g.outer) + ", dim " + std::to_string(g.dim) + ", inner " +
         std::to_string(g.inner) + "]";
}

// Logits for a [outer, dim, inner] view, random in [-4, 4], with extreme rows where there are rows
// enough: row 1 alternates +80 and -80, row 2 has -inf at every third element, row 3 is all -inf (NaN
// out: exp(-inf - -inf)), row 4 holds one NaN (NaN out). Row r is (o, i) = (r / inner, r % inner).
template <typename T>
std::vector<T> softmax_logits(const SoftmaxGeometry& g, std::uint64_t seed) {
  std::vector<T> x = random_values<T>(g.outer * g.dim * g.inner, seed, -4.0f, 4.0f);
  const std::int64_t rows = g.outer * g.inner;
  auto at = [&](std::int64_t row, std::int64_t k) -> T& {
    const std::int64_t o = row / g.inner, i = row % g.inner;
    return x[static_cast<std::size_t>((o * g.dim + k) * g.inner + i)];
  };
  const T inf = std::numeric_limits<T>::infinity();
  for (std::int64_t k = 0; k < g.dim; ++k) {
    if (rows > 1) at(1, k) = k % 2 == 0 ? T(80) : T(-80);
    if (rows > 2 && k % 3 == 0) at(2, k) = -inf;
    if (rows > 3) at(3, k) = -inf;
  }
  if (rows > 4) at(4, g.dim / 2) = std::numeric_limits<T>::quiet_NaN();
  return x;
}

// Runs the forward and backward of softmax and log_softmax on the GPU through dispatch and compares each
// with the reference. The backward takes the reference forward's output, so each kernel is checked alone.
template <typename T>
void check_softmax_family(const SoftmaxGeometry& g, std::uint64_t seed) {
  INFO("geometry ", describe(g));
  const std::int64_t count = g.outer * g.dim * g.inner;
  const std::vector<T> x = softmax_logits<T>(g, seed);
  const std::vector<T> gy = random_values<T>(count, seed + 1);
  const Tensor x_gpu = to_gpu(x), gy_gpu = to_gpu(gy);

  std::vector<T> y(count), log_y(count), gx(count), log_gx(count);
  kernels::reference::softmax_forward(g, x.data(), y.data());
  kernels::reference::log_softmax_forward(g, x.data(), log_y.data());
  kernels::reference::softmax_backward(g, y.data(), gy.data(), gx.data());
  kernels::reference::log_softmax_backward(g, log_y.data(), gy.data(), log_gx.data());
  const Tensor y_gpu = to_gpu(y), log_y_gpu = to_gpu(log_y);

  const Tensor out = empty_gpu<T>(count);
  kernels::softmax_forward<T>(Device::cuda(), g, x_gpu.data<T>(), out.data<T>());
  check_matches(to_host<T>(out), y, "softmax_forward");
  kernels::log_softmax_forward<T>(Device::cuda(), g, x_gpu.data<T>(), out.data<T>());
  check_matches(to_host<T>(out), log_y, "log_softmax_forward");

  const Tensor grad = empty_gpu<T>(count);
  kernels::softmax_backward<T>(Device::cuda(), g, y_gpu.data<T>(), gy_gpu.data<T>(), grad.data<T>());
  check_matches(to_host<T>(grad), gx, "softmax_backward");
  const Tensor log_grad = empty_gpu<T>(count);
  kernels::log_softmax_backward<T>(Device::cuda(), g, log_y_gpu.data<T>(), gy_gpu.data<T>(),
                                   log_grad.data<T>());
  check_matches(to_host<T>(log_grad), log_gx, "log_softmax_backward");
}

}  // namespace

TEST_CASE_TEMPLATE("cuda: softmax and log_softmax, rows of one warp ([N, C], C <= 512)", T, float, double) {
  if (!have_gpu()) return;
  for (const SoftmaxGeometry& g :
       {SoftmaxGeometry{1, 1, 1}, SoftmaxGeometry{1, 10, 1}, SoftmaxGeometry{7, 1, 1},
        SoftmaxGeometry{5, 10, 1}, SoftmaxGeometry{9, 33, 1}, SoftmaxGeometry{257, 33, 1},
        SoftmaxGeometry{3, 512, 1}, SoftmaxGeometry{1000, 100, 1}}) {
    check_softmax_family<T>(g, 11);
  }
}

TEST_CASE_TEMPLATE("cuda: softmax and log_softmax, rows of one block ([N, C], C > 512)", T, float, double) {
  if (!have_gpu()) return;
  for (const SoftmaxGeometry& g :
       {SoftmaxGeometry{1, 513, 1}, SoftmaxGeometry{6, 1000, 1}, SoftmaxGeometry{1, 5000, 1},
        SoftmaxGeometry{5, 5000, 1}, SoftmaxGeometry{300, 1001, 1}}) {
    check_softmax_family<T>(g, 12);
  }
}

TEST_CASE_TEMPLATE("cuda: softmax and log_softmax, strided rows (inner > 1), one thread per row", T, float,
                   double) {
  if (!have_gpu()) return;
  for (const SoftmaxGeometry& g :
       {SoftmaxGeometry{1, 3, 2}, SoftmaxGeometry{2, 1, 4}, SoftmaxGeometry{2, 7, 3},
        SoftmaxGeometry{3, 1000, 5}, SoftmaxGeometry{1, 10, 300}, SoftmaxGeometry{4, 19, 257},
        SoftmaxGeometry{2, 3, 70001}}) {
    check_softmax_family<T>(g, 13);
  }
}

TEST_CASE("cuda: softmax_forward with more rows than one grid covers (grid-stride loops)") {
  if (!have_gpu()) return;
  // Each launch shape caps its grid at kMaxGridBlocks blocks (65535 on a GPU; emulated, fewer): that many
  // times 8 warp rows, block rows, or 256 thread rows. One shape past each cap, forward only (the loop is
  // shared by every op).
  using kernels::cuda::kMaxGridBlocks;
  for (const SoftmaxGeometry& g :
       {SoftmaxGeometry{kMaxGridBlocks * kernels::cuda::kWarpsPerBlock + 37, 3, 1},
        SoftmaxGeometry{kMaxGridBlocks + 3, 513, 1}, SoftmaxGeometry{1, 2, testing::kOneGridPass + 5}}) {
    INFO("geometry ", describe(g));
    const std::int64_t count = g.outer * g.dim * g.inner;
    const std::vector<float> x = testing::random_floats(count, 14, -4.0f, 4.0f);
    std::vector<float> expected(count);
    kernels::reference::softmax_forward(g, x.data(), expected.data());
    const Tensor x_gpu = to_gpu(x), y_gpu = empty_gpu<float>(count);
    kernels::softmax_forward<float>(Device::cuda(), g, x_gpu.data<float>(), y_gpu.data<float>());
    check_matches(to_host<float>(y_gpu), expected, "softmax_forward");
  }
}

TEST_CASE("cuda: softmax with no rows or empty rows launches nothing") {
  if (!have_gpu()) return;
  const Tensor x = empty_gpu<float>(1);
  CHECK_NOTHROW(kernels::softmax_forward<float>(Device::cuda(), SoftmaxGeometry{0, 10, 1}, x.data<float>(),
                                                x.data<float>()));
  CHECK_NOTHROW(kernels::log_softmax_backward<float>(Device::cuda(), SoftmaxGeometry{3, 0, 1},
                                                     x.data<float>(), x.data<float>(), x.data<float>()));
}

TEST_CASE("cuda: softmax and log_softmax on CUDA tensors match the CPU ops (raw::)") {
  if (!have_gpu()) return;
  Generator generator(21);
  for (const auto& [shape, axis] : {std::pair{Shape{4, 10}, -1}, std::pair{Shape{2, 700}, 1},
                                    std::pair{Shape{2, 3, 5, 7}, 1}, std::pair{Shape{3, 4, 5}, 0}}) {
    INFO("shape ", shape.str(), " axis ", axis);
    const Tensor x = Tensor::randn(shape, DType::Float32, &generator);
    const Tensor gy = Tensor::randn(shape, DType::Float32, &generator);
    const Tensor x_gpu = x.to(Device::cuda()), gy_gpu = gy.to(Device::cuda());
    const Tensor y = raw::softmax_forward(x, axis), log_y = raw::log_softmax_forward(x, axis);
    const Tensor y_gpu = raw::softmax_forward(x_gpu, axis), log_y_gpu = raw::log_softmax_forward(x_gpu, axis);
    CHECK(y_gpu.device() == Device::cuda());
    const Tolerance tolerance{1e-7,
                              1e-6};  // the CPU's AVX kernels follow the reference's double arithmetic too
    auto report = matches_reference(y_gpu.to(Device::cpu()), y, tolerance);
    CHECK_MESSAGE(report.ok, "softmax: ", report.message);
    report = matches_reference(log_y_gpu.to(Device::cpu()), log_y, tolerance);
    CHECK_MESSAGE(report.ok, "log_softmax: ", report.message);
    report = matches_reference(raw::softmax_backward(y_gpu, gy_gpu, axis).to(Device::cpu()),
                               raw::softmax_backward(y, gy, axis), tolerance);
    CHECK_MESSAGE(report.ok, "softmax backward: ", report.message);
    report = matches_reference(raw::log_softmax_backward(log_y_gpu, gy_gpu, axis).to(Device::cpu()),
                               raw::log_softmax_backward(log_y, gy, axis), tolerance);
    CHECK_MESSAGE(report.ok, "log_softmax backward: ", report.message);
  }
}

// ---- cross-entropy ---------------------------------------------------------------------------------------

namespace {

std::vector<std::int64_t> random_labels(std::int64_t batch, std::int64_t classes, std::uint64_t seed) {
  std::vector<std::int64_t> labels(static_cast<std::size_t>(batch));
  const std::vector<float> drawn = testing::random_floats(batch, seed, 0.0f, 1.0f);
  for (std::size_t n = 0; n < labels.size(); ++n) {
    labels[n] = std::min(classes - 1, static_cast<std::int64_t>(drawn[n] * static_cast<float>(classes)));
  }
  return labels;
}

template <typename T>
void check_cross_entropy(const CrossEntropyGeometry& g, bool weighted, T smoothing, std::uint64_t seed) {
  INFO("batch ", g.batch, ", classes ", g.classes, weighted ? ", class weights" : ", no weights",
       ", smoothing ", smoothing);
  const std::int64_t count = g.batch * g.classes;
  std::vector<T> logits = random_values<T>(count, seed, -5.0f, 5.0f);
  if (g.batch > 1) {
    for (std::int64_t c = 0; c < g.classes; ++c) logits[g.classes + c] = c % 2 == 0 ? T(80) : T(-80);
  }
  const std::vector<std::int64_t> labels = random_labels(g.batch, g.classes, seed + 1);
  const std::vector<T> weights =
      weighted ? random_values<T>(g.classes, seed + 2, 0.1f, 3.0f) : std::vector<T>{};
  const std::vector<T> gloss = random_values<T>(g.batch, seed + 3);
  const T* host_weights = weighted ? weights.data() : nullptr;

  std::vector<T> loss(g.batch), log_probs(count), glogits(count);
  kernels::reference::cross_entropy_forward(g, logits.data(), labels.data(), host_weights, smoothing,
                                            loss.data(), log_probs.data());
  kernels::reference::cross_entropy_backward(g, log_probs.data(), labels.data(), host_weights, smoothing,
                                             gloss.data(), glogits.data());

  const Tensor logits_gpu = to_gpu(logits), labels_gpu = to_gpu(labels), gloss_gpu = to_gpu(gloss);
  const Tensor weights_gpu = weighted ? to_gpu(weights) : Tensor();
  const T* device_weights = weighted ? weights_gpu.data<T>() : nullptr;
  const Tensor loss_gpu = empty_gpu<T>(g.batch), log_probs_gpu = empty_gpu<T>(count);
  kernels::cross_entropy_forward<T>(Device::cuda(), g, logits_gpu.data<T>(), labels_gpu.data<std::int64_t>(),
                                    device_weights, smoothing, loss_gpu.data<T>(), log_probs_gpu.data<T>());
  check_matches(to_host<T>(log_probs_gpu), log_probs, "cross_entropy_forward log_probs");
  check_matches(to_host<T>(loss_gpu), loss, "cross_entropy_forward loss");

  // The backward from the reference's log_probs, so it is checked alone.
  const Tensor reference_log_probs_gpu = to_gpu(log_probs), glogits_gpu = empty_gpu<T>(count);
  kernels::cross_entropy_backward<T>(Device::cuda(), g, reference_log_probs_gpu.data<T>(),
                                     labels_gpu.data<std::int64_t>(), device_weights, smoothing,
                                     gloss_gpu.data<T>(), glogits_gpu.data<T>());
  check_matches(to_host<T>(glogits_gpu), glogits, "cross_entropy_backward");
}

}  // namespace

TEST_CASE_TEMPLATE("cuda: cross_entropy forward and backward, with and without weights and smoothing", T,
                   float, double) {
  if (!have_gpu()) return;
  // The last: more samples than one grid pass covers at a warp per sample (524,280 on a GPU).
  const std::int64_t beyond_one_grid_pass =
      kernels::cuda::kMaxGridBlocks * kernels::cuda::kWarpsPerBlock + 37;
  for (const CrossEntropyGeometry& g :
       {CrossEntropyGeometry{1, 1}, CrossEntropyGeometry{1, 10}, CrossEntropyGeometry{257, 10},
        CrossEntropyGeometry{257, 33}, CrossEntropyGeometry{3, 1000},
        CrossEntropyGeometry{beyond_one_grid_pass, 7}}) {
    for (const bool weighted : {false, true}) {
      for (const T smoothing : {T(0), T(0.1)}) check_cross_entropy<T>(g, weighted, smoothing, 31);
    }
  }
}

TEST_CASE(
    "cuda: cross_entropy gives NaN for a sample whose label is outside 0..C-1, and reads nothing out of "
    "bounds") {
  if (!have_gpu()) return;
  const CrossEntropyGeometry g{4, 5};
  const std::vector<float> logits = random_values<float>(20, 41), gloss = {1.0f, 1.0f, 1.0f, 1.0f};
  const std::vector<std::int64_t> labels = {2, -1, 5, 0};  // samples 1 and 2 are out of range
  const std::vector<float> weights = {1.0f, 2.0f, 3.0f, 4.0f, 5.0f};
  const Tensor logits_gpu = to_gpu(logits), labels_gpu = to_gpu(labels), weights_gpu = to_gpu(weights);
  const Tensor loss_gpu = empty_gpu<float>(4), log_probs_gpu = empty_gpu<float>(20),
               gloss_gpu = to_gpu(gloss);
  kernels::cross_entropy_forward<float>(Device::cuda(), g, logits_gpu.data<float>(),
                                        labels_gpu.data<std::int64_t>(), weights_gpu.data<float>(), 0.1f,
                                        loss_gpu.data<float>(), log_probs_gpu.data<float>());
  const std::vector<float> loss = to_host<float>(loss_gpu);
  CHECK(std::isfinite(loss[0]));
  CHECK(std::isnan(loss[1]));
  CHECK(std::isnan(loss[2]));
  CHECK(std::isfinite(loss[3]));
  const Tensor glogits_gpu = empty_gpu<float>(20);
  kernels::cross_entropy_backward<float>(Device::cuda(), g, log_probs_gpu.data<float>(),
                                         labels_gpu.data<std::int64_t>(), weights_gpu.data<float>(), 0.1f,
                                         gloss_gpu.data<float>(), glogits_gpu.data<float>());
  const std::vector<float> glogits = to_host<float>(glogits_gpu);
  for (std::int64_t c = 0; c < 5; ++c) {
    CHECK(std::isfinite(glogits[c]));
    CHECK(std::isnan(glogits[5 + c]));
    CHECK(std::isnan(glogits[10 + c]));
    CHECK(std::isfinite(glogits[15 + c]));
  }
  kiln::cuda::synchronize(0);  // no fault was raised by the kernels
}

// ---- BCE-with-logits -------------------------------------------------------------------------------------

namespace {

template <typename T>
void check_bce(std::int64_t n, bool weighted, std::uint64_t seed) {
  INFO("n ", n, weighted ? ", pos_weight" : ", no pos_weight");
  std::vector<T> logits = random_values<T>(n, seed, -8.0f, 8.0f);
  // Extreme logits, where a naive log(sigmoid) would take log(0) or exp(100).
  const T extremes[] = {T(100), T(-100), T(40), T(-40), T(0)};
  for (std::int64_t i = 0; i < n && i < 5; ++i) logits[i] = extremes[i];
  const std::vector<T> targets = random_values<T>(n, seed + 1, 0.0f, 1.0f);
  const std::vector<T> pos_weight = weighted ? random_values<T>(n, seed + 2, 0.5f, 4.0f) : std::vector<T>{};
  const std::vector<T> gloss = random_values<T>(n, seed + 3);
  const T* host_weight = weighted ? pos_weight.data() : nullptr;

  std::vector<T> loss(n), glogits(n);
  kernels::reference::bce_with_logits_forward(n, logits.data(), targets.data(), host_weight, loss.data());
  kernels::reference::bce_with_logits_backward(n, logits.data(), targets.data(), host_weight, gloss.data(),
                                               glogits.data());

  const Tensor logits_gpu = to_gpu(logits), targets_gpu = to_gpu(targets), gloss_gpu = to_gpu(gloss);
  const Tensor weight_gpu = weighted ? to_gpu(pos_weight) : Tensor();
  const T* device_weight = weighted ? weight_gpu.data<T>() : nullptr;
  const Tensor loss_gpu = empty_gpu<T>(n), glogits_gpu = empty_gpu<T>(n);
  kernels::bce_with_logits_forward<T>(Device::cuda(), n, logits_gpu.data<T>(), targets_gpu.data<T>(),
                                      device_weight, loss_gpu.data<T>());
  kernels::bce_with_logits_backward<T>(Device::cuda(), n, logits_gpu.data<T>(), targets_gpu.data<T>(),
                                       device_weight, gloss_gpu.data<T>(), glogits_gpu.data<T>());
  const std::vector<T> loss_out = to_host<T>(loss_gpu);
  for (std::int64_t i = 0; i < n; ++i) REQUIRE(std::isfinite(loss_out[i]));  // +-100 stays finite
  check_matches(loss_out, loss, "bce_with_logits_forward");
  check_matches(to_host<T>(glogits_gpu), glogits, "bce_with_logits_backward");
}

}  // namespace

TEST_CASE_TEMPLATE("cuda: bce_with_logits forward and backward, with and without pos_weight, extreme logits",
                   T, float, double) {
  if (!have_gpu()) return;
  for (const std::int64_t n : {1, 5, 1000, 100003}) {
    for (const bool weighted : {false, true}) check_bce<T>(n, weighted, 51);
  }
  // More elements than one grid of kMaxGridBlocks blocks of kThreadsPerBlock threads covers: a second
  // grid-stride pass.
  if constexpr (std::is_same_v<T, float>) check_bce<T>(testing::kOneGridPass + 77, false, 52);
}

TEST_CASE("cuda: bce_with_logits on CUDA tensors matches the CPU op (raw::)") {
  if (!have_gpu()) return;
  Generator generator(61);
  const Tensor logits = Tensor::randn({37, 5}, DType::Float32, &generator);
  const Tensor targets = Tensor::rand({37, 5}, DType::Float32, &generator);
  const Tensor gloss = Tensor::randn({37, 5}, DType::Float32, &generator);
  const Tensor logits_gpu = logits.to(Device::cuda()), targets_gpu = targets.to(Device::cuda());
  const Tolerance tolerance{1e-7, 1e-6};
  auto report =
      matches_reference(raw::bce_with_logits_forward(logits_gpu, targets_gpu, Tensor()).to(Device::cpu()),
                        raw::bce_with_logits_forward(logits, targets, Tensor()), tolerance);
  CHECK_MESSAGE(report.ok, "forward: ", report.message);
  report = matches_reference(
      raw::bce_with_logits_backward(logits_gpu, targets_gpu, Tensor(), gloss.to(Device::cuda()))
          .to(Device::cpu()),
      raw::bce_with_logits_backward(logits, targets, Tensor(), gloss), tolerance);
  CHECK_MESSAGE(report.ok, "backward: ", report.message);
}

}  // namespace cuda_softmax_loss_cuda_test
