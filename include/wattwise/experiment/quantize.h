#pragma once
// Post-training quantization for `eval` and `predict` (and the sweep through eval): the calibration
// sample and the record of what was done.
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "wattwise/models/sequence_classifier.h"
#include "wattwise/text/batching.h"
#include "wattwise/text/tokenizer.h"

namespace ww::experiment {

struct CalibrationOptions {
  int64_t examples = 128;     // --calibration: examples whose activations set the static input scales
  std::filesystem::path data;  // --calibration-data: texts (JSONL text/text_pair, TSV sentence or plain
                               // lines); empty: the first `examples` of the data being run
};

// For a quantized precision (int8-weight, int8, fp8; see execution.h) quantizes `model`, calibrating
// int8 and fp8 on up to options.examples examples (max-abs: each layer's largest |input| over the
// sample) taken from options.data or else from `examples_being_run`, in batches of batch_size
// truncated to max_length. Returns the keys recorded in metrics.json: quantization,
// calibration_examples, calibration_method (max-abs, or none for int8-weight), calibration_data; an
// empty object for other precisions.
nlohmann::json quantize_for_precision(models::SequenceClassifier& model, const std::string& precision,
                                      const CalibrationOptions& options, const text::Tokenizer& tokenizer,
                                      const std::vector<text::EncodedExample>& examples_being_run, int max_length,
                                      int64_t batch_size);

}  // namespace ww::experiment
