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
#include <vector>

#include "kernels/cpu_level.hpp"
#include "kernels/dropout/dropout.hpp"
#include "kernels/loss/cross_entropy.hpp"
#include "kernels/parallel.hpp"
#include "kernels/softmax/softmax.hpp"
#include "tests/support/fast_kernel_testing.hpp"
#include "tests/support/matches_reference.hpp"

namespace kernels_softmax_fast_test {

namespace {

using kiln::Device;
using kiln::kernels::CpuLevel;
using kiln::kernels::CrossEntropyGeometry;
using kiln::kernels::PhiloxState;
using kiln::kernels::SoftmaxGeometry;
using kiln::testing::at_each_fast_level;
using kiln::testing::matches_reference;
using kiln::testing::one_and_two_threads;
using kiln::testing::random_floats;
using kiln::testing::Tolerance;
namespace kk = kiln::kernels;

constexpr Tolerance kFloat{1e-5, 1e-4};

void check_close(const std::vector<float>& actual, const std::vector<float>& expected, const char* what) {
  const auto report =
      matches_reference(actual.data(), expected.data(), static_cast<std::int64_t>(actual.size()), kFloat);
  CHECK_MESSAGE(report.ok, what, ": ", report.message);
}

// Logits for a [outer, dim, inner] view: random in [-4, 4], with the first row (o = 0, i = 0) all equal
// and the second row (o = 0, i = 1, or o = 1 when inner == 1) alternating +80 and -80.
std::vector<float> softmax_logits(const SoftmaxGeometry& g, std::uint64_t seed) {
  std::vector<float> x = random_floats(g.outer * g.dim * g.inner, seed, -4.0f, 4.0f);
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
                               gy = random_floats(g.outer * g.dim * g.inner, 12, -1.0f, 1.0f);
      std::vector<float> y_ref(n), gx_ref(n);
      kk::reference::softmax_forward(g, x.data(), y_ref.data());
      kk::reference::softmax_backward(g, y_ref.data(), gy.data(), gx_ref.data());
      check_close(
          one_and_two_threads(
              n, [&](std::vector<float>& y) { kk::softmax_forward(Device::cpu(), g, x.data(), y.data()); }),
          y_ref, "softmax_forward");
      check_close(one_and_two_threads(n,
                                      [&](std::vector<float>& gx) {
                                        kk::softmax_backward(Device::cpu(), g, y_ref.data(), gy.data(),
                                                             gx.data());
                                      }),
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
                               gy = random_floats(g.outer * g.dim * g.inner, 22, -1.0f, 1.0f);
      std::vector<float> y_ref(n), gx_ref(n);
      kk::reference::log_softmax_forward(g, x.data(), y_ref.data());
      kk::reference::log_softmax_backward(g, y_ref.data(), gy.data(), gx_ref.data());
      check_close(one_and_two_threads(n,
                                      [&](std::vector<float>& y) {
                                        kk::log_softmax_forward(Device::cpu(), g, x.data(), y.data());
                                      }),
                  y_ref, "log_softmax_forward");
      check_close(one_and_two_threads(n,
                                      [&](std::vector<float>& gx) {
                                        kk::log_softmax_backward(Device::cpu(), g, y_ref.data(), gy.data(),
                                                                 gx.data());
                                      }),
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
        const std::vector<float> logits = softmax_logits(as_rows, 31),
                                 gloss = random_floats(batch, 32, -1.0f, 1.0f);
        std::vector<float> weights = random_floats(classes, 33, -0.5f, 0.5f);
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
            check_close(one_and_two_threads(b,
                                            [&](std::vector<float>& loss) {
                                              kk::cross_entropy_forward(
                                                  Device::cpu(), g, logits.data(), labels.data(),
                                                  class_weight, smoothing, loss.data(), log_probs.data());
                                            }),
                        loss_ref, "cross_entropy_forward loss");
            check_close(log_probs, log_probs_ref, "cross_entropy_forward log_probs");
            check_close(one_and_two_threads(n,
                                            [&](std::vector<float>& glogits) {
                                              kk::cross_entropy_backward(
                                                  Device::cpu(), g, log_probs_ref.data(), labels.data(),
                                                  class_weight, smoothing, gloss.data(), glogits.data());
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
        const std::vector<float> x = random_floats(n, 41, -2.0f, 2.0f);
        std::vector<float> y_ref(size), mask_ref(size), y(size);
        kk::reference::dropout_forward(n, p, state, x.data(), y_ref.data(), mask_ref.data());
        const std::vector<float> mask = one_and_two_threads(size, [&](std::vector<float>& m) {
          kk::dropout_forward(Device::cpu(), n, p, state, x.data(), y.data(), m.data());
        });
        CHECK(std::memcmp(mask.data(), mask_ref.data(), size * sizeof(float)) == 0);
        CHECK(std::memcmp(y.data(), y_ref.data(), size * sizeof(float)) == 0);
      }
    }
  });
}

}  // namespace kernels_softmax_fast_test
