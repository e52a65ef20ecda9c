// kiln export CKPT --onnx FILE: the checkpoint's model as a standard ONNX model (export/onnx_model.hpp),
// written atomically, with the preprocessing and class names in its metadata.
#include <cstdio>
#include <memory>
#include <nlohmann/json.hpp>

#include "cli/commands.hpp"
#include "cli/json_lines.hpp"
#include "cli/output_file.hpp"
#include "core/error.hpp"
#include "export/onnx_model.hpp"
#include "train/atomic_file.hpp"

namespace kiln::cli {
namespace {

struct ExportCommandOptions {
  std::filesystem::path checkpoint, onnx_file;
  bool logits_only = false, json = false, overwrite = false;
};

void run_export(const ExportCommandOptions& options) {
  check_output_file("export", "--onnx", options.onnx_file, options.overwrite,
                    {{"the checkpoint", options.checkpoint}});
  const train::LoadedModel loaded = train::load_model(options.checkpoint);
  KILN_CHECK(!loaded.int8(), "kiln export: ", options.checkpoint.string(),
             " is an int8 model; export the float checkpoint (",
             loaded.header.value("source_checkpoint", std::string("the one it was quantized from")), ")");
  const onnx::Model model = onnx::to_onnx(loaded, {.probabilities = !options.logits_only});
  const std::vector<std::uint8_t> bytes = onnx::serialize(model);
  train::write_file_atomically(options.onnx_file, bytes, "ONNX model");
  std::vector<std::string> outputs;
  for (const onnx::ValueInfo& output : model.graph.outputs) outputs.push_back(output.name);
  if (options.json) {
    print_json_line(nlohmann::json{{"onnx", options.onnx_file.string()},
                                   {"bytes", bytes.size()},
                                   {"nodes", model.graph.nodes.size()},
                                   {"initializers", model.graph.initializers.size()},
                                   {"opset", onnx::kOpsetVersion},
                                   {"ir_version", onnx::kIrVersion},
                                   {"architecture", loaded.architecture.name},
                                   {"outputs", outputs}});
    return;
  }
  std::printf("wrote %s: %s as ONNX, %.2f MB, %zu nodes, %zu initializers, opset %lld (IR version %lld)\n",
              options.onnx_file.string().c_str(), loaded.architecture.name.c_str(),
              static_cast<double>(bytes.size()) / 1e6, model.graph.nodes.size(),
              model.graph.initializers.size(), static_cast<long long>(onnx::kOpsetVersion),
              static_cast<long long>(onnx::kIrVersion));
  const data::Preprocessing& preprocessing = loaded.preprocessing;
  std::printf("input 'input' float32 [batch, %lld, %lld, %lld]; outputs",
              static_cast<long long>(preprocessing.channels), static_cast<long long>(preprocessing.height),
              static_cast<long long>(preprocessing.width));
  for (const std::string& output : outputs)
    std::printf(" '%s' [batch, %lld]", output.c_str(), static_cast<long long>(loaded.architecture.classes));
  std::printf("; the preprocessing and class names are in its metadata\n");
}

}  // namespace

void add_export_command(CLI::App& app) {
  auto options = std::make_shared<ExportCommandOptions>();
  CLI::App* command = app.add_subcommand("export", "write a checkpoint's model in a standard format (ONNX)");
  command->add_option("checkpoint", options->checkpoint, "a checkpoint written by kiln train")->required();
  command->add_option("--onnx", options->onnx_file, "the ONNX file to write (opset 17)")->required();
  command->add_flag("--logits-only", options->logits_only, "leave out the 'probabilities' output (softmax)");
  command->add_flag("--overwrite", options->overwrite, "replace the ONNX file if it exists");
  command->add_flag("--json", options->json, "print one JSON object");
  command->callback([options] { run_export(*options); });
}

}  // namespace kiln::cli
