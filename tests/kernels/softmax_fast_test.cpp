// Tests of the fast float kernels for the last ops of a training step: softmax and log-softmax
// (kernels/softmax/avx512.cpp, avx2.cpp), cross-entropy (kernels/loss/avx512.cpp, avx2.cpp) and dropout
// (kernels/dropout/avx512.cpp, avx2.cpp), against the reference kernels, at every dispatch level this CPU
// has, over odd shapes (rows 1, 3, 129; classes 1, 5, 10, 17, 33, 1000; strided [outer, dim, inner] views),
// extreme logits (+-80) and rows of equal values, and with 1 and 2 threads, which must agree bitwise.
//
// Tolerances (float32): every output within atol 1e-5 + rtol 1e-4 of the reference. The fast forwards
// follow the reference's double arithmetic (they are in fact bitwise equal); the backward sums differ only
// by double rounding. Dropout's mask and output must be bitwise the reference's.
#include <doctest/doctest.h>

#include <cstdint>
#include <cstring>
#include <functional>
#include <random>
#include <vector>

#include "kernels/cpu_level.hpp"
#include "kernels/dropout/dropout.hpp"
#include "kernels/loss/cross_entropy.hpp"
#include "kernels/parallel.hpp"
#include "kernels/softmax/softmax.hpp"
#include "tests/support/matches_reference.hpp"

namespace {

using kiln::Device;
using kiln::kernels::CpuLevel;
using kiln::kernels::CrossEntropyGeometry;
using kiln::kernels::PhiloxState;
using kiln::kernels::SoftmaxGeometry;
using kiln::testing::matches_reference;
using kiln::testing::Tolerance;
namespace kk = kiln::kernels;

// Restores the process-wide CPU level and thread count when a test ends, even when it fails.
struct DispatchGuard {
  CpuLevel saved_level = kk::cpu_level();
  int saved_threads = kk::compute_threads();
  ~DispatchGuard() {
    kk::set_cpu_level(saved_level);
    kk::set_compute_threads(saved_threads);
  }
};

constexpr Tolerance kFloat{1e-5, 1e-4};

// Runs check() at each fast level the CPU has; a level it lacks is skipped with a message.
void at_each_fast_level(const std::function<void()>& check) {
  DispatchGuard guard;
  for (const CpuLevel level : {CpuLevel::Avx512, CpuLevel::Avx2}) {
    if (static_cast<int>(kk::detected_cpu_level()) < static_cast<int>(level)) {
      MESSAGE("skipping ", kk::cpu_level_name(level), ": this CPU lacks it");
      continue;
    }
    kk::set_cpu_level(level);
    CAPTURE(kk::cpu_level_name(level));
    check();
  }
}

// run(out) fills `out` through the dispatcher with 1 and then 2 threads; the two must agree bitwise.
// Returns the 1-thread result.
std::vector<float> run_with_1_and_2_threads(std::size_t size, const std::function<void(float*)>& run) {
  std::vector<float> one(size, -7.0f), two(size, -9.0f);
  kk::set_compute_threads(1);
  run(one.data());
  kk::set_compute_threads(2);
  run(two.data());
  CHECK_MESSAGE(std::memcmp(one.data(), two.data(), size * sizeof(float)) == 0, "1 and 2 threads differ");
  return one;
}

void check_close(const std::vector<float>& actual, const std::vector<float>& expected, const char* what) {
  const auto report =
      matches_reference(actual.data(), expected.data(), static_cast<std::int64_t>(actual.size()), kFloat);
  CHECK_MESSAGE(report.ok, what, ": ", report.message);
}

std::vector<float> random_floats(std::int64_t count, std::uint64_t seed, float scale) {
  std::mt19937_64 engine(seed);
  std::uniform_real_distribution<float> uniform(-scale, scale);
  std::vector<float> values(static_cast<std::size_t>(count));
  for (float& v : values) v = uniform(engine);
  return values;
}

// Logits for a [outer, dim, inner] view: random in [-4, 4], with the first row (o = 0, i = 0) all equal
// and the second row (o = 0, i = 1, or o = 1 when inner == 1) alternating +80 and -80.
std::vector<float> softmax_logits(const SoftmaxGeometry& g, std::uint64_t seed) {
  std::vector<float> x = random_floats(g.outer * g.dim * g.inner, seed, 4.0f);
  for (std::int64_t k = 0; k < g.dim; ++k) x[static_cast<std::size_t>(k * g.inner)] = 0.5f;
  const std::int64_t second = g.inner > 1 ? 1 : (g.outer > 1 ? g.dim : -1);
  if (second >= 0) {
    for (std::int64_t k = 0; k < g.dim; ++k) {
      x[static_cast<std::size_t>(second + k * g.inner)] = k % 2 == 0 ? 80.0f : -80.0f;
    }
  }
  return x;
}

std::vector<SoftmaxGeometry> softmax_shapes() {
  std::vector<SoftmaxGeometry> shapes;
  for (const std::int64_t rows : {1, 3, 129}) {
    for (const std::int64_t classes : {1, 5, 10, 17, 33, 1000}) shapes.push_back({rows, classes, 1});
  }
  shapes.push_back({2, 5, 7});     // strided rows: softmax over the middle axis
  shapes.push_back({3, 17, 33});   // NCHW-like, channels 17 over 33 positions
  shapes.push_back({1, 1, 4});     // dim 1, strided
  shapes.push_back({8, 33, 100});  // threaded strided rows
  return shapes;
}

}  // namespace

