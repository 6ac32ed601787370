#include "wattwise/experiment/predict.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <sstream>

#include <nlohmann/json.hpp>

#include "wattwise/core/error.h"
#include "wattwise/experiment/classifier.h"
#include "wattwise/experiment/evaluate.h"
#include "wattwise/experiment/quantize.h"
#include "wattwise/experiment/run_dir.h"
#include "wattwise/experiment/run_energy.h"
#include "wattwise/io/file.h"
#include "wattwise/models/sequence_classifier.h"
#include "wattwise/text/input_file.h"
#include "wattwise/text/tokenizer.h"

namespace ww::experiment {

PredictSummary run_predict(const PredictOptions& options) {
  if (options.batch_size <= 0) fail("--batch-size must be positive, got ", options.batch_size);
  if (options.max_length < 0) fail("--max-length must not be negative, got ", options.max_length);
  check_output_is_not_input(options.input, "--input", options.output, "--output");
  ClassifierOptions load;
  load.model_dir = options.model_dir;
  load.tokenizer = options.tokenizer;
  load.max_length = options.max_length;
  load.device = options.device;
  load.precision = options.precision;
  load.attention = options.attention;
  load.allow_nonfinite = options.allow_nonfinite;
  InferenceClassifier classifier(load);
  const models::ModelConfig& config = classifier.config();
  const text::Tokenizer* tokenizer = &classifier.tokenizer();
  const int max_length = classifier.max_length();

  std::vector<text::TextExample> examples = text::read_text_examples(options.input, options.columns);
  std::vector<text::Encoding> encodings;
  encodings.reserve(examples.size());
  for (const auto& e : examples) {
    try {
      encodings.push_back(tokenizer->encode(e.text, e.text_pair ? std::optional<std::string_view>(*e.text_pair)
                                                                 : std::nullopt, max_length));
    } catch (const Error& err) {
      fail(options.input.string(), ":", e.line, ": ", err.what());
    }
  }

  nlohmann::json quantization = classifier.quantize(options.calibration, encodings, options.batch_size);

  PredictSummary summary;
  summary.run_dir = create_run_dir(options.runs_dir, "predict");
  RunDirGuard run_dir_guard(summary.run_dir);  // a failed prediction leaves no folder behind
  RunEnergy energy(summary.run_dir, energy_settings_for(options.device), "predict");
  energy.begin("inference");
  const int64_t L = config.num_labels;
  std::ostringstream out;
  for (size_t start = 0; start < encodings.size(); start += size_t(options.batch_size)) {
    size_t end = std::min(encodings.size(), start + size_t(options.batch_size));
    const int64_t B = int64_t(end - start);
    std::vector<const text::Encoding*> batch;
    for (size_t i = start; i < end; ++i) {
      batch.push_back(&encodings[i]);
      summary.tokens += int64_t(encodings[i].input_ids.size());
    }
    auto t0 = std::chrono::steady_clock::now();
    std::vector<float> logits = classifier.logits(batch);
    summary.seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    check_finite_logits(logits, L, options.input.string() + ": example", int64_t(start));
    for (int64_t b = 0; b < B; ++b) {
      const float* row = logits.data() + b * L;
      nlohmann::json line;
      line["input_ids"] = encodings[start + size_t(b)].input_ids;
      line["logits"] = std::vector<float>(row, row + L);
      if (config.regression) {
        line["label"] = row[0];
      } else {
        std::vector<float> probs = class_probabilities(row, L);
        int64_t best = int64_t(std::max_element(probs.begin(), probs.end()) - probs.begin());
        line["probs"] = probs;
        line["label"] = best;
        line["label_name"] = config.label_name(best);
      }
      out << line.dump() << '\n';
    }
  }
  summary.examples = int64_t(examples.size());
  nlohmann::json phase = energy.end("inference", summary.examples);
  summary.energy_line = energy_summary_line(phase);
  nlohmann::json metrics;
  metrics["model"] = options.model_dir.string();
  metrics["input"] = options.input.string();
  metrics["output"] = options.output.string();
  metrics["device"] = options.device.str();
  metrics["precision"] = options.precision;
  metrics["attention"] = classifier.attention_name();
  if (!quantization.is_null()) metrics.update(quantization);
  metrics["peak_memory_bytes"] = memory_stats(options.device).peak;
  metrics["examples"] = summary.examples;
  metrics["tokens"] = summary.tokens;
  metrics["batch_size"] = options.batch_size;
  metrics["max_length"] = max_length;
  metrics["model_seconds"] = summary.seconds;
  metrics["ms_per_example"] = summary.examples ? 1e3 * summary.seconds / double(summary.examples) : 0.0;
  metrics["examples_per_s"] = summary.seconds > 0 ? double(summary.examples) / summary.seconds : 0.0;
  metrics["energy"] = energy.finish(summary.examples);
  io::write_file_atomic(summary.run_dir / "metrics.json", metrics.dump(2) + "\n");
  // The predictions last: an error before them leaves neither the output nor the run folder.
  if (options.output == "-") {
    std::fwrite(out.str().data(), 1, out.str().size(), stdout);
    if (std::fflush(stdout) != 0 || std::ferror(stdout)) fail("--output -: cannot write the predictions to stdout");
  } else {
    io::write_file_atomic(options.output, out.str());
  }
  run_dir_guard.keep();
  return summary;
}

}  // namespace ww::experiment
