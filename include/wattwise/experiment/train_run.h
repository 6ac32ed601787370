#pragma once
// `wattwise train`: one fine-tuning run from a resolved TrainConfig into runs/<UTC>_<name>/:
// config.toml, train_log.csv, metrics.json, best_model/ (Hugging Face layout), power_trace.csv,
// emissions.csv. All configuration errors surface before any work starts.
#include <filesystem>

#include <nlohmann/json.hpp>

#include "wattwise/experiment/train_config.h"

namespace ww::experiment {

struct TrainRunResult {
  std::filesystem::path run_dir;
  nlohmann::json metrics;  // what metrics.json holds
};

TrainRunResult run_training(const TrainConfig& config);

}  // namespace ww::experiment
