// `--image-size N|HxW`, the model's input size, for kiln train and kiln summary.
#pragma once

#include <cstdint>
#include <string>
#include <utility>

namespace kiln::cli {

// {height, width} of N (a square) or HxW, each side 1 to 4096; anything else throws CLI::ValidationError
// naming --image-size and the value.
std::pair<std::int64_t, std::int64_t> parse_image_size(const std::string& size);

}  // namespace kiln::cli
