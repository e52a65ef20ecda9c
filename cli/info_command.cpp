// kiln info CKPT: what a checkpoint holds — architecture, classes, preprocessing, how far it trained.
#include <cstdio>
#include <memory>

#include "cli/commands.hpp"
#include "train/model_io.hpp"

namespace kiln::cli {

void add_info_command(CLI::App& app) {
  auto checkpoint = std::make_shared<std::filesystem::path>();
  auto json = std::make_shared<bool>(false);
  CLI::App* command = app.add_subcommand("info", "describe a checkpoint");
  command->add_option("checkpoint", *checkpoint, "a .kiln file written by kiln train")->required();
  command->add_flag("--json", *json, "print the checkpoint's header as JSON");
  command->callback([checkpoint, json] {
    const train::LoadedModel loaded = train::load_model(*checkpoint);
    if (*json) {
      std::printf("%s\n", loaded.header.dump(2).c_str());
      return;
    }
    const nlohmann::json& header = loaded.header;
    std::printf("checkpoint     %s\n", checkpoint->string().c_str());
    std::printf("architecture   %s (%lld parameters), input %lldx%lldx%lld\n", loaded.architecture.name.c_str(),
                static_cast<long long>(loaded.model->parameter_count()),
                static_cast<long long>(loaded.architecture.in_channels),
                static_cast<long long>(loaded.architecture.height), static_cast<long long>(loaded.architecture.width));
    std::string classes;
    for (const auto& name : loaded.classes) classes += (classes.empty() ? "" : ", ") + name;
    std::printf("classes        %zu: %s\n", loaded.classes.size(), classes.c_str());
    std::printf("preprocessing  %s\n", loaded.preprocessing.to_json().dump().c_str());
    std::printf("trained        %lld of %lld epochs\n", header.at("epoch").get<long long>(),
                header.at("config").at("epochs").get<long long>());
    const nlohmann::json& config = header.at("config");
    if (config.value("balanced_sampler", false)) std::printf("balancing      balanced sampler\n");
    const auto weights = config.value("class_weight_values", std::vector<double>());
    if (!weights.empty() && weights.size() == loaded.classes.size()) {
      std::string list;
      for (std::size_t c = 0; c < weights.size(); ++c) {
        char weight[32];
        std::snprintf(weight, sizeof weight, " %.3g", weights[c]);
        list += (list.empty() ? "" : ", ") + loaded.classes[c] + weight;
      }
      const std::string source = config.value("class_weights", std::string());
      std::printf("balancing      class weights (%s): %s\n", source.c_str(), list.c_str());
    }
    if (!header.at("history").empty()) std::printf("last epoch     %s\n", header.at("history").back().dump().c_str());
  });
}

}  // namespace kiln::cli
