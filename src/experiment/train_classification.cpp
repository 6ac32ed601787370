// The sequence-classification task of `wattwise train` (BERT, DistilBERT): a labelled text data set
// (text/dataset.h) encoded once and batched by text::BatchLoader, scored by the classification
// metrics (or pearson / spearman / mse for a regression data set). train_run.cpp drives it.
#include <charconv>
#include <cstdio>
#include <sstream>

#include "train_task.h"
#include "wattwise/experiment/bench.h"
#include "wattwise/core/error.h"
#include "wattwise/experiment/evaluate.h"
#include "wattwise/io/file.h"
#include "wattwise/models/sequence_classifier.h"
#include "wattwise/text/batching.h"
#include "wattwise/text/dataset.h"
#include "wattwise/train/trainer.h"

namespace ww::experiment {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

text::SplitRatios parse_ratios(const std::string& text) {
  std::vector<double> parts;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    try {
      parts.push_back(std::stod(item));
    } catch (const std::exception&) {
      fail("data.split_ratios: '", item, "' is not a number");
    }
  }
  if (parts.size() != 3) fail("data.split_ratios must be three numbers train,validation,test (got '", text, "')");
  for (double p : parts)
    if (p < 0) fail("data.split_ratios must not be negative");
  return text::SplitRatios{parts[0], parts[1], parts[2]};
}

// A stratified, seeded subset of at most n examples (n == 0: all).
std::vector<text::Example> subsample(const std::vector<text::Example>& examples, int64_t n, bool regression, uint64_t seed) {
  if (n <= 0 || n >= int64_t(examples.size())) return examples;
  double share = double(n) / double(examples.size());
  auto parts = text::stratified_partition(examples, {share, 1.0 - share}, regression, seed);
  std::vector<text::Example> out;
  for (size_t i : parts[0]) out.push_back(examples[i]);
  return out;
}

// One example per line: {"text", "text_pair" (pair tasks), "label" or "target"}, in list order (the
// indices the plan's batches refer to). Invalid UTF-8 is replaced, not fatal: the file is a replay aid.
void write_examples_jsonl(const fs::path& path, const std::vector<text::Example>& examples) {
  std::string out;
  for (const text::Example& e : examples) {
    json row = {{"text", e.text}, {"label", e.label}, {"target", e.target}};
    if (e.text_pair) row["text_pair"] = *e.text_pair;
    out += row.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
  }
  io::write_file_atomic(path, out);
}

// A class weight as its shortest decimal (0.6, not the 0.6000000238... of the float widened).
json weight_json(float w) {
  char buffer[32];
  auto [end, ec] = std::to_chars(buffer, buffer + sizeof buffer, w);
  return json::parse(std::string(buffer, end));
}

class ClassificationBatches final : public EpochBatches {
 public:
  ClassificationBatches(std::shared_ptr<const text::EncodedExamples> encoded, const text::BatchOptions& options,
                        uint64_t epoch, const models::ModelConfig& config, bool record_plan)
      : loader_(std::move(encoded), options, epoch), config_(config), epoch_(epoch), record_plan_(record_plan) {}

  std::optional<MicroBatch> next() override {
    auto b = loader_.next();
    if (!b) return std::nullopt;
    MicroBatch m;
    m.batch = to_model_batch(*b, config_.type_vocab_size > 0, config_.regression);
    if (record_plan_) m.plan_line = json{{"epoch", epoch_}, {"indices", b->example_indices}}.dump() + "\n";
    m.examples = b->batch;
    return m;
  }

 private:
  text::BatchLoader loader_;
  const models::ModelConfig& config_;
  uint64_t epoch_;
  bool record_plan_;
};

class ClassificationTask final : public TrainTask {
 public:
  ClassificationTask(const TrainConfig& cfg, Device device);

