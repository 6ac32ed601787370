// The causal language-modelling task of `wattwise train` (GPT-2): a token stream (text/lm_data.h)
// packed into windows of data.block_size tokens, scored by loss and perplexity over every scored
// token. train_run.cpp drives it, as it drives the classifiers.
#include <algorithm>
#include <bit>
#include <cstdio>

#include "train_task.h"
#include "wattwise/experiment/bench.h"
#include "wattwise/core/error.h"
#include "wattwise/experiment/evaluate.h"
#include "wattwise/io/file.h"
#include "wattwise/models/gpt2.h"
#include "wattwise/text/lm_data.h"

namespace ww::experiment {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// A token stream as little-endian int32 (the replay plan of a language-modelling run).
void write_tokens_i32(const fs::path& path, const std::vector<int32_t>& tokens) {
  static_assert(std::endian::native == std::endian::little, "the plan's token files are little-endian");
  io::write_file_atomic(path, std::string_view(reinterpret_cast<const char*>(tokens.data()), tokens.size() * sizeof(int32_t)));
}

class LmBatches final : public EpochBatches {
 public:
  LmBatches(const std::shared_ptr<const std::vector<int32_t>>& tokens, const text::LmLoaderOptions& options,
            uint64_t epoch, int32_t separator, bool record_plan)
      : loader_(tokens, options, epoch, separator), batch_size_(options.batch_size), epoch_(epoch),
        record_plan_(record_plan) {}

  std::optional<MicroBatch> next() override {
    auto b = loader_.next();
    if (!b) return std::nullopt;
    MicroBatch m;
    if (record_plan_) {
      const auto first = loader_.order().begin() + batch_index_ * batch_size_;
      const std::vector<int64_t> windows(first, first + b->batch);
      m.plan_line = json{{"epoch", epoch_}, {"windows", windows}}.dump() + "\n";
    }
    m.batch = to_model_batch(*b);
    m.examples = b->batch;
    m.tokens = b->input_tokens;
    ++batch_index_;
    return m;
  }

 private:
  text::LmLoader loader_;
  int64_t batch_size_, batch_index_ = 0;
  uint64_t epoch_;
  bool record_plan_;
};

class LanguageModellingTask final : public TrainTask {
 public:
  LanguageModellingTask(const TrainConfig& cfg, Device device);

  models::ModelRuntime& model() override { return *model_; }
  void save_model(const fs::path& dir, DType dtype) const override {
    save_model_and_tokenizer(*model_, *tokenizer_, dir, dtype, model_->config().n_positions);
  }
  // config.toml records what the run resolved (metric, a new model's n_positions), so that
  // `wattwise train --config <run>/config.toml` repeats this run.
  std::string config_toml() const override {
    TrainConfig resolved = cfg_;
    resolved.set("train.metric", settings_.metric, "resolved");
    if (model_path_.empty()) resolved.set("model.max_positions", std::to_string(model_->config().n_positions), "resolved");
    return resolved.to_toml();
  }
  std::vector<std::string> start_messages(int64_t total_steps, int64_t steps_per_epoch) const override {
    std::vector<std::string> lines;
    for (const std::string& note : corpus_.notes) lines.push_back("note: " + note);
    lines.push_back("language modelling: " + std::to_string(train_split_->tokens->size()) + " train tokens (" +
                    std::to_string(train_windows_) + " sequences of " + std::to_string(block_size_) + "), " +
                    std::to_string(total_steps) + " steps of " + std::to_string(tokens_per_step()) + " tokens (" +
                    std::to_string(steps_per_epoch) + " per epoch) on " + settings_.device.str());
    return lines;
  }
  // The replay plan: the token streams and the run's shape, so another framework can train from the
  // same start on the same data in the same order (window k = tokens [k·(T−1), k·(T−1)+T) of the
  // train stream; the last window is padded with the separator, attention mask 0, label −100).
  void write_plan(const fs::path& plan, int64_t total_steps) const override {
    write_tokens_i32(plan / "train_tokens.i32", *train_split_->tokens);
    if (eval_split_) write_tokens_i32(plan / "eval_tokens.i32", *eval_split_->tokens);
    const json info = {{"block_size", block_size_},
                       {"batch_size", settings_.batch_size},
                       {"grad_accum", settings_.grad_accum},
                       {"total_steps", total_steps},
                       {"separator_id", separator_},
                       {"train_windows", train_windows_},
                       {"eval_every", cfg_.get_int("train.eval_every")},
                       {"max_eval_sequences", max_eval_},
                       {"train_tokens", "train_tokens.i32"},
                       {"eval_tokens", eval_split_ ? json("eval_tokens.i32") : json(nullptr)}};
    io::write_file_atomic(plan / "plan.json", info.dump(2) + "\n");
  }
  std::unique_ptr<EpochBatches> epoch(uint64_t epoch, bool record_plan) override {
    return std::make_unique<LmBatches>(train_split_->tokens, loader_options_, epoch, separator_, record_plan);
  }

