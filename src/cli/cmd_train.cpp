#include <cstdio>
#include <map>

#include "cli/commands.h"
#include "wattwise/core/error.h"
#include "wattwise/experiment/train_run.h"

namespace ww::cli {

Command train_command(CLI::App& app) {
  struct Args {
    std::string config, resume;
    std::vector<std::string> sets;
    std::map<std::string, std::string> flags;  // --section.key value, one per schema key
  };
  auto args = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand(
      "train", "Fine-tune a classifier or train GPT-2 (config keys: see docs/CONFIG.md); --resume RUN_DIR continues a run");
  cmd->add_option("--config", args->config, "TOML run configuration");
  cmd->add_option("--set", args->sets, "Override a key: --set train.lr=3e-5 (repeatable)");
  cmd->add_option("--resume", args->resume,
                  "Continue the run in RUN_DIR from its newest checkpoint (checkpoints/step_N/), with its config.toml; "
                  "only train.max_steps, train.epochs, train.checkpoint_every, train.checkpoint_keep and run.progress "
                  "may be given too")
      ->option_text("RUN_DIR");
  for (const auto& key : experiment::train_config_schema()) {
    cmd->add_option_function<std::string>(
           "--" + key.key, [args, k = key.key](const std::string& v) { args->flags[k] = v; }, key.help)
        ->group("Config keys (same as in the TOML file)");
  }
  // Unknown flags reach the callback instead of CLI11's generic message, so a mistyped key gets the
  // same "did you mean" hint as in the TOML file and --set.
  cmd->allow_extras();
  return {cmd, [args, cmd] {
            std::vector<std::string> extras = cmd->remaining();
            if (!extras.empty()) {
              const std::string& first = extras.front();
              if (first.rfind("--", 0) != 0) fail("train: unexpected argument '", first, "'");
              std::string key = first.substr(2, first.find('=') == std::string::npos ? std::string::npos : first.find('=') - 2);
              std::string hint = experiment::nearest_key(key);
              fail("train: unknown option '--", key, "'", hint.empty() ? "" : " (did you mean '--" + hint + "'?)");
            }
            experiment::TrainRunResult r;
            if (!args->resume.empty()) {
              if (!args->config.empty())
                fail("train --resume: --config cannot be combined with it (the run's configuration is ",
                     args->resume, "/config.toml)");
              std::vector<experiment::ConfigOverride> overrides;
              for (const auto& [key, value] : args->flags) overrides.push_back({key, value, "--" + key});
              for (const auto& s : args->sets) {
                const size_t eq = s.find('=');
                if (eq == std::string::npos || eq == 0) fail("--set: expected key=value, got '", s, "'");
                overrides.push_back({s.substr(0, eq), s.substr(eq + 1), "--set"});
              }
              r = experiment::resume_training(args->resume, overrides);
            } else {
              experiment::TrainConfig config;
              if (!args->config.empty()) config.merge_toml_file(args->config);
              for (const auto& [key, value] : args->flags) config.set(key, value, "--" + key);
              for (const auto& s : args->sets) config.set(s, "--set");
              r = experiment::run_training(config);
            }
            // Interrupted: the library said where everything is; the exit code says which signal.
            if (r.signal != 0) return 128 + r.signal;
            if (!r.worker) std::fprintf(stderr, "run folder: %s\n", r.run_dir.c_str());
            return 0;
          }};
}

}  // namespace ww::cli
