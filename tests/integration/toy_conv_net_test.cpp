// The tape, the derivative rules and the kernels working together: a small conv net trained with plain
// gradient steps must separate a synthetic two-class image problem it has never seen the test half of.
#include <doctest/doctest.h>

#include "data/synthetic_stripes.hpp"
#include "examples/toy_conv_net.hpp"

namespace integration_toy_conv_net_test {

using namespace kiln;

TEST_CASE("integration: a toy conv net learns horizontal vs vertical stripes") {
  Generator generator(2026);
  const data::LabeledImages train = data::make_stripes(64, 1, 8, generator);
  const data::LabeledImages test = data::make_stripes(200, 1, 8, generator);
  examples::ToyConvNet net(1, 2, generator);

  double first_loss = 0.0, last_loss = 0.0;
  for (int step = 0; step < 80; ++step) {
    const Tensor loss = cross_entropy(net.forward(train.images, true), train.labels);
    loss.backward();
    net.gradient_step(0.2);
    if (step == 0) first_loss = loss.item();
    last_loss = loss.item();
  }
  CHECK(first_loss > 0.5);  // starts near ln 2: it has not learned yet
  CHECK(last_loss < 0.25 * first_loss);

  NoGradGuard no_grad;
  CHECK(examples::accuracy(net.forward(train.images, false), train.labels) >= 0.95);
  CHECK(examples::accuracy(net.forward(test.images, false), test.labels) >= 0.9);
}

}  // namespace integration_toy_conv_net_test
