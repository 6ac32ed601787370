#pragma once
// Evaluation shared by `train` (periodic and final) and `eval`: batched inference over an encoded
// split, metrics (and loss) as JSON.
#include <filesystem>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "wattwise/core/device.h"
#include "wattwise/experiment/quantize.h"
#include "wattwise/models/gpt2.h"
#include "wattwise/models/sequence_classifier.h"
#include "wattwise/text/batching.h"
#include "wattwise/text/dataset.h"
#include "wattwise/text/lm_data.h"

namespace ww::experiment {

// Metrics of `model` on `encoded` ({"loss", "accuracy", "f1", ...}; regression: pearson, ...).
nlohmann::json evaluate_encoded(models::SequenceClassifier& model,
                                const std::shared_ptr<const text::EncodedExamples>& encoded,
                                int64_t batch_size, int max_length);

// Throws ww::Error when a row of `logits` (rows of `row_size`) holds NaN or Inf, naming `what`
// ("input.jsonl: example") with the example's 1-based number (first_example + the row): a prediction
// or an accuracy computed from them would be garbage presented as a result.
void check_finite_logits(const std::vector<float>& logits, int64_t row_size, const std::string& what,
                         int64_t first_example);

// Host batch → host tensors for the model (a GPU model uploads them asynchronously itself).
models::Batch to_model_batch(const text::HostBatch& batch, bool token_types, bool regression);
models::Batch to_model_batch(const text::LmBatch& batch);

// Language modelling: the mean loss over every scored token of `tokens` packed into windows of
// `block_size` (in order, at most max_sequences of them; 0: all) and perplexity = exp(loss):
// {"num_sequences", "num_tokens" (scored), "loss", "perplexity", "tokens_per_s"}.
nlohmann::json evaluate_lm(models::Gpt2LMHeadModel& model, const std::shared_ptr<const std::vector<int32_t>>& tokens,
                           int64_t block_size, int64_t batch_size, int64_t max_sequences, int32_t pad_id);

// A labelled data set to score a classifier on, its labels read as the model's classes:
//  - `label_names` given (eval --label-names): they are the label set, in class-id order (as many as
//    the model has classes); a data label is one of them or its index;
//  - else a regression model: every label is a number;
//  - else a model whose config.json names every class (id2label): those names, in id order, so a
//    file holding only some classes (a held-out file with one class) still lines up, and labels
//    given as names map by name; if the data's labels are neither those names nor class indices,
//    the set is inferred from the data as below;
//  - else inferred from the data (integers 0..K-1, or sorted distinct strings).
// Fixed label sets (GLUE tasks, IMDB) are always their own. Checks that the data set has the
// model's number of classes (or both are regression).
text::Dataset load_dataset_for_model(const std::filesystem::path& data, text::DataOptions options,
                                     const models::ModelConfig& config,
                                     const std::vector<std::string>& label_names = {});

// Whether a folder holds a GPT-2 model (config.json's model_type is "gpt2").
bool is_gpt2_model_folder(const std::filesystem::path& dir);

struct EvalOptions {
  std::filesystem::path model_dir;
  std::filesystem::path data;     // "-": standard input (CSV, TSV or JSONL, told by its first line)
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
  std::vector<std::string> label_names;  // the data's label set in class-id order (default: the model's id2label)
  // CSV/TSV/JSONL files: the columns (fields) of the text, a pair's second text and the label.
  std::string text_column = "text";
  std::string text_pair_column;
  std::string label_column = "label";
  // GPT-2 models (language modelling): the data is text (see text/lm_data.h); split train, dev
  // (= valid) or test; perplexity over windows of block_size tokens (0: the model's n_positions).
  std::string data_format = "auto";  // auto, text, wikitext
  int64_t block_size = 0;
  double valid_fraction = 0.1;
  std::filesystem::path cache_dir;   // empty: text::default_lm_cache_dir()
  int64_t max_sequences = 0;         // 0: all
  bool allow_nonfinite = false;  // load NaN/Inf weights with a warning instead of refusing them
};

// `wattwise eval`: metrics on a split, with the energy of the pass; writes runs/<ts>_eval/. A GPT-2
// model folder gives loss and perplexity on a text split instead of classification metrics.
nlohmann::json run_eval(const EvalOptions& options);

}  // namespace ww::experiment
