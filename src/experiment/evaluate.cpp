#include "wattwise/experiment/evaluate.h"

#include <cstdio>

#include "wattwise/core/error.h"
#include "wattwise/experiment/execution.h"
#include "wattwise/experiment/run_dir.h"
#include "wattwise/experiment/run_energy.h"
#include "wattwise/io/file.h"
#include "wattwise/text/dataset.h"
#include "wattwise/text/tokenizer.h"
#include "wattwise/models/sequence_classifier.h"
#include "wattwise/train/trainer.h"

namespace ww::experiment {

models::Batch to_model_batch(const text::HostBatch& b, bool token_types, bool regression) {
  models::Batch batch;
  batch.input_ids = Tensor::from_vector(b.input_ids, {b.batch, b.seq_len});
  batch.attention_mask = Tensor::from_vector(b.attention_mask, {b.batch, b.seq_len});
  if (token_types) batch.token_type_ids = Tensor::from_vector(b.token_type_ids, {b.batch, b.seq_len});
  if (regression) {
    if (!b.targets.empty()) batch.labels = Tensor::from_vector(b.targets, {b.batch});
  } else if (!b.labels.empty()) {
    batch.labels = Tensor::from_vector(b.labels, {b.batch});
  }
  return batch;
}

nlohmann::json evaluate_encoded(models::SequenceClassifier& model,
                                const std::shared_ptr<const text::EncodedExamples>& encoded,
                                int64_t batch_size, int max_length) {
  const models::ModelConfig& config = model.config();
  text::BatchOptions options;
  options.batch_size = batch_size;
  options.max_length = max_length;
  options.shuffle = false;
  options.length_bucketing = false;
  text::BatchLoader loader(encoded, options, /*epoch=*/0);
  train::EvalAccumulator acc(config.num_labels, config.regression);
  while (auto b = loader.next()) {
    models::Batch batch = to_model_batch(*b, config.type_vocab_size > 0, config.regression);
    std::vector<float> logits = model.forward(batch, /*training=*/false).to_float_vector();
    acc.add(logits, b->labels, b->targets, model.loss(), b->batch);
  }
  return acc.metrics();
}

nlohmann::json run_eval(const EvalOptions& o) {
  if (o.batch_size <= 0) fail("--batch-size must be positive");
  models::SequenceClassifier model = models::SequenceClassifier::from_pretrained(o.model_dir, o.device);
  apply_inference_execution(model, {o.precision, o.attention, "none"});
  const models::ModelConfig& config = model.config();
  auto tokenizer = text::load_tokenizer(o.model_dir);
  text::DataOptions data_options;
  data_options.clean_html = o.clean_html;
  data_options.collapse_whitespace = o.clean_html;
  text::Dataset dataset = text::load_dataset(o.data, data_options);
  const std::string split = dataset.resolve_split(o.split);
  if (dataset.regression != config.regression || (!config.regression && dataset.num_labels() != config.num_labels))
    fail(o.data.string(), ": the data set has ", dataset.num_labels(), " labels", dataset.regression ? " (regression)" : "",
         " but the model has ", config.num_labels);
  int max_length = o.max_length ? o.max_length : int(std::min<int64_t>(512, config.max_position_embeddings));
  if (max_length > config.max_position_embeddings)
    fail("--max-length ", max_length, " exceeds the model's max_position_embeddings ", config.max_position_embeddings);
  auto encoded = std::make_shared<const text::EncodedExamples>(
      text::encode_examples(*tokenizer, dataset.split(split), max_length));

  // Quantized precisions: calibrated before the measured pass (its energy is not in the evaluation's).
  const nlohmann::json quantization =
      quantize_for_precision(model, o.precision, o.calibration, *tokenizer, encoded->items, max_length, o.batch_size);

  std::filesystem::path run_dir = create_run_dir(o.runs_dir, "eval");
  RunEnergy energy(run_dir, EnergySettings{}, "eval");
  energy.begin("evaluation");
  nlohmann::json metrics = evaluate_encoded(model, encoded, o.batch_size, max_length);
  nlohmann::json phase = energy.end("evaluation", int64_t(encoded->items.size()));
  nlohmann::json report = metrics;
  report["split"] = split;
  report["model"] = o.model_dir.string();
  report["data"] = o.data.string();
  report["execution"] = {{"device", o.device.str()},
                         {"precision", o.precision},
                         {"attention", models::attention_kernel_name(model.attention_kernel())},
                         {"peak_memory_bytes", memory_stats(o.device).peak}};
  report["execution"].update(quantization);
  report["energy"] = energy.finish(int64_t(encoded->items.size()));
  io::write_file_atomic(run_dir / "metrics.json", report.dump(2) + "\n");
  if (!o.output.empty()) io::write_file_atomic(o.output, report.dump(2) + "\n");
  std::fprintf(stderr, "eval: %s\nenergy: %s\nrun folder: %s\n", metrics.dump().c_str(),
               energy_summary_line(phase).c_str(), run_dir.c_str());
  return report;
}

}  // namespace ww::experiment
