// at_least (commands.hpp): a number option's lower bound, checked with a message a user can read.
#include <sstream>
#include <string>

#include "cli/commands.hpp"

namespace kiln::cli {

CLI::Validator at_least(double minimum) {
  std::ostringstream shown;
  shown << minimum;  // 0, 1, 0.5: as a user would write it
  const std::string bound = shown.str();
  return CLI::Validator(
      [minimum, bound](std::string& value) -> std::string {
        double number = 0.0;
        if (!CLI::detail::lexical_cast(value, number)) return "takes a number, not " + value;
        // A NaN is at least nothing, so it is refused too.
        return number >= minimum ? std::string() : "must be at least " + bound + ", got " + value;
      },
      ">= " + bound);
}

}  // namespace kiln::cli
