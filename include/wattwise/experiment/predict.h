#pragma once
// `wattwise predict`: run a sequence classifier over a file of texts.
#include <cstdint>
#include <filesystem>
#include <string>

#include "wattwise/core/device.h"
#include "wattwise/experiment/quantize.h"
#include "wattwise/text/input_file.h"

namespace ww::experiment {

struct PredictOptions {
  std::filesystem::path model_dir;
  std::filesystem::path input;   // JSONL (text, text_pair), TSV (sentence) or plain text; "-": stdin
  std::filesystem::path output;  // JSONL, one line per input, input order; "-": stdout
  text::TextColumns columns;     // the JSONL fields / TSV columns of the texts (empty: the defaults)
  std::filesystem::path tokenizer;  // empty: the model folder's tokenizer files
  int max_length = 0;   // 0: min(512, max_position_embeddings)
  int batch_size = 32;
  Device device;
  std::string precision = "fp32";  // fp32, tf32, bf16, fp16 (16-bit: GPU only), int8-weight, int8, fp8 (GPU)
  std::string attention = "auto";  // auto, fused, reference
  CalibrationOptions calibration;  // int8 and fp8: the calibration sample (default: the input's first 128)
  std::filesystem::path runs_dir = "runs";  // receives runs/<UTC>_predict/ (metrics.json, energy files)
  bool allow_nonfinite = false;  // load NaN/Inf weights with a warning instead of refusing them
};

struct PredictSummary {
  int64_t examples = 0;
  int64_t tokens = 0;
  double seconds = 0;  // model time (tokenization and I/O excluded)
  std::filesystem::path run_dir;
  std::string energy_line;  // one-line energy summary of the inference phase
};

// Output lines: {"input_ids": [...], "logits": [...], "probs": [...], "label": k, "label_name": "..."}
// Batches are padded to their longest example (padding never changes a logit beyond 1e-5). The
// output file is written atomically: on any error nothing is written. The run folder holds
// metrics.json (counts, latency, throughput, the energy of the inference phase), power_trace.csv
// and emissions.csv.
PredictSummary run_predict(const PredictOptions& options);

}  // namespace ww::experiment
