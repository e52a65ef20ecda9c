// kiln's side of the automatic augmentation check against torchvision (auto_augment_torchvision.py):
// applies one operation at one level of one strength table to an image read from stdin, float32 [C, H, W]
// in [0, 1], and writes the result to stdout the same way. The fill is black, torchvision's default, so that
// both sides bring in the same value.
//
//   compare_auto_augment wide|standard C H W OPERATION LEVEL NEGATIVE < image.f32 > result.f32
#include <cstdio>
#include <exception>
#include <stdexcept>
#include <string>
#include <vector>

#include "data/auto_augment.hpp"

int main(int argc, char** argv) {
  using namespace kiln::data;
  try {
    if (argc != 8) {
      std::fprintf(
          stderr,
          "usage: %s wide|standard C H W OPERATION(0-%d) LEVEL(0-%d) NEGATIVE(0|1) < image > result\n",
          argv[0], kAugmentOperations - 1, kAugmentLevels - 1);
      return 2;
    }
    const std::string table = argv[1];
    if (table != "wide" && table != "standard")
      throw std::invalid_argument("the table must be wide or standard");
    const std::int64_t channels = std::stoll(argv[2]), height = std::stoll(argv[3]),
                       width = std::stoll(argv[4]);
    const int operation = std::stoi(argv[5]);
    if (operation < 0 || operation >= kAugmentOperations)
      throw std::out_of_range("OPERATION " + std::to_string(operation) + " outside 0 to " +
                              std::to_string(kAugmentOperations - 1));
    const AugmentChoice choice{static_cast<AugmentOperation>(operation), std::stoi(argv[6]),
                               std::stoi(argv[7]) != 0};
    std::vector<float> pixels(static_cast<std::size_t>(channels * height * width));
    if (std::fread(pixels.data(), sizeof(float), pixels.size(), stdin) != pixels.size()) {
      std::fprintf(stderr, "%s: expected %zu floats on stdin\n", argv[0], pixels.size());
      return 1;
    }
    apply_augment_operation(pixels, channels, height, width, choice,
                            table == "wide" ? StrengthTable::Wide : StrengthTable::Standard,
                            std::vector<float>(static_cast<std::size_t>(channels), 0.0f));
    std::fwrite(pixels.data(), sizeof(float), pixels.size(), stdout);
  } catch (const std::exception& error) {
    std::fprintf(stderr, "%s: %s\n", argv[0], error.what());
    return 1;
  }
  return 0;
}