  models::ModelRuntime& model() override { return *model_; }
  void save_model(const fs::path& dir, DType dtype) const override {
    save_model_and_tokenizer(*model_, *tokenizer_, dir, dtype, model_->config().max_position_embeddings);
  }
  // config.toml keeps train.class_weights as given (balanced is recomputed from the data when the
  // file is run again) with the weights it resolved to beside it.
  std::string config_toml() const override {
    const std::vector<float>& w = model_->class_weights();
    if (w.empty() || cfg_.get_string("train.class_weights") != "balanced") return cfg_.to_toml();
    std::string text;
    for (float v : w) text += (text.empty() ? "" : ",") + weight_json(v).dump();
    return cfg_.to_toml({{"train.class_weights", "resolved to " + text + " from the training examples"}});
  }
  std::vector<std::string> start_messages(int64_t total_steps, int64_t steps_per_epoch) const override {
    return {"training " + std::to_string(train_examples_.size()) + " examples of " + train_split_ + " for " +
            std::to_string(total_steps) + " steps (" + std::to_string(steps_per_epoch) + " per epoch) on " +
            settings_.device.str()};
  }
  void write_plan(const fs::path& plan_dir, int64_t) const override {
    write_examples_jsonl(plan_dir / "train.jsonl", train_examples_);
    if (eval_encoded_) write_examples_jsonl(plan_dir / "eval.jsonl", eval_examples_);
    if (test_encoded_) write_examples_jsonl(plan_dir / "test.jsonl", test_examples_);
  }
  std::unique_ptr<EpochBatches> epoch(uint64_t epoch, bool record_plan) override {
    return std::make_unique<ClassificationBatches>(train_encoded_, batch_options_, epoch, model_->config(),
                                                   record_plan);
  }

  bool has_eval() const override { return eval_encoded_ != nullptr; }
  bool has_test() const override { return test_encoded_ != nullptr; }
  json evaluate() override { return evaluate_encoded(*model_, eval_encoded_, settings_.batch_size * 2, max_length_); }
  void load_test_model(const fs::path& dir, const ExecutionChoice& execution) override {
    // Only evaluated: no gradients, no f32 masters beside the working weights.
    models::LoadOptions load;
    load.purpose = models::ModelPurpose::Inference;
    test_model_ = std::make_unique<models::SequenceClassifier>(
        models::SequenceClassifier::from_pretrained(dir, settings_.device, load));
    apply_execution(*test_model_, execution);
  }
  json evaluate_test() override {
    return evaluate_encoded(*test_model_, test_encoded_, settings_.batch_size * 2, max_length_);
  }
  std::string test_split() const override { return test_split_; }
  int64_t evaluated_samples(const json&, EvalSplit split) const override {
    return int64_t((split == EvalSplit::Eval ? eval_encoded_ : test_encoded_)->items.size());
  }
  std::string eval_line(int64_t step, double epoch, double value, const json& metrics, bool improved) const override {
    char line[256];
    std::snprintf(line, sizeof line, "eval at step %lld (epoch %.2f): %s %.4f, loss %.4f%s", (long long)step, epoch,
                  settings_.metric.c_str(), value, metrics.value("loss", 0.0), improved ? " (best so far, saved)" : "");
    return line;
  }
  std::string test_line(const json& metrics) const override {
    return "test (" + test_split_ + ", best model): " + metrics.dump();
  }

  size_t planned_activation_bytes() const override {
    return model_->planned_activation_bytes(settings_.batch_size, max_length_, /*training=*/true);
  }
  double training_flops(const models::Batch& batch) const override {
    return model_flops_per_step(model_->config(), batch.input_ids.size(0), batch.input_ids.size(1), /*training=*/true);
  }
  json model_metrics() const override {
    const models::ModelConfig& c = model_->config();
    return {{"arch", models::architecture_name(c.arch)},
            {"layers", c.num_layers},
            {"hidden_size", c.hidden_size},
            {"parameters", model_->parameters().numel()},
            {"from", model_path_.empty() ? "init:" + cfg_.get_string("model.preset") : model_path_.string()}};
  }
  json data_metrics() const override {
    return {{"path", cfg_.get_path("data.path").string()},
            {"train_split", train_split_},
            {"train_examples", train_examples_.size()},
            {"eval_split", eval_split_},
            {"eval_examples", eval_encoded_ ? eval_encoded_->items.size() : 0},
            {"test_split", test_split_},
            {"derived_splits", dataset_.derived_splits}};
  }
  void add_train_metrics(json& train, const TrainCounts&) const override {
    const std::vector<float>& w = model_->class_weights();
    json weights = w.empty() ? json(nullptr) : json::array();
    for (float v : w) weights.push_back(weight_json(v));
    train["class_weights"] = weights;
  }

