// The command line both C++ comparison programs take (scripts/compare-cpu.sh passes the same to each):
//
//   --threads N   compute threads (OpenMP)                      default 2
//   --batch N     images per convolution and training step      default 128
//   --image-size N  the networks' input, N x N: ResNet-20's convolutions at N, N/2 and N/4, and every
//                 training step on N x N images                  default 32 (CIFAR-10)
//   --warmup N    untimed runs before each case                 default 1
//   --reps N      timed runs per case, at most                  default 10
//   --budget S    seconds of timed runs per case, at most       default 2 (at least 10 s for the training
//                 step)
//   --list-shapes print the convolution shapes as JSON and time nothing (torch_cpu.py --shapes reads it)
#pragma once

#include <cstdint>
#include <cstdlib>
#include <stdexcept>
#include <string>

#include "bench/compare/timing.hpp"

namespace kiln::bench::compare {

struct CompareOptions {
  int threads = 2;
  std::int64_t batch = 128;
  std::int64_t image_size = 32;
  bool list_shapes = false;
  TimingOptions timing;
};

inline CompareOptions parse_options(int argc, char** argv) {
  CompareOptions options;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    if (flag == "--list-shapes") {
      options.list_shapes = true;
      continue;
    }
    if (i + 1 >= argc) throw std::invalid_argument(flag + " needs a value");
    const char* value = argv[++i];
    if (flag == "--threads") {
      options.threads = std::atoi(value);
    } else if (flag == "--batch") {
      options.batch = std::atoll(value);
    } else if (flag == "--image-size") {
      options.image_size = std::atoll(value);
    } else if (flag == "--warmup") {
      options.timing.warmup = std::atoi(value);
    } else if (flag == "--reps") {
      options.timing.max_reps = std::atoi(value);
    } else if (flag == "--budget") {
      options.timing.budget_s = std::atof(value);
    } else {
      throw std::invalid_argument(
          "unknown option " + flag +
          " (known: --threads --batch --image-size --warmup --reps --budget --list-shapes)");
    }
  }
  if (options.threads < 1 || options.batch < 1 || options.image_size < 1 || options.timing.warmup < 0 ||
      options.timing.max_reps < 1 || options.timing.budget_s < 0) {
    throw std::invalid_argument(
        "--threads, --batch, --image-size and --reps must be positive; --warmup and --budget >= 0");
  }
  return options;
}

}  // namespace kiln::bench::compare
