#include "cli/image_size_option.hpp"

#include <CLI/CLI.hpp>

namespace kiln::cli {

std::pair<std::int64_t, std::int64_t> parse_image_size(const std::string& size) {
  const auto side = [&](const std::string& digits) -> std::int64_t {
    const bool number =
        !digits.empty() && digits.size() <= 4 && digits.find_first_not_of("0123456789") == std::string::npos;
    const std::int64_t value = number ? std::stoll(digits) : 0;
    if (value < 1 || value > 4096) {
      throw CLI::ValidationError("--image-size", "takes N or HxW, sides 1 to 4096 (32, 64x48), not " + size);
    }
    return value;
  };
  const std::size_t x = size.find('x');
  if (x == std::string::npos) return {side(size), side(size)};
  return {side(size.substr(0, x)), side(size.substr(x + 1))};
}

}  // namespace kiln::cli
