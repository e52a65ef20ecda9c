// kiln's first example: train a tiny conv net, written with kiln's differentiable ops, to tell
// horizontal stripes from vertical ones, and watch the loss fall.
//
//   ./build/train_toy [steps] [seed]
#include <cstdio>
#include <cstdlib>
#include <exception>

#include "data/synthetic_stripes.hpp"
#include "examples/toy_conv_net.hpp"

int main(int argc, char** argv) try {
  using namespace kiln;
  const int steps = argc > 1 ? std::atoi(argv[1]) : 150;
  const std::uint64_t seed = argc > 2 ? std::strtoull(argv[2], nullptr, 10) : 1;

  Generator generator(seed);
  const data::LabeledImages train = data::make_stripes(128, 3, 16, generator);
  const data::LabeledImages test = data::make_stripes(512, 3, 16, generator);
  examples::ToyConvNet net(3, 2, generator);
  std::printf("toy conv net: %lld training images, %lld test images, 3x16x16, 2 classes\n",
              static_cast<long long>(train.images.size(0)), static_cast<long long>(test.images.size(0)));

  for (int step = 1; step <= steps; ++step) {
    const Tensor logits = net.forward(train.images, true);
    const Tensor loss = cross_entropy(logits, train.labels);
    loss.backward();
    net.gradient_step(0.2);
    if (step == 1 || step % 10 == 0) {
      std::printf("step %4d  loss %.4f  train accuracy %5.1f%%\n", step, loss.item(),
                  100.0 * examples::accuracy(logits, train.labels));
    }
  }
  NoGradGuard no_grad;
  std::printf("test accuracy %.1f%% on %lld unseen images\n",
              100.0 * examples::accuracy(net.forward(test.images, false), test.labels),
              static_cast<long long>(test.images.size(0)));
  return 0;
} catch (const std::exception& error) {
  std::fprintf(stderr, "train_toy: %s\n", error.what());
  return 1;
}
