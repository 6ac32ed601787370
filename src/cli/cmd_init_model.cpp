#include <cstdio>

#include "cli/commands.h"
#include "cli/validators.h"
#include "wattwise/experiment/init_model.h"

namespace ww::cli {

Command init_model_command(CLI::App& app) {
  auto o = std::make_shared<experiment::InitModelOptions>();
  CLI::App* cmd = app.add_subcommand("init-model", "Write a random-init model in Hugging Face layout");
  cmd->add_option("--arch", o->arch, "bert or distilbert")->capture_default_str();
  cmd->add_option("--preset", o->preset, "tiny (2x64), mini (4x256), small (4x512) or base")->capture_default_str();
  cmd->add_option("--tokenizer", o->tokenizer, "Tokenizer folder or vocab.txt / tokenizer.json, or a hub id in the Hugging Face cache")
      ->required()
      ->transform(model_folder());
  cmd->add_option("-o,--output", o->output, "Output folder")->required();
  cmd->add_option("--num-labels", o->num_labels, "Classes (1 = regression)")
      ->capture_default_str()
      ->check(integer_in(experiment::limits::kLabels, "classes (1: regression)"));
  cmd->add_option("--max-positions", o->max_positions, "max_position_embeddings")
      ->capture_default_str()
      ->check(integer_in(experiment::limits::kPositions, "max_position_embeddings"));
  cmd->add_option("--seed", o->seed, "Initialisation seed")
      ->capture_default_str()
      ->check(integer_in(experiment::limits::kSeed, "the initialisation seed"));
  cmd->add_flag("--force", o->force, "Write into a non-empty folder");
  return {cmd, [o] {
            experiment::init_model(*o);
            std::fprintf(stderr, "wrote a random-init %s (%s) to %s\n", o->arch.c_str(), o->preset.c_str(),
                         o->output.c_str());
            return 0;
          }};
}

}  // namespace ww::cli
