#pragma once
// `wattwise predict`: run a sequence classifier over a file of texts.
#include <cstdint>
#include <filesystem>
#include <string>

#include "wattwise/core/device.h"

namespace ww::experiment {

struct PredictOptions {
  std::filesystem::path model_dir;
  std::filesystem::path input;   // JSONL (text, text_pair), TSV (sentence) or plain text
  std::filesystem::path output;  // JSONL, one line per input, input order
  std::filesystem::path tokenizer;  // empty: the model folder's tokenizer files
  int max_length = 0;   // 0: min(512, max_position_embeddings)
  int batch_size = 32;
  Device device;
};

struct PredictSummary {
  int64_t examples = 0;
  int64_t tokens = 0;
  double seconds = 0;  // model time (tokenization and I/O excluded)
};

// Output lines: {"input_ids": [...], "logits": [...], "probs": [...], "label": k, "label_name": "..."}
// Batches are padded to their longest example (padding never changes a logit beyond 1e-5). The
// output file is written atomically: on any error nothing is written.
PredictSummary run_predict(const PredictOptions& options);

}  // namespace ww::experiment
