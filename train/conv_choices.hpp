// What served each convolution of a CUDA run (kernels/conv2d/cuda_tuning.hpp): the candidates measured per
// shape, their times, any rejection and the choice, kept beside the run's metrics as
// RUNDIR/cuda_conv_choices.json so that a run's speed, or a difference in its last bits from another run, can
// be traced to the kernels that ran.
#pragma once

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

}  // namespace kiln::train
