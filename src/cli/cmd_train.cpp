#include <cstdio>
#include <map>

#include "cli/commands.h"
#include "wattwise/core/error.h"
#include "wattwise/experiment/hf_training_args.h"
#include "wattwise/experiment/train_run.h"

namespace ww::cli {

Command train_command(CLI::App& app) {
  struct Args {
    std::string config, resume, hf_args;
    std::vector<std::string> sets;
    std::map<std::string, std::string> flags;  // --section.key value, one per schema key
  };
  auto args = std::make_shared<Args>();
  CLI::App* cmd = app.add_subcommand(
      "train", "Fine-tune a classifier or train GPT-2 (config keys: see docs/CONFIG.md); --resume RUN_DIR continues a run");
  cmd->add_option("--config", args->config, "TOML run configuration");
  cmd->add_option("--set", args->sets, "Override a key: --set train.lr=3e-5 (repeatable)");
  cmd->add_option("--hf-args", args->hf_args,
                  "A Hugging Face TrainingArguments JSON (TrainingArguments.to_json_string()): its fields as config keys, "
                  "after --config and before the flags (docs/CONFIG.md, Hugging Face names)")
      ->option_text("ARGS.json");
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
            // Flags that are not schema keys: Hugging Face TrainingArguments names (--learning_rate
            // 3e-5, --fp16), else an error with the nearest key.
            std::vector<std::pair<std::string, std::string>> hf_flags;
            const std::vector<std::string> extras = cmd->remaining();
            for (size_t i = 0; i < extras.size(); ++i) {
              const std::string& arg = extras[i];
              if (arg.rfind("--", 0) != 0) fail("train: unexpected argument '", arg, "'");
              const size_t eq = arg.find('=');
              const std::string key = arg.substr(2, eq == std::string::npos ? std::string::npos : eq - 2);
              std::string value;
              if (eq != std::string::npos) value = arg.substr(eq + 1);
              else if (i + 1 < extras.size() && extras[i + 1].rfind("--", 0) != 0) value = extras[++i];
              else value = "true";  // a bare switch, as HfArgumentParser takes --fp16
              const std::optional<experiment::Settings> settings =
                  experiment::hf_training_argument(key, value, experiment::TrainConfig(), "--" + key);
              if (settings)
                for (const auto& [wattwise_key, v] : *settings)
                  if (args->flags.count(wattwise_key))
                    fail("train: --", key, " and --", wattwise_key, " both set ", wattwise_key, " (give one)");
              if (!settings) {
                std::string hint = experiment::nearest_key(key);
                if (hint.empty()) hint = experiment::nearest_name(key, experiment::hf_training_argument_names());
                fail("train: unknown option '--", key, "'", hint.empty() ? "" : " (did you mean '--" + hint + "'?)");
              }
              hf_flags.emplace_back(key, value);
            }
            experiment::TrainRunResult r;
            if (!args->resume.empty()) {
              if (!args->config.empty() || !args->hf_args.empty())
                fail("train --resume: ", args->config.empty() ? "--hf-args" : "--config",
                     " cannot be combined with it (the run's configuration is ", args->resume, "/config.toml)");
              for (const auto& [key, value] : hf_flags)
                fail("train --resume: --", key, " cannot be given (the run's configuration is ", args->resume,
                     "/config.toml; only train.max_steps, train.epochs, train.checkpoint_every, train.checkpoint_keep and "
                     "run.progress may change)");
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
              if (!args->hf_args.empty()) {
                const std::vector<std::string> skipped = experiment::merge_hf_args_file(config, args->hf_args);
                if (!skipped.empty()) {
                  std::string list;
                  for (const std::string& field : skipped) list += (list.empty() ? "" : ", ") + field;
                  std::fprintf(stderr, "wattwise: %s: fields without effect here, skipped: %s\n", args->hf_args.c_str(),
                               list.c_str());
                }
              }
              for (const auto& [key, value] : hf_flags) config.set(key, value, "--" + key);
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
