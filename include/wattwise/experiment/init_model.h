#pragma once
// `wattwise init-model`: a random-init model folder in Hugging Face layout (config.json,
// model.safetensors, tokenizer files), for from-scratch runs, tests and benchmarks.
#include <cstdint>
#include <filesystem>
#include <string>

namespace ww::experiment {

struct InitModelOptions {
  std::string arch = "bert";    // bert | distilbert
  std::string preset = "tiny";  // tiny | mini | small | base
  std::filesystem::path tokenizer;
  std::filesystem::path output;
  int64_t num_labels = 2;
  int64_t max_positions = 512;
  uint64_t seed = 42;
  bool force = false;  // allow writing into a non-empty folder
};

void init_model(const InitModelOptions& options);

}  // namespace ww::experiment