  bool has_eval() const override { return eval_split_ != nullptr; }
  bool has_test() const override { return test_split_ != nullptr; }
  json evaluate() override {
    return evaluate_lm(*model_, eval_split_->tokens, block_size_, settings_.batch_size, max_eval_, separator_);
  }
  void load_test_model(const fs::path& dir, const ExecutionChoice& execution) override {
    // Only evaluated: no gradients, no f32 masters beside the working weights.
    test_model_ = std::make_unique<models::Gpt2LMHeadModel>(
        models::Gpt2LMHeadModel::from_pretrained(dir, settings_.device, models::ModelPurpose::Inference));
    apply_execution(*test_model_, execution);
  }
  json evaluate_test() override {
    return evaluate_lm(*test_model_, test_split_->tokens, block_size_, settings_.batch_size, max_eval_, separator_);
  }
  std::string test_split() const override { return test_split_->name; }
  int64_t evaluated_samples(const json& metrics, EvalSplit) const override {
    return metrics["num_tokens"].get<int64_t>();
  }
  std::string eval_line(int64_t step, double epoch, double, const json& metrics, bool improved) const override {
    char line[256];
    std::snprintf(line, sizeof line, "eval at step %lld (epoch %.2f): loss %.4f, perplexity %.3f%s", (long long)step,
                  epoch, metrics["loss"].get<double>(), metrics["perplexity"].get<double>(),
                  improved ? " (best so far, saved)" : "");
    return line;
  }
  std::string test_line(const json& metrics) const override {
    char line[160];
    std::snprintf(line, sizeof line, "test (%s, best model): loss %.4f, perplexity %.3f", test_split_->name.c_str(),
                  metrics["loss"].get<double>(), metrics["perplexity"].get<double>());
    return line;
  }

  size_t planned_activation_bytes() const override {
    return model_->planned_activation_bytes(settings_.batch_size, block_size_, /*training=*/true);
  }
  double training_flops(const models::Batch& batch) const override {
    return gpt2_train_flops_per_step(model_->config(), batch.input_ids.size(0), batch.input_ids.size(1));
  }
  json model_metrics() const override {
    return {{"arch", "gpt2"},
            {"layers", model_->config().n_layer},
            {"hidden_size", model_->config().n_embd},
            {"parameters", model_->parameters().numel()},
            {"from", model_path_.empty() ? "init:" + cfg_.get_string("model.preset") : model_path_.string()}};
  }
  json data_metrics() const override {
    json cache = json::array();
    for (size_t i = 0; i < corpus_.cache_files.size(); ++i)
      cache.push_back(
          {{"file", corpus_.cache_files[i].string()}, {"status", text::cache_status_name(corpus_.cache_statuses[i])}});
    json data = {
        {"path", cfg_.get_path("data.path").string()},
        {"format", corpus_.format},
        {"block_size", block_size_},
        {"train_split", train_split_->name},
        {"train_examples", train_windows_},
        {"train_tokens", train_split_->tokens->size()},
        {"eval_split", eval_split_ ? eval_split_->name : ""},
        {"eval_examples", eval_split_ ? text::lm_window_count(int64_t(eval_split_->tokens->size()), block_size_) : 0},
        {"eval_tokens", eval_split_ ? eval_split_->tokens->size() : 0},
        {"test_split", test_split_ ? test_split_->name : ""},
        {"derived_splits",
         corpus_.format == "text" && corpus_.has_split("valid") ? json::array({"valid"}) : json::array()},
        {"token_cache", cache}};
    if (max_eval_ > 0 && eval_split_) data["eval_examples"] = std::min(max_eval_, data["eval_examples"].get<int64_t>());
    return data;
  }
  void add_train_metrics(json& train, const TrainCounts& counts) const override {
    train["tokens"] = counts.tokens;
    if (settings_.adaptive_accumulation) {  // steps of varying size: their mean
      train["grad_accum"] = "auto";
      train["tokens_per_step"] = counts.steps > 0 ? counts.tokens / counts.steps : 0;
    } else {
      train["grad_accum"] = settings_.grad_accum;
      train["tokens_per_step"] = tokens_per_step();
    }
    train["tokens_per_s"] = counts.seconds > 0 ? double(counts.tokens) / counts.seconds : 0.0;
  }

