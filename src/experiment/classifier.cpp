#include "wattwise/experiment/classifier.h"

#include <algorithm>
#include <cmath>

#include "wattwise/core/error.h"
#include "wattwise/experiment/execution.h"

namespace ww::experiment {

namespace {
models::SequenceClassifier load_model(const ClassifierOptions& options) {
  models::LoadOptions load;
  load.purpose = models::ModelPurpose::Inference;
  load.allow_nonfinite = options.allow_nonfinite;
  return models::SequenceClassifier::from_pretrained(options.model_dir, options.device, load);
}
}  // namespace

InferenceClassifier::InferenceClassifier(const ClassifierOptions& options)
    : model_(load_model(options)), precision_(options.precision), device_(options.device) {
  if (options.max_length < 0) fail("--max-length must not be negative, got ", options.max_length);
  apply_inference_execution(model_, {options.precision, options.attention, "none"});
  const models::ModelConfig& config = model_.config();
  tokenizer_ = text::load_tokenizer(options.tokenizer.empty() ? options.model_dir : options.tokenizer);
  if (tokenizer_->vocab_size() > config.vocab_size)
    fail("tokenizer has ", tokenizer_->vocab_size(), " tokens but the model's vocabulary has only ",
         config.vocab_size);
  max_length_ = options.max_length ? options.max_length : int(std::min<int64_t>(512, config.max_position_embeddings));
  if (max_length_ > config.max_position_embeddings)
    fail("--max-length ", max_length_, " exceeds the model's max_position_embeddings ", config.max_position_embeddings);
  if (max_length_ < 2) fail("--max-length must be at least 2 (room for [CLS] and [SEP])");
}

nlohmann::json InferenceClassifier::quantize(const CalibrationOptions& calibration,
                                             const std::vector<text::Encoding>& run_encodings, int64_t batch_size) {
  if (!quantization_of(precision_)) return nlohmann::json::object();
  std::vector<text::EncodedExample> inputs;
  for (size_t i = 0; i < run_encodings.size() && int64_t(i) < calibration.examples; ++i)
    inputs.push_back({run_encodings[i].input_ids, run_encodings[i].token_type_ids, 0, 0.0f});
  return quantize_for_precision(model_, precision_, calibration, *tokenizer_, inputs, max_length_, batch_size);
}

std::vector<float> InferenceClassifier::logits(const std::vector<const text::Encoding*>& batch) {
  if (batch.empty()) return {};
  const bool token_types = model_.config().type_vocab_size > 0;
  const int64_t B = int64_t(batch.size());
  int64_t T = 0;
  for (const text::Encoding* e : batch) T = std::max<int64_t>(T, int64_t(e->input_ids.size()));
  std::vector<int32_t> ids(size_t(B * T), tokenizer_->pad_id()), mask(size_t(B * T), 0), types(size_t(B * T), 0);
  for (int64_t b = 0; b < B; ++b) {
    const text::Encoding& e = *batch[size_t(b)];
    for (size_t t = 0; t < e.input_ids.size(); ++t) {
      size_t k = size_t(b) * size_t(T) + t;
      ids[k] = e.input_ids[t];
      mask[k] = 1;
      types[k] = token_types ? e.token_type_ids[t] : 0;
    }
  }
  models::Batch input;
  input.input_ids = Tensor::from_vector(ids, {B, T});
  input.attention_mask = Tensor::from_vector(mask, {B, T});
  if (token_types) input.token_type_ids = Tensor::from_vector(types, {B, T});
  return model_.forward(input, /*training=*/false).to_float_vector();
}

std::string InferenceClassifier::attention_name() const {
  return models::attention_kernel_name(model_.attention_kernel());
}

std::vector<float> class_probabilities(const float* logits, int64_t n) {
  float max = *std::max_element(logits, logits + n);
  std::vector<float> p(static_cast<size_t>(n));
  double sum = 0;
  for (int64_t k = 0; k < n; ++k) sum += p[size_t(k)] = std::exp(logits[k] - max);
  for (auto& v : p) v = float(v / sum);
  return p;
}

}  // namespace ww::experiment
