#include "core/device.hpp"

#include <charconv>

#include "core/error.hpp"

namespace kiln {

Device parse_device(std::string_view text) {
  if (text == "cpu") return Device::cpu();
  if (text == "cuda") return Device::cuda(0);
  if (text.starts_with("cuda:")) {
    const std::string_view digits = text.substr(5);
    int index = -1;
    const auto [end, error] = std::from_chars(digits.data(), digits.data() + digits.size(), index);
    if (error == std::errc() && end == digits.data() + digits.size() && !digits.empty() && index >= 0) {
      return Device::cuda(index);
    }
  }
  fail("unknown device '", text, "' (expected cpu, cuda or cuda:N)");
}

}  // namespace kiln
