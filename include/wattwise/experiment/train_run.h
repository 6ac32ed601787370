#pragma once
// `wattwise train`: one fine-tuning run from a resolved TrainConfig into runs/<UTC>_<name>/:
// config.toml, status.json, train_log.csv, metrics.json, best_model/ (Hugging Face layout),
// power_trace.csv, emissions.csv and, with train.checkpoint_every or when a signal interrupts it,
// checkpoints/step_<N>/. All configuration errors surface before any work starts.
//
// While the training loop runs, a first SIGINT, SIGTERM or SIGHUP stops it at the next optimizer
// step boundary: the logs, energy, a checkpoint and metrics.json (status "interrupted") are written
// and the result says which signal it was (the CLI exits 128 + signal). A second signal ends the
// process at once. resume_training() continues such a run in place from its newest checkpoint.
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "wattwise/experiment/train_config.h"

namespace ww::experiment {

struct TrainRunResult {
  std::filesystem::path run_dir;
  nlohmann::json metrics;              // what metrics.json holds
  std::string status = "completed";    // or "interrupted"
  int signal = 0;                      // the interrupting signal (0: none)
  std::filesystem::path checkpoint;    // the newest training checkpoint (empty: none)
  bool removed = false;                // interrupted before its first step: the folder was removed
  bool worker = false;                 // a rank other than 0 of a data-parallel run (it writes nothing)
};

TrainRunResult run_training(const TrainConfig& config);

// A key given with --resume: `origin` names where it came from in errors ("--train.max_steps").
struct ConfigOverride {
  std::string key, value, origin;
};

// Continues the run in `run_dir` from its newest checkpoint, with the configuration in its
// config.toml; `overrides` may only set resume_overridable_keys() (train_checkpoint.h). Logs are
// appended to, time and energy accumulate, and metrics.json describes the whole run at the end.
// Errors (no checkpoint, another configuration, a damaged checkpoint, another process training in
// the folder) are one ww::Error naming the file, before anything in the folder changes.
TrainRunResult resume_training(const std::filesystem::path& run_dir, const std::vector<ConfigOverride>& overrides = {});

}  // namespace ww::experiment
