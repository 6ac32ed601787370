#pragma once
// A sequence classifier ready for inference, loaded the way `predict` and `serve` both need it: the
// model at its precision and attention kernel, its tokenizer, the truncation length, and one call
// that runs a padded batch of encodings. One inference path for the batch command and the server.
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "wattwise/core/device.h"
#include "wattwise/experiment/quantize.h"
#include "wattwise/models/sequence_classifier.h"
#include "wattwise/text/tokenizer.h"

namespace ww::experiment {

struct ClassifierOptions {
  std::filesystem::path model_dir;
  std::filesystem::path tokenizer;  // empty: the model folder's tokenizer files
  int max_length = 0;               // 0: min(512, max_position_embeddings)
  Device device;
  std::string precision = "fp32";   // see execution.h; quantized ones need quantize() before use
  std::string attention = "auto";
  bool allow_nonfinite = false;
};

class InferenceClassifier {
 public:
  // Loads the model (inference purpose) and its tokenizer and applies precision and attention;
  // errors name the flag or file at fault. A quantized precision is applied by quantize().
  explicit InferenceClassifier(const ClassifierOptions& options);

  // For int8-weight, int8 and fp8: quantizes the model, calibrating on `calibration.data` or else
  // on the first examples of `run_encodings`. Returns the keys for metrics.json (empty object for
  // the other precisions).
  nlohmann::json quantize(const CalibrationOptions& calibration, const std::vector<text::Encoding>& run_encodings,
                          int64_t batch_size);

  // Logits [batch.size() x num_labels], row-major: the encodings padded to the longest one and run
  // as one forward pass (padding never changes a logit beyond 1e-5).
  std::vector<float> logits(const std::vector<const text::Encoding*>& batch);

  const models::ModelConfig& config() const { return model_.config(); }
  const text::Tokenizer& tokenizer() const { return *tokenizer_; }
  int max_length() const { return max_length_; }
  const std::string& precision() const { return precision_; }
  std::string attention_name() const;
  Device device() const { return device_; }

 private:
  models::SequenceClassifier model_;
  std::unique_ptr<text::Tokenizer> tokenizer_;
  int max_length_ = 0;
  std::string precision_;
  Device device_;
};

// Softmax of one row of logits (in double, as predict has always computed it).
std::vector<float> class_probabilities(const float* logits, int64_t n);

}  // namespace ww::experiment
