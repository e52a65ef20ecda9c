// Error: kiln's one exception type. Its message names the op, file or tensor and the shapes involved,
// so that the CLI can print it as one line on stderr and exit non-zero.
#pragma once

#include <sstream>
#include <stdexcept>
#include <string>

namespace kiln {

class Error : public std::runtime_error {
 public:
  explicit Error(const std::string& message) : std::runtime_error(message) {}
};

namespace detail {
template <typename... Parts> std::string concat(const Parts&... parts) {
  std::ostringstream out;
  (out << ... << parts);
  return out.str();
}
}  // namespace detail

// Throws kiln::Error whose message is the parts streamed together: fail("conv2d: input ", shape, ...).
template <typename... Parts> [[noreturn]] void fail(const Parts&... parts) {
  throw Error(detail::concat(parts...));
}

}  // namespace kiln

// KILN_CHECK(cond, parts...): throw kiln::Error(parts...) unless cond holds. The parts are only built on
// failure, so a check costs one branch on the good path.
#define KILN_CHECK(cond, ...)         \
  do {                                \
    if (!(cond)) ::kiln::fail(__VA_ARGS__); \
  } while (0)
