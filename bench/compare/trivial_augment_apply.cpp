// kiln's side of the TrivialAugment check against torchvision (trivial_augment_torchvision.py): applies one
// operation at one level to an image read from stdin, float32 [C, H, W] in [0, 1], and writes the result to
// stdout the same way. The fill is black, torchvision's default, so that both sides bring in the same value.
//
//   compare_trivial_augment C H W OPERATION LEVEL NEGATIVE < image.f32 > result.f32
#include <cstdio>
#include <exception>
#include <stdexcept>
#include <string>
#include <vector>

#include "data/trivial_augment.hpp"

int main(int argc, char** argv) {
  using namespace kiln::data;
  try {
    if (argc != 7) {
      std::fprintf(stderr, "usage: %s C H W OPERATION(0-%d) LEVEL(0-%d) NEGATIVE(0|1) < image > result\n",
                   argv[0], kTrivialOperations - 1, kTrivialLevels - 1);
      return 2;
    }
    const std::int64_t channels = std::stoll(argv[1]), height = std::stoll(argv[2]),
                       width = std::stoll(argv[3]);
    const int operation = std::stoi(argv[4]);
    if (operation < 0 || operation >= kTrivialOperations)
      throw std::out_of_range("OPERATION " + std::to_string(operation) + " outside 0 to " +
                              std::to_string(kTrivialOperations - 1));
    const TrivialChoice choice{static_cast<TrivialOperation>(operation), std::stoi(argv[5]),
                               std::stoi(argv[6]) != 0};
    std::vector<float> pixels(static_cast<std::size_t>(channels * height * width));
    if (std::fread(pixels.data(), sizeof(float), pixels.size(), stdin) != pixels.size()) {
      std::fprintf(stderr, "%s: expected %zu floats on stdin\n", argv[0], pixels.size());
      return 1;
    }
    apply_trivial_augment(pixels, channels, height, width, choice,
                          std::vector<float>(static_cast<std::size_t>(channels), 0.0f));
    std::fwrite(pixels.data(), sizeof(float), pixels.size(), stdout);
  } catch (const std::exception& error) {
    std::fprintf(stderr, "%s: %s\n", argv[0], error.what());
    return 1;
  }
  return 0;
}