TEST_CASE("softmax fast: forward and backward match the reference, bitwise for 1 and 2 threads") {
  at_each_fast_level([] {
    for (const SoftmaxGeometry& g : softmax_shapes()) {
      CAPTURE(g.outer);
      CAPTURE(g.dim);
      CAPTURE(g.inner);
      const auto n = static_cast<std::size_t>(g.outer * g.dim * g.inner);
      const std::vector<float> x = softmax_logits(g, 11),
                               gy = random_floats(g.outer * g.dim * g.inner, 12, 1.0f);
      std::vector<float> y_ref(n), gx_ref(n);
      kk::reference::softmax_forward(g, x.data(), y_ref.data());
      kk::reference::softmax_backward(g, y_ref.data(), gy.data(), gx_ref.data());
      check_close(
          run_with_1_and_2_threads(n, [&](float* y) { kk::softmax_forward(Device::cpu(), g, x.data(), y); }),
          y_ref, "softmax_forward");
      check_close(
          run_with_1_and_2_threads(
              n, [&](float* gx) { kk::softmax_backward(Device::cpu(), g, y_ref.data(), gy.data(), gx); }),
          gx_ref, "softmax_backward");
    }
  });
}

TEST_CASE("log_softmax fast: forward and backward match the reference, bitwise for 1 and 2 threads") {
  at_each_fast_level([] {
    for (const SoftmaxGeometry& g : softmax_shapes()) {
      CAPTURE(g.outer);
      CAPTURE(g.dim);
      CAPTURE(g.inner);
      const auto n = static_cast<std::size_t>(g.outer * g.dim * g.inner);
      const std::vector<float> x = softmax_logits(g, 21),
                               gy = random_floats(g.outer * g.dim * g.inner, 22, 1.0f);
      std::vector<float> y_ref(n), gx_ref(n);
      kk::reference::log_softmax_forward(g, x.data(), y_ref.data());
      kk::reference::log_softmax_backward(g, y_ref.data(), gy.data(), gx_ref.data());
      check_close(run_with_1_and_2_threads(
                      n, [&](float* y) { kk::log_softmax_forward(Device::cpu(), g, x.data(), y); }),
                  y_ref, "log_softmax_forward");
      check_close(
          run_with_1_and_2_threads(
              n, [&](float* gx) { kk::log_softmax_backward(Device::cpu(), g, y_ref.data(), gy.data(), gx); }),
          gx_ref, "log_softmax_backward");
    }
  });
}

