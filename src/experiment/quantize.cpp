#include "wattwise/experiment/quantize.h"

#include <algorithm>
#include <cstdio>

#include "wattwise/core/error.h"
#include "wattwise/experiment/evaluate.h"
#include "wattwise/experiment/execution.h"
#include "wattwise/text/input_file.h"

namespace ww::experiment {

namespace {
std::vector<text::EncodedExample> encode_calibration_file(const std::filesystem::path& path, int64_t limit,
                                                          const text::Tokenizer& tokenizer, int max_length) {
  std::vector<text::TextExample> texts = text::read_text_examples(path);
  std::vector<text::EncodedExample> out;
  for (const auto& t : texts) {
    if (int64_t(out.size()) >= limit) break;
    try {
      text::Encoding e = tokenizer.encode(
          t.text, t.text_pair ? std::optional<std::string_view>(*t.text_pair) : std::nullopt, max_length);
      text::EncodedExample item;
      item.input_ids = std::move(e.input_ids);
      item.token_type_ids = std::move(e.token_type_ids);
      out.push_back(std::move(item));
    } catch (const Error& err) {
      fail(path.string(), ":", t.line, ": ", err.what());
    }
  }
  return out;
}
}  // namespace

nlohmann::json quantize_for_precision(models::SequenceClassifier& model, const std::string& precision,
                                      const CalibrationOptions& options, const text::Tokenizer& tokenizer,
                                      const std::vector<text::EncodedExample>& examples_being_run, int max_length,
                                      int64_t batch_size) {
  const std::optional<ops::QuantMethod> method = quantization_of(precision);
  if (!method) return nlohmann::json::object();
  if (options.examples < 1) fail("--calibration must be at least 1 example, got ", options.examples);
  if (batch_size < 1) fail("--batch-size must be positive, got ", batch_size);
  models::QuantizationOptions q;
  q.method = *method;
  nlohmann::json record = {{"quantization", precision}};
  if (*method == ops::QuantMethod::Int8Weight) {
    record["calibration_examples"] = 0;
    record["calibration_method"] = "none";
    record["calibration_data"] = "";
  } else {
    std::vector<text::EncodedExample> from_file;
    const std::vector<text::EncodedExample>* source = &examples_being_run;
    if (!options.data.empty()) {
      from_file = encode_calibration_file(options.data, options.examples, tokenizer, max_length);
      source = &from_file;
    }
    const size_t count = std::min(source->size(), size_t(options.examples));
    if (count == 0)
      fail("precision ", precision, ": no calibration examples in ",
           options.data.empty() ? std::string("the data being run") : options.data.string());
    const models::ModelConfig& config = model.config();
    text::BatchOptions batching;
    batching.batch_size = batch_size;
    batching.max_length = max_length;
    for (size_t start = 0; start < count; start += size_t(batch_size)) {
      std::vector<const text::EncodedExample*> items;
      std::vector<size_t> indices;
      for (size_t i = start; i < std::min(count, start + size_t(batch_size)); ++i) {
        items.push_back(&(*source)[i]);
        indices.push_back(i);
      }
      text::HostBatch host = text::make_batch(items, indices, tokenizer.pad_id(), batching);
      host.labels.clear();  // calibration needs the activations only
      host.targets.clear();
      q.calibration.push_back(to_model_batch(host, config.type_vocab_size > 0, config.regression));
    }
    record["calibration_examples"] = int64_t(count);
    record["calibration_method"] = "max-abs";
    record["calibration_data"] = options.data.empty() ? std::string("first examples of the data being run")
                                                      : options.data.string();
  }
  model.quantize_for_inference(q);
  std::fprintf(stderr, "quantized the encoder's linear layers: %s (calibration: %s, %lld examples)\n",
               precision.c_str(), record["calibration_method"].get<std::string>().c_str(),
               (long long)record["calibration_examples"].get<int64_t>());
  return record;
}

}  // namespace ww::experiment
