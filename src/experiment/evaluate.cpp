#include "wattwise/experiment/evaluate.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <optional>
#include <set>

#include "wattwise/core/error.h"
#include "wattwise/experiment/execution.h"
#include "wattwise/experiment/run_dir.h"
#include "wattwise/experiment/run_energy.h"
#include "wattwise/io/file.h"
#include "wattwise/text/dataset.h"
#include "wattwise/text/input_file.h"
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

models::Batch to_model_batch(const text::LmBatch& b) {
  models::Batch batch;
  batch.input_ids = b.input_ids;
  batch.attention_mask = b.attention_mask;
  batch.labels = b.labels;
  return batch;
}

nlohmann::json evaluate_lm(models::Gpt2LMHeadModel& model, const std::shared_ptr<const std::vector<int32_t>>& tokens,
                           int64_t block_size, int64_t batch_size, int64_t max_sequences, int32_t pad_id) {
  text::LmLoaderOptions options;
  options.block_size = block_size;
  options.batch_size = batch_size;
  options.shuffle = false;
  options.max_windows = max_sequences;
  text::LmLoader loader(tokens, options, /*epoch=*/0, pad_id);
  if (loader.num_windows() == 0) fail("language-modelling evaluation: the split has too few tokens (", tokens->size(), ")");
  double loss_sum = 0;
  int64_t scored = 0, input_tokens = 0;
  const auto start = std::chrono::steady_clock::now();
  while (auto b = loader.next()) {
    model.forward(to_model_batch(*b), /*training=*/false);
    // The model's loss is the mean over this batch's scored tokens: weight it by their count so the
    // result is the mean over every token of the split.
    loss_sum += double(model.loss()) * double(b->target_tokens);
    scored += b->target_tokens;
    input_tokens += b->input_tokens;
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const double loss = scored > 0 ? loss_sum / double(scored) : 0.0;
  if (!std::isfinite(loss)) fail("language-modelling evaluation: the loss is not finite (", loss, ")");
  return {{"num_sequences", loader.num_windows()},
          {"num_tokens", scored},
          {"loss", loss},
          {"perplexity", std::exp(loss)},
          {"tokens_per_s", seconds > 0 ? double(input_tokens) / seconds : 0.0}};
}

bool is_gpt2_model_folder(const std::filesystem::path& dir) {
  std::ifstream in(dir / "config.json");
  if (!in) return false;
  try {
    nlohmann::json config = nlohmann::json::parse(in);
    return config.is_object() && config.value("model_type", std::string()) == "gpt2";
  } catch (const nlohmann::json::exception&) {
    return false;  // the model loader reports a broken config.json with its details
  }
}

text::Dataset load_dataset_for_model(const std::filesystem::path& data, text::DataOptions options,
                                     const models::ModelConfig& config, const std::vector<std::string>& label_names) {
  auto check_classes = [&](const text::Dataset& dataset) {
    if (dataset.regression != config.regression || (!config.regression && dataset.num_labels() != config.num_labels))
      fail(data.string(), ": the data set has ", dataset.num_labels(), " labels", dataset.regression ? " (regression)" : "",
           " but the model has ", config.num_labels,
           config.regression ? "" : " (--label-names NAME,... gives the model's classes in id order)");
    return dataset;
  };
  if (!label_names.empty()) {
    if (config.regression) fail("--label-names: the model is a regression model (no classes to name)");
    if (int64_t(label_names.size()) != config.num_labels)
      fail("--label-names: ", label_names.size(), " names but the model has ", config.num_labels, " classes");
    options.label_names = label_names;
    return check_classes(text::load_dataset(data, options));
  }
  if (config.regression) {
    options.label_kind = text::LabelKind::regression;
    return check_classes(text::load_dataset(data, options));
  }
  const bool names_every_class =
      int64_t(config.id2label.size()) == config.num_labels &&
      std::none_of(config.id2label.begin(), config.id2label.end(), [](const std::string& n) { return n.empty(); });
  if (names_every_class) {
    text::DataOptions with_names = options;
    with_names.label_names = config.id2label;
    try {
      text::Dataset dataset = text::load_dataset(data, with_names);
      if (dataset.num_labels() == config.num_labels && !dataset.regression) {
        // A subset of the classes is fine (a held-out file of one class), but worth saying: a model
        // for another task would pass this way too.
        std::set<int32_t> present;
        for (const auto& [name, examples] : dataset.splits)
          for (const auto& example : examples) present.insert(example.label);
        std::string missing;
        for (int64_t id = 0; id < config.num_labels; ++id)
          if (!present.count(int32_t(id))) missing += (missing.empty() ? "" : ", ") + config.label_name(id);
        if (!missing.empty() && !present.empty())
          std::fprintf(stderr, "note: %s holds labels of %zu of the model's %lld classes (none of: %s)\n",
                       data.string().c_str(), present.size(), (long long)config.num_labels, missing.c_str());
        return dataset;
      }
    } catch (const Error&) {
      // The data's labels are not the model's names (say "pos"/"neg" against LABEL_0/LABEL_1):
      // infer them from the data as before.
    }
  }
  return check_classes(text::load_dataset(data, options));
}

namespace {

nlohmann::json run_lm_eval(const EvalOptions& o) {
  models::Gpt2LMHeadModel model =
      models::Gpt2LMHeadModel::from_pretrained(o.model_dir, o.device, models::ModelPurpose::Inference, o.allow_nonfinite);
  apply_execution(model, {o.precision, o.attention, "none"});
  auto tokenizer = text::load_tokenizer(o.model_dir);
  const int64_t block_size = o.block_size ? o.block_size : model.config().n_positions;
  if (block_size < 2 || block_size > model.config().n_positions)
    fail("--block-size ", block_size, " must be in [2, ", model.config().n_positions, "] (the model's n_positions)");
  if (o.max_length) fail("--max-length is for classifiers; a GPT-2 model takes --block-size");
  text::LmDataOptions data_options;
  data_options.format = o.data_format;
  data_options.valid_fraction = o.valid_fraction;
  data_options.cache_dir = o.cache_dir;
  text::LmCorpus corpus = text::load_lm_corpus(o.data, *tokenizer, data_options);
  for (const std::string& note : corpus.notes) std::fprintf(stderr, "note: %s\n", note.c_str());
  const text::LmSplit& split = corpus.split(o.split);

  std::filesystem::path run_dir = create_run_dir(o.runs_dir, "eval");
  RunDirGuard run_dir_guard(run_dir);  // a failed evaluation leaves no folder behind
  RunEnergy energy(run_dir, energy_settings_for(o.device), "eval");
  energy.begin("evaluation");
  nlohmann::json metrics = evaluate_lm(model, split.tokens, block_size, o.batch_size, o.max_sequences, corpus.separator_id);
  // Energy per sample is per scored token here (J/token).
  nlohmann::json phase = energy.end("evaluation", metrics["num_tokens"].get<int64_t>());
  nlohmann::json report = metrics;
  report["split"] = split.name;
  report["model"] = o.model_dir.string();
  report["data"] = o.data.string();
  report["block_size"] = block_size;
  report["execution"] = {{"device", o.device.str()},
                         {"precision", o.precision},
                         {"attention", models::attention_kernel_name(model.attention_kernel())},
                         {"peak_memory_bytes", memory_stats(o.device).peak}};
  report["energy"] = energy.finish(metrics["num_tokens"].get<int64_t>());
  io::write_file_atomic(run_dir / "metrics.json", report.dump(2) + "\n");
  if (!o.output.empty()) io::write_file_atomic(o.output, report.dump(2) + "\n");
  run_dir_guard.keep();
  std::fprintf(stderr, "eval: %s loss %.4f, perplexity %.3f over %lld tokens, %.0f tokens/s\nenergy: %s\nrun folder: %s\n",
               split.name.c_str(), metrics["loss"].get<double>(), metrics["perplexity"].get<double>(),
               (long long)metrics["num_tokens"].get<int64_t>(), metrics["tokens_per_s"].get<double>(),
               energy_summary_line(phase).c_str(), run_dir.c_str());
  return report;
}

}  // namespace

void check_finite_logits(const std::vector<float>& logits, int64_t row_size, const std::string& what,
                         int64_t first_example) {
  for (size_t i = 0; i < logits.size(); ++i)
    if (!std::isfinite(logits[i]))
      fail(what, " ", first_example + int64_t(i) / row_size + 1, ": the model's logits are not finite (",
           logits[i], "); its weights or its arithmetic overflow (a 16-bit precision may: try fp32)");
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
  int64_t seen = 0;
  while (auto b = loader.next()) {
    models::Batch batch = to_model_batch(*b, config.type_vocab_size > 0, config.regression);
    std::vector<float> logits = model.forward(batch, /*training=*/false).to_float_vector();
    check_finite_logits(logits, config.num_labels, "evaluation example", seen);
    seen += b->batch;
    acc.add(logits, b->labels, b->targets, model.loss(), b->batch);
  }
  return acc.metrics();
}

nlohmann::json run_eval(const EvalOptions& o) {
  if (o.batch_size <= 0) fail("--batch-size must be positive");
  if (!o.output.empty()) check_output_is_not_input(o.data, "--data", o.output, "--output");
  if (is_gpt2_model_folder(o.model_dir)) return run_lm_eval(o);
  models::LoadOptions load;
  load.purpose = models::ModelPurpose::Inference;
  load.allow_nonfinite = o.allow_nonfinite;
  models::SequenceClassifier model = models::SequenceClassifier::from_pretrained(o.model_dir, o.device, load);
  apply_inference_execution(model, {o.precision, o.attention, "none"});
  const models::ModelConfig& config = model.config();
  auto tokenizer = text::load_tokenizer(o.model_dir);
  text::DataOptions data_options;
  data_options.clean_html = o.clean_html;
  data_options.collapse_whitespace = o.clean_html;
  data_options.text_column = o.text_column;
  data_options.text_pair_column = o.text_pair_column;
  data_options.label_column = o.label_column;
  // Standard input: into a file of the format its first line tells, which the loader reads as any.
  std::filesystem::path data = o.data;
  std::optional<RunDirGuard> stdin_copy;  // removed when the evaluation ends
  if (o.data == "-") {
    auto [text, extension] = text::read_stdin_with_format(/*csv_possible=*/true);
    if (extension == ".txt")
      fail("--data -: standard input is not CSV, TSV or JSON Lines (its first line has no comma, tab or JSON object)");
    const std::filesystem::path dir = create_run_dir(std::filesystem::temp_directory_path(), "wattwise_stdin");
    stdin_copy.emplace(dir);
    data = dir / ("stdin" + extension);
    io::write_file_atomic(data, text);
  }
  text::Dataset dataset = load_dataset_for_model(data, data_options, config, o.label_names);
  const std::string split = dataset.resolve_split(o.split);
  int max_length = o.max_length ? o.max_length : int(std::min<int64_t>(512, config.max_position_embeddings));
  if (max_length > config.max_position_embeddings)
    fail("--max-length ", max_length, " exceeds the model's max_position_embeddings ", config.max_position_embeddings);
  auto encoded = std::make_shared<const text::EncodedExamples>(
      text::encode_examples(*tokenizer, dataset.split(split), max_length));

  // Quantized precisions: calibrated before the measured pass (its energy is not in the evaluation's).
  const nlohmann::json quantization =
      quantize_for_precision(model, o.precision, o.calibration, *tokenizer, encoded->items, max_length, o.batch_size);

  std::filesystem::path run_dir = create_run_dir(o.runs_dir, "eval");
  RunDirGuard run_dir_guard(run_dir);  // a failed evaluation leaves no folder behind
  RunEnergy energy(run_dir, energy_settings_for(o.device), "eval");
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
  run_dir_guard.keep();
  std::fprintf(stderr, "eval: %s\nenergy: %s\nrun folder: %s\n", metrics.dump().c_str(),
               energy_summary_line(phase).c_str(), run_dir.c_str());
  return report;
}

}  // namespace ww::experiment
