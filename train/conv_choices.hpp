// What served each convolution of a CUDA run (kernels/conv2d/cuda_tuning.hpp): the candidates measured per
// shape, their times, any rejection and the choice, kept beside the run's metrics as
// RUNDIR/cuda_conv_choices.json so that a run's speed, or a difference in its last bits from another run, can
// be traced to the kernels that ran; and read back, so that a later run replays those choices
// (`kiln train --cuda-conv FILE`).
#pragma once

#include <cstddef>
#include <filesystem>
#include <nlohmann/json_fwd.hpp>

namespace kiln::train {

inline constexpr const char* kConvChoicesFile = "cuda_conv_choices.json";

// Every choice this process has made, in the order first seen:
//   [{"direction": "forward", "element_type": "bfloat16", "device": 0, "geometry": {"batch": 128, ...},
//     "chosen": "05_forward_implicit_gemm_bf16",
//     "trials": [{"candidate": "library", "milliseconds": 0.21}, {"candidate": "...", "rejected": "..."}]}]
nlohmann::json conv_choices_json();

// Writes conv_choices_json() to RUNDIR/cuda_conv_choices.json, atomically.
void write_conv_choices(const std::filesystem::path& run_dir);

// Reads a choices file an earlier run wrote and records each of its choices for CUDA device `device`
// (whatever device the file names: a shape's choice belongs to the GPU model, not its index), before any
// convolution runs. Those shapes then run the recorded candidate from their first call, without measuring:
// the speed of a measured run with the same kernels, so the same bits, on every run. Shapes the file does
// not name are measured as usual. Throws a kiln::Error naming the file, and the entry, when it cannot be read
// or parsed, or names a candidate that cannot serve its shape in this build, on this GPU (a file from an
// H100 run names Hopper steps that another GPU refuses). Returns how many choices it recorded.
std::size_t replay_conv_choices(const std::filesystem::path& file, int device);

}  // namespace kiln::train