 private:
  const TrainConfig& cfg_;
  int max_length_ = 0;
  fs::path model_path_;
  std::unique_ptr<text::Tokenizer> tokenizer_;
  text::Dataset dataset_;
  std::string train_split_, eval_split_, test_split_;
  std::unique_ptr<models::SequenceClassifier> model_, test_model_;
  std::vector<text::Example> train_examples_, eval_examples_, test_examples_;
  std::shared_ptr<const text::EncodedExamples> train_encoded_, eval_encoded_, test_encoded_;
  text::BatchOptions batch_options_;
};

ClassificationTask::ClassificationTask(const TrainConfig& cfg, Device device) : cfg_(cfg) {
  for (const char* key : {"data.format", "data.block_size", "data.valid_fraction", "data.cache_dir", "train.tokens_per_step"})
    if (cfg.differs_from_default(key)) fail(key, " applies to language modelling only (model.arch gpt2)");
  if (cfg.get_string("train.metric") == "perplexity")
    fail("train.metric perplexity applies to language modelling only (model.arch gpt2)");
  TaskSettings& s = settings_;
  s.device = device;
  s.seed = uint64_t(cfg.get_int("run.seed"));
  s.name = cfg.get_string("run.name");
  max_length_ = int(cfg.get_int("data.max_length"));
  s.batch_size = cfg.get_int("train.batch_size");
  s.metric = cfg.get_string("train.metric");
  s.higher_is_better = train::higher_is_better(s.metric);
  s.execution = training_execution(cfg, s.device);
  parse_loss_scale(cfg.get_string("train.loss_scale"));  // an error before any work
  const uint64_t seed = s.seed;
  const std::string& metric = s.metric;

  model_path_ = cfg.model_folder("model.path");
  fs::path tokenizer_path = cfg.get_path("model.tokenizer").empty() ? model_path_ : cfg.model_folder("model.tokenizer");
  tokenizer_ = text::load_tokenizer(tokenizer_path);

  text::DataOptions data_options;
  data_options.clean_html = cfg.get_bool("data.clean_html");
  data_options.collapse_whitespace = cfg.get_bool("data.collapse_whitespace");
  data_options.split_ratios = parse_ratios(cfg.get_string("data.split_ratios"));
  data_options.split_seed = seed;
  data_options.resplit_from_train = cfg.get_bool("data.resplit_from_train");
  data_options.text_column = cfg.get_string("data.text_column");
  data_options.text_pair_column = cfg.get_string("data.text_pair_column");
  data_options.label_column = cfg.get_string("data.label_column");
  dataset_ = text::load_dataset(cfg.get_path("data.path"), data_options);
  const text::Dataset& dataset = dataset_;
  train_split_ = dataset.resolve_split(cfg.get_string("data.train_split"));
  if (!cfg.get_string("data.eval_split").empty()) eval_split_ = dataset.resolve_split(cfg.get_string("data.eval_split"));
  if (!cfg.get_string("data.test_split").empty()) test_split_ = dataset.resolve_split(cfg.get_string("data.test_split"));
  if (metric == "pearson" || metric == "spearman" ? !dataset.regression : dataset.regression)
    fail("train.metric '", metric, "' does not apply to ", dataset.regression ? "a regression" : "a classification",
         " data set");

  if (!model_path_.empty()) {
    models::LoadOptions load;
    load.allow_new_head = true;
    load.head_seed = seed;
    load.allow_nonfinite = cfg.get_bool("model.allow_nonfinite");
    if (cfg.get_string("model.pooling") != "auto") load.pooling = models::parse_pooling(cfg.get_string("model.pooling"));
    model_ = std::make_unique<models::SequenceClassifier>(models::SequenceClassifier::from_pretrained(model_path_, device, load));
    if (model_->config().regression != dataset.regression ||
        (!dataset.regression && model_->config().num_labels != dataset.num_labels()))
      fail(model_path_.string(), ": the model has ", model_->config().num_labels, " labels but ",
           cfg.get_path("data.path").string(), " has ", dataset.num_labels());
  } else {
    std::string arch = cfg.get_string("model.arch");
    models::ModelConfig config = models::preset_config(
        arch == "bert" ? models::Architecture::Bert : models::Architecture::DistilBert, cfg.get_string("model.preset"),
        tokenizer_->vocab_size());
    config.num_labels = dataset.num_labels();
    config.regression = dataset.regression;
    config.max_position_embeddings = cfg.get_int("model.max_positions");
    config.pad_token_id = tokenizer_->pad_id();
    if (cfg.get_string("model.pooling") != "auto") config.pooling = models::parse_pooling(cfg.get_string("model.pooling"));
    config.validate("a new model");
    model_ = std::make_unique<models::SequenceClassifier>(config, device);
    model_->init_weights(seed);
  }
  models::SequenceClassifier& m = *model_;
  apply_execution(m, s.execution);
  if (!dataset.regression && m.config().id2label.empty()) m.set_label_names(dataset.label_names);
  if (tokenizer_->vocab_size() > m.config().vocab_size)
    fail("the tokenizer has ", tokenizer_->vocab_size(), " tokens but the model's vocabulary has ", m.config().vocab_size);
  if (max_length_ > m.config().max_position_embeddings)
    fail("data.max_length ", max_length_, " exceeds the model's max_position_embeddings ", m.config().max_position_embeddings);
  auto dropout_or = [&](const char* key, float current) {
    double v = cfg.get_float(key);
    return v < 0 ? current : float(v);
  };
  m.set_dropout(dropout_or("train.hidden_dropout", m.config().hidden_dropout),
                dropout_or("train.attention_dropout", m.config().attention_dropout),
                dropout_or("train.classifier_dropout", m.config().classifier_dropout));

  train_examples_ = subsample(dataset.split(train_split_), cfg.get_int("data.max_train_examples"), dataset.regression, seed);
  if (train_examples_.empty()) fail(cfg.get_path("data.path").string(), ": split '", train_split_, "' is empty");
  train_encoded_ =
      std::make_shared<const text::EncodedExamples>(text::encode_examples(*tokenizer_, train_examples_, max_length_));
  if (!eval_split_.empty()) {
    eval_examples_ = subsample(dataset.split(eval_split_), cfg.get_int("data.max_eval_examples"), dataset.regression, seed);
    eval_encoded_ =
        std::make_shared<const text::EncodedExamples>(text::encode_examples(*tokenizer_, eval_examples_, max_length_));
  }
  if (!test_split_.empty()) {
    test_examples_ = subsample(dataset.split(test_split_), cfg.get_int("data.max_eval_examples"), dataset.regression, seed);
    test_encoded_ =
        std::make_shared<const text::EncodedExamples>(text::encode_examples(*tokenizer_, test_examples_, max_length_));
  }

  // An empty evaluation split (a tiny data set carved by split_ratios) would fail only at the first
  // evaluation, after training; say so now, before the run folder exists.
  for (const auto& [split, encoded] : {std::pair{eval_split_, eval_encoded_}, std::pair{test_split_, test_encoded_}})
    if (encoded && encoded->items.empty())
      fail(cfg.get_path("data.path").string(), ": split '", split, "' is empty",
           dataset.derived_splits.empty() ? "" : " (carved out of train by data.split_ratios: too few examples)");

  batch_options_.batch_size = s.batch_size;
  batch_options_.max_length = max_length_;
  batch_options_.pad_to_max_length = cfg.get_string("data.padding") == "max";
  batch_options_.length_bucketing = cfg.get_bool("data.length_bucketing");
  batch_options_.shuffle = true;
  batch_options_.seed = seed;
  batch_options_.balance_classes = cfg.get_string("data.balance") == "classes";
  if (batch_options_.balance_classes && dataset.regression)
    fail("data.balance classes: ", cfg.get_path("data.path").string(), " is a regression data set (no classes to balance)");
  int64_t epoch_examples = int64_t(train_examples_.size());
  if (batch_options_.balance_classes) {
    std::vector<int32_t> labels;
    for (const text::Example& e : train_examples_) labels.push_back(e.label);
    epoch_examples = text::balanced_epoch_examples(labels);
  }
  set_grad_accum(cfg, s);
  s.batches_per_epoch = (epoch_examples + s.batch_size - 1) / s.batch_size;

  const std::string class_weights = cfg.get_string("train.class_weights");
  if (class_weights != "none" && dataset.regression)
    fail("train.class_weights ", class_weights, ": ", cfg.get_path("data.path").string(),
         " is a regression data set (no classes to weight)");
  std::vector<int32_t> train_labels;
  for (const text::Example& e : train_examples_) train_labels.push_back(e.label);
  m.set_class_weights(resolve_class_weights(class_weights, train_labels, m.config().num_labels, m.config().id2label));
}

}  // namespace

std::unique_ptr<TrainTask> make_classification_task(const TrainConfig& cfg, Device device) {
  return std::make_unique<ClassificationTask>(cfg, device);
}

}  // namespace ww::experiment