 private:
  int64_t tokens_per_step() const { return settings_.grad_accum * settings_.batch_size * block_size_; }

  const TrainConfig& cfg_;
  fs::path model_path_;
  std::unique_ptr<text::Tokenizer> tokenizer_;
  int32_t separator_ = 0;
  std::unique_ptr<models::Gpt2LMHeadModel> model_, test_model_;
  int64_t block_size_ = 0, max_eval_ = 0, train_windows_ = 0;
  text::LmCorpus corpus_;
  const text::LmSplit* train_split_ = nullptr;
  // The evaluation split and the test split (null: none).
  const text::LmSplit* eval_split_ = nullptr;
  const text::LmSplit* test_split_ = nullptr;
  text::LmLoaderOptions loader_options_;
};

LanguageModellingTask::LanguageModellingTask(const TrainConfig& cfg, Device device) : cfg_(cfg) {
  if (cfg.get_string("data.balance") != "none")
    fail("data.balance ", cfg.get_string("data.balance"), ": language modelling has no classes to balance");
  TaskSettings& s = settings_;
  s.per_token = true;
  s.device = device;
  s.seed = uint64_t(cfg.get_int("run.seed"));
  s.name = cfg.get_string("run.name");
  s.batch_size = cfg.get_int("train.batch_size");
  // The schema's default metric (accuracy) is the classifiers'; language modelling defaults to loss.
  s.metric =
      cfg.is_set("train.metric") || cfg.differs_from_default("train.metric") ? cfg.get_string("train.metric") : "loss";
  if (s.metric != "loss" && s.metric != "perplexity")
    fail("train.metric '", s.metric, "' does not apply to language modelling (use loss or perplexity)");
  s.higher_is_better = false;  // loss and perplexity: lower is better
  s.execution = training_execution(cfg, s.device);
  for (const char* key : {"data.padding", "data.length_bucketing", "data.clean_html", "data.collapse_whitespace",
                          "data.text_column", "data.text_pair_column", "data.label_column", "data.max_length",
                          "model.pooling", "train.classifier_dropout", "data.split_ratios", "data.resplit_from_train",
                          "train.class_weights"})
    if (cfg.differs_from_default(key)) fail(key, " does not apply to language modelling (gpt2)");
  const int64_t batch_size = s.batch_size;

  model_path_ = cfg.model_folder("model.path");
  const fs::path tokenizer_path = cfg.get_path("model.tokenizer").empty() ? model_path_ : cfg.model_folder("model.tokenizer");
  tokenizer_ = text::load_tokenizer(tokenizer_path);
  separator_ = text::end_of_text_id(*tokenizer_);

  if (!model_path_.empty()) {
    model_ = std::make_unique<models::Gpt2LMHeadModel>(models::Gpt2LMHeadModel::from_pretrained(
        model_path_, device, models::ModelPurpose::Training, cfg.get_bool("model.allow_nonfinite")));
  } else {
    models::Gpt2Config config = models::Gpt2Config::preset(cfg.get_string("model.preset"), tokenizer_->vocab_size());
    if (cfg.is_set("model.max_positions")) config.n_positions = cfg.get_int("model.max_positions");
    config.bos_token_id = config.eos_token_id = separator_;
    config.validate("a new model (model.preset " + cfg.get_string("model.preset") + ")");
    model_ = std::make_unique<models::Gpt2LMHeadModel>(config, device);
    model_->init_weights(s.seed);
  }
  models::Gpt2LMHeadModel& m = *model_;
  apply_execution(m, s.execution);
  if (tokenizer_->vocab_size() > m.config().vocab_size)
    fail("the tokenizer has ", tokenizer_->vocab_size(), " tokens but the model's vocabulary has ", m.config().vocab_size);
  block_size_ = cfg.get_int("data.block_size") > 0 ? cfg.get_int("data.block_size") : m.config().n_positions;
  if (block_size_ > m.config().n_positions)
    fail("data.block_size ", block_size_, " exceeds the model's n_positions ", m.config().n_positions);
  auto dropout_or = [&](const char* key, float current) {
    double v = cfg.get_float(key);
    return v < 0 ? current : float(v);
  };
  m.set_dropout(dropout_or("train.hidden_dropout", m.config().resid_pdrop),
                dropout_or("train.attention_dropout", m.config().attn_pdrop));

  text::LmDataOptions data_options;
  data_options.format = cfg.get_string("data.format");
  data_options.valid_fraction = cfg.get_float("data.valid_fraction");
  data_options.cache_dir = cfg.get_path("data.cache_dir");
  corpus_ = text::load_lm_corpus(cfg.get_path("data.path"), *tokenizer_, data_options);
  train_split_ = &corpus_.split(cfg.get_string("data.train_split"));
  // The default evaluation split (dev = valid) is optional: without one (valid_fraction 0) the run
  // trains without evaluating; a split named explicitly must exist.
  const std::string eval_name = cfg.get_string("data.eval_split");
  if (!eval_name.empty() && (cfg.differs_from_default("data.eval_split") || corpus_.has_split(eval_name)))
    eval_split_ = &corpus_.split(eval_name);
  if (!cfg.get_string("data.test_split").empty()) test_split_ = &corpus_.split(cfg.get_string("data.test_split"));
  max_eval_ = cfg.get_int("data.max_eval_examples");
  for (const text::LmSplit* split : {eval_split_, test_split_})
    if (split && text::lm_window_count(int64_t(split->tokens->size()), block_size_) == 0)
      fail(cfg.get_path("data.path").string(), ": split '", split->name, "' has too few tokens (", split->tokens->size(), ")");

  loader_options_.block_size = block_size_;
  loader_options_.batch_size = batch_size;
  loader_options_.shuffle = true;
  loader_options_.seed = s.seed;
  loader_options_.max_windows = cfg.get_int("data.max_train_examples");
  train_windows_ = text::LmLoader(train_split_->tokens, loader_options_, 0, separator_).num_windows();
  if (train_windows_ == 0)
    fail(cfg.get_path("data.path").string(), ": the train split has too few tokens (", train_split_->tokens->size(), ")");
  set_grad_accum(cfg, s);
  const int64_t tokens_per_micro_batch = batch_size * block_size_;
  if (cfg.get_int("train.tokens_per_step") > 0) {
    const int64_t wanted = cfg.get_int("train.tokens_per_step");
    if (wanted % tokens_per_micro_batch != 0)
      fail("train.tokens_per_step ", wanted, " is not a multiple of train.batch_size x data.block_size = ", batch_size,
           " x ", block_size_, " = ", tokens_per_micro_batch);
    s.grad_accum = wanted / tokens_per_micro_batch;
  }
  s.batches_per_epoch = (train_windows_ + batch_size - 1) / batch_size;
}

}  // namespace

std::unique_ptr<TrainTask> make_language_modelling_task(const TrainConfig& cfg, Device device) {
  return std::make_unique<LanguageModellingTask>(cfg, device);
}

}  // namespace ww::experiment
