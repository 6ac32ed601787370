#pragma once
// Evaluation shared by `train` (periodic and final) and `eval`: batched inference over an encoded
// split, metrics (and loss) as JSON.
#include <filesystem>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "wattwise/core/device.h"
#include "wattwise/experiment/quantize.h"
#include "wattwise/models/sequence_classifier.h"
#include "wattwise/text/batching.h"

namespace ww::experiment {

// Metrics of `model` on `encoded` ({"loss", "accuracy", "f1", ...}; regression: pearson, ...).
nlohmann::json evaluate_encoded(models::SequenceClassifier& model,
                                const std::shared_ptr<const text::EncodedExamples>& encoded,
                                int64_t batch_size, int max_length);

// Host batch → host tensors for the model (a GPU model uploads them asynchronously itself).
models::Batch to_model_batch(const text::HostBatch& batch, bool token_types, bool regression);

struct EvalOptions {
  std::filesystem::path model_dir;
  std::filesystem::path data;
  std::string split = "dev";
  std::filesystem::path output;    // metrics JSON (optional)
  std::filesystem::path runs_dir = "runs";
  int max_length = 0;              // 0: min(512, the model's positions)
  int64_t batch_size = 64;
  bool clean_html = false;
  Device device;
  std::string precision = "fp32";  // fp32, tf32, bf16, fp16 (16-bit: GPU only), int8-weight, int8, fp8 (GPU)
  std::string attention = "auto";  // auto, fused, reference
  CalibrationOptions calibration;  // int8 and fp8: the calibration sample (default: the split's first 128)
};

// `wattwise eval`: metrics on a split, with the energy of the pass; writes runs/<ts>_eval/.
nlohmann::json run_eval(const EvalOptions& options);

}  // namespace ww::experiment
