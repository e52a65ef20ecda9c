#include "cli/commands.hpp"
#include "kernels/parallel.hpp"

namespace kiln::cli {

void add_compute_threads_option(CLI::App* command) {
  command
      ->add_option_function<int>(
          "--threads", [](int threads) { kernels::set_compute_threads(threads); },
          "compute threads for the kernels (0: every core)")
      ->check(CLI::Range(0, kernels::kMaxComputeThreads));
}

}  // namespace kiln::cli
