#pragma once
// `wattwise generate`: continue a prompt with a GPT-2 model folder (greedy, or sampling with
// temperature, top-k and top-p), with the KV cache.
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "wattwise/core/device.h"

namespace ww::experiment {

struct GenerateRunOptions {
  std::filesystem::path model_dir;
  std::string prompt;
  int64_t max_new_tokens = 50;
  bool greedy = false;
  float temperature = 1.0f;
  int64_t top_k = 50;     // 0: no top-k restriction
  float top_p = 1.0f;     // 1: no nucleus restriction
  uint64_t seed = 42;
  bool stop_at_eos = true;  // stop after the model's eos token (<|endoftext|>)
  Device device;
  std::string precision = "fp32";  // fp32, tf32, bf16, fp16 (16-bit: GPU only)
  // Called with the text of each new token as it is chosen (streaming); may be empty.
  std::function<void(const std::string&)> on_text;
  bool allow_nonfinite = false;  // load NaN/Inf weights with a warning instead of refusing them
};

struct GenerateRunResult {
  std::string text;                 // the prompt followed by the continuation
  std::string continuation;         // the new text only
  std::vector<int32_t> prompt_ids, new_ids;
  double seconds = 0;               // generation only (not loading)
  double tokens_per_s = 0;          // new tokens per second
};

// Errors (not a GPT-2 folder, an empty prompt, prompt + max_new_tokens beyond n_positions, bad
// sampling values) name the option at fault.
GenerateRunResult run_generate(const GenerateRunOptions& options);

}  // namespace ww::experiment
