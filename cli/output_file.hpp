// The file a command writes at a path the user names: pack's FILE, export's --onnx, quantize's --out.
//
// Such a path can name something that took hours to make (a checkpoint, a pack) or the very file the
// command reads: `kiln export run/last.kiln --onnx run/last.kiln` used to replace the checkpoint with its
// ONNX model. So, before any work starts (a refusal then costs nothing):
//   - the output may not be one of the command's inputs, nor lie inside an input folder (a pack written into
//     the folder it packs would be read back as one of its images), --overwrite or not;
//   - an existing file is replaced only with --overwrite, as train replaces a run only with --overwrite.
// The write itself is atomic (train/atomic_file.hpp): a refused or failed command leaves the old file whole.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace kiln::cli {

// One thing the command reads, as the messages name it: {"the checkpoint", path}.
struct CommandInput {
  std::string role;
  std::filesystem::path path;
};

// Throws kiln::Error naming the command, the output and the reason where `output` may not be written:
//   "kiln pack: runs/a/best.kiln exists (pass --overwrite to replace it)"
//   "kiln export: --onnx runs/a/last.kiln is the checkpoint it reads; write the output to another file"
// `option` is how the command line names the output ("--onnx", or "" for a positional FILE).
void check_output_file(const std::string& command, const std::string& option,
                       const std::filesystem::path& output, bool overwrite,
                       const std::vector<CommandInput>& inputs);

}  // namespace kiln::cli