TEST_CASE("cross_entropy fast: with and without smoothing and class weights, bitwise for 1 and 2 threads") {
  at_each_fast_level([] {
    for (const std::int64_t batch : {1, 3, 129}) {
      for (const std::int64_t classes : {1, 5, 10, 17, 33, 1000}) {
        const CrossEntropyGeometry g{batch, classes};
        const SoftmaxGeometry as_rows{batch, classes, 1};
        const auto n = static_cast<std::size_t>(batch * classes), b = static_cast<std::size_t>(batch);
        const std::vector<float> logits = softmax_logits(as_rows, 31), gloss = random_floats(batch, 32, 1.0f);
        std::vector<float> weights = random_floats(classes, 33, 0.5f);
        for (float& w : weights) w += 1.0f;  // in [0.5, 1.5]
        std::vector<std::int64_t> labels(b);
        for (std::size_t i = 0; i < b; ++i)
          labels[i] = static_cast<std::int64_t>((i * 7 + 3) % static_cast<std::size_t>(classes));
        for (const float smoothing : {0.0f, 0.1f}) {
          for (const float* class_weight :
               {static_cast<const float*>(nullptr), static_cast<const float*>(weights.data())}) {
            CAPTURE(batch);
            CAPTURE(classes);
            CAPTURE(smoothing);
            CAPTURE(class_weight != nullptr);
            std::vector<float> loss_ref(b), log_probs_ref(n), glogits_ref(n), log_probs(n);
            kk::reference::cross_entropy_forward(g, logits.data(), labels.data(), class_weight, smoothing,
                                                 loss_ref.data(), log_probs_ref.data());
            kk::reference::cross_entropy_backward(g, log_probs_ref.data(), labels.data(), class_weight,
                                                  smoothing, gloss.data(), glogits_ref.data());
            check_close(run_with_1_and_2_threads(b,
                                                 [&](float* loss) {
                                                   kk::cross_entropy_forward(
                                                       Device::cpu(), g, logits.data(), labels.data(),
                                                       class_weight, smoothing, loss, log_probs.data());
                                                 }),
                        loss_ref, "cross_entropy_forward loss");
            check_close(log_probs, log_probs_ref, "cross_entropy_forward log_probs");
            check_close(run_with_1_and_2_threads(n,
                                                 [&](float* glogits) {
                                                   kk::cross_entropy_backward(
                                                       Device::cpu(), g, log_probs_ref.data(), labels.data(),
                                                       class_weight, smoothing, gloss.data(), glogits);
                                                 }),
                        glogits_ref, "cross_entropy_backward");
          }
        }
      }
    }
  });
}

TEST_CASE("dropout fast: mask and output bitwise equal to the reference for 1 and 2 threads") {
  at_each_fast_level([] {
    const PhiloxState state{2718, 5, 3};
    for (const std::int64_t n : {1, 3, 15, 17, 1000, 4097, 40001}) {
      for (const float p : {0.0f, 0.1f, 0.5f, 1.0f}) {
        CAPTURE(n);
        CAPTURE(p);
        const auto size = static_cast<std::size_t>(n);
        const std::vector<float> x = random_floats(n, 41, 2.0f);
        std::vector<float> y_ref(size), mask_ref(size), y(size);
        kk::reference::dropout_forward(n, p, state, x.data(), y_ref.data(), mask_ref.data());
        const std::vector<float> mask = run_with_1_and_2_threads(
            size, [&](float* m) { kk::dropout_forward(Device::cpu(), n, p, state, x.data(), y.data(), m); });
        CHECK(std::memcmp(mask.data(), mask_ref.data(), size * sizeof(float)) == 0);
        CHECK(std::memcmp(y.data(), y_ref.data(), size * sizeof(float)) == 0);
      }
    }
  });
}
