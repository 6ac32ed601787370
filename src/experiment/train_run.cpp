#include "wattwise/experiment/train_run.h"

#include <bit>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <sstream>

#include "wattwise/core/error.h"
#include "wattwise/experiment/evaluate.h"
#include "wattwise/experiment/execution.h"
#include "wattwise/experiment/progress.h"
#include "wattwise/experiment/run_dir.h"
#include "wattwise/experiment/run_energy.h"
#include "wattwise/io/file.h"
#include "wattwise/models/gpt2.h"
#include "wattwise/models/sequence_classifier.h"
#include "wattwise/text/batching.h"
#include "wattwise/text/dataset.h"
#include "wattwise/text/lm_data.h"
#include "wattwise/text/tokenizer.h"
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
// A token stream as little-endian int32 (the replay plan of a language-modelling run).
void write_tokens_i32(const fs::path& path, const std::vector<int32_t>& tokens) {
  static_assert(std::endian::native == std::endian::little, "the plan's token files are little-endian");
  io::write_file_atomic(path, std::string_view(reinterpret_cast<const char*>(tokens.data()), tokens.size() * sizeof(int32_t)));
}

void write_examples_jsonl(const fs::path& path, const std::vector<text::Example>& examples) {
  std::string out;
  for (const text::Example& e : examples) {
    json row = {{"text", e.text}, {"label", e.label}, {"target", e.target}};
    if (e.text_pair) row["text_pair"] = *e.text_pair;
    out += row.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
  }
  io::write_file_atomic(path, out);
}

// Writes the model and tokenizer into dir via a sibling temporary folder, so a crash never leaves a
// half-written best_model/.
template <typename Model>
void save_model_folder(const Model& model, const text::Tokenizer& tokenizer, const fs::path& dir, DType dtype) {
  fs::path partial = dir.string() + ".partial";
  std::error_code ec;
  fs::remove_all(partial, ec);
  try {
    model.save(partial, dtype);
    tokenizer.save(partial);
  } catch (...) {
    fs::remove_all(partial, ec);  // a failed save (full disk) leaves no half-written folder
    throw;
  }
  fs::path old = dir.string() + ".old";
  fs::remove_all(old, ec);
  ec.clear();
  if (fs::exists(dir)) fs::rename(dir, old, ec);
  if (ec) {
    std::error_code ignored;
    fs::remove_all(partial, ignored);
    fail(dir.string(), ": cannot replace the saved model (", ec.message(), ")");
  }
  fs::rename(partial, dir, ec);
  if (ec) {
    std::error_code ignored;
    fs::rename(old, dir, ignored);  // put the previous best model back
    fs::remove_all(partial, ignored);
    fail(dir.string(), ": cannot move the saved model into place (", ec.message(), ")");
  }
  fs::remove_all(old, ec);
}

// The optimizer, schedule, accumulation and loss-scaling options of a run.
train::TrainerOptions trainer_options_of(const TrainConfig& cfg, int64_t total_steps, int64_t grad_accum,
                                         const std::string& precision) {
  train::TrainerOptions t;
  t.optimizer.kind = train::parse_optimizer_kind(cfg.get_string("train.optimizer"));
  t.optimizer.weight_decay = cfg.get_float("train.weight_decay");
  t.optimizer.beta1 = cfg.get_float("train.beta1");
  t.optimizer.beta2 = cfg.get_float("train.beta2");
  t.optimizer.eps = cfg.get_float("train.eps");
  if (t.optimizer.kind == train::OptimizerKind::SGD) {
    t.optimizer.momentum = cfg.get_float("train.momentum");
    t.optimizer.nesterov = cfg.get_bool("train.nesterov");
  }
  t.optimizer.max_grad_norm = cfg.get_float("train.max_grad_norm");
  train::validate(t.optimizer);
  t.schedule.kind = train::parse_schedule_kind(cfg.get_string("train.schedule"));
  t.schedule.learning_rate = cfg.get_float("train.lr");
  t.schedule.total_steps = total_steps;
  if (cfg.get_int("train.warmup_steps") > 0) t.schedule.warmup_steps = cfg.get_int("train.warmup_steps");
  else t.schedule.warmup_ratio = cfg.get_float("train.warmup_ratio");
  t.grad_accum = grad_accum;
  t.label_smoothing = float(cfg.get_float("train.label_smoothing"));
  t.seed = uint64_t(cfg.get_int("run.seed"));
  if (precision == "fp16") {
    const std::optional<float> fixed_loss_scale = parse_loss_scale(cfg.get_string("train.loss_scale"));
    t.dynamic_loss_scaling = !fixed_loss_scale;
    t.initial_loss_scale = fixed_loss_scale.value_or(65536.0f);
    t.growth_interval = cfg.get_int("train.loss_scale_growth_interval");
  }
  return t;
}

std::string csv_number(double v) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.6g", v);
  return buffer;
}

// The per-step bookkeeping both training loops share: the progress display, a train_log.csv row
// every log_every optimizer steps (and at the last) with the rate over the window since the last
// row, and the file rewritten at most every 30 s (atomically: a crash leaves the previous version).
class StepLog {
 public:
  StepLog(fs::path file, const std::string& rate_column, Progress& progress, int64_t log_every, int64_t total_steps)
      : file_(std::move(file)),
        csv_("step,epoch,loss,lr,grad_norm," + rate_column + ",elapsed_s\n"),
        progress_(progress),
        log_every_(log_every),
        total_steps_(total_steps) {}
  void add_items(double n) { window_items_ += n; }  // examples or tokens processed
  void on_step(double epoch, const train::StepResult& r) {
    const double window_s = seconds(window_start_);
    const double rate = window_s > 0 ? window_items_ / window_s : 0;
    progress_.update(epoch, r.step, r.loss, rate);
    if (r.step % log_every_ != 0 && r.step != total_steps_) return;
    csv_ += std::to_string(r.step) + "," + csv_number(epoch) + "," + csv_number(r.loss) + "," + csv_number(r.lr) + "," +
            csv_number(r.grad_norm) + "," + csv_number(rate) + "," + csv_number(elapsed()) + "\n";
    window_items_ = 0;
    window_start_ = Clock::now();
    if (seconds(last_flush_) > 30) flush();
  }
  void flush() {
    io::write_file_atomic(file_, csv_);
    last_flush_ = Clock::now();
  }
  double elapsed() const { return seconds(started_); }

 private:
  using Clock = std::chrono::steady_clock;
  static double seconds(Clock::time_point since) { return std::chrono::duration<double>(Clock::now() - since).count(); }
  fs::path file_;
  std::string csv_;
  Progress& progress_;
  int64_t log_every_, total_steps_;
  Clock::time_point started_ = Clock::now(), last_flush_ = started_, window_start_ = started_;
  double window_items_ = 0;
};


// ---- causal language modelling (GPT-2) ---------------------------------------------------------------

// Training a GPT-2 model on text: the same run folder, trainer, energy and progress as the
// classifier path, with token-stream data (text/lm_data.h) and loss/perplexity evaluation.
TrainRunResult run_lm_training(const TrainConfig& cfg) {
  const Device device = parse_device(cfg.get_string("run.device"));
  const uint64_t seed = uint64_t(cfg.get_int("run.seed"));
  const std::string name = cfg.get_string("run.name");
  const int64_t batch_size = cfg.get_int("train.batch_size");
  // The schema's default metric (accuracy) is the classifiers'; language modelling defaults to loss.
  const std::string metric =
      cfg.is_set("train.metric") || cfg.differs_from_default("train.metric") ? cfg.get_string("train.metric") : "loss";
  if (metric != "loss" && metric != "perplexity")
    fail("train.metric '", metric, "' does not apply to language modelling (use loss or perplexity)");
  ExecutionChoice execution;
  execution.precision = cfg.get_string("train.precision");
  execution.attention = cfg.get_string("model.attention");
  execution.checkpointing = cfg.get_string("train.checkpointing");
  execution.cuda_graphs = cfg.get_bool("run.cuda_graphs");
  if (execution.precision != "fp32" && device.is_cpu())
    fail("train.precision ", execution.precision, " needs a GPU (run.device is cpu; the CPU trains in fp32)");
  if (execution.attention == "fused" && device.is_cpu())
    fail("model.attention fused needs a GPU (run.device is cpu; the CPU runs the reference attention)");
  for (const char* key : {"data.padding", "data.length_bucketing", "data.clean_html", "data.collapse_whitespace",
                          "data.text_column", "data.text_pair_column", "data.label_column", "data.max_length",
                          "model.pooling", "train.classifier_dropout", "data.split_ratios", "data.resplit_from_train"})
    if (cfg.differs_from_default(key)) fail(key, " does not apply to language modelling (gpt2)");

  // Everything that can fail on bad input happens before the run folder exists.
  const fs::path model_path = cfg.get_path("model.path");
  const fs::path tokenizer_path = cfg.get_path("model.tokenizer").empty() ? model_path : cfg.get_path("model.tokenizer");
  std::unique_ptr<text::Tokenizer> tokenizer = text::load_tokenizer(tokenizer_path);
  const int32_t separator = text::end_of_text_id(*tokenizer);

  std::unique_ptr<models::Gpt2LMHeadModel> model;
  if (!model_path.empty()) {
    model = std::make_unique<models::Gpt2LMHeadModel>(models::Gpt2LMHeadModel::from_pretrained(model_path, device));
  } else {
    models::Gpt2Config config = models::Gpt2Config::preset(cfg.get_string("model.preset"), tokenizer->vocab_size());
    if (cfg.is_set("model.max_positions")) config.n_positions = cfg.get_int("model.max_positions");
    config.bos_token_id = config.eos_token_id = separator;
    config.validate("a new model (model.preset " + cfg.get_string("model.preset") + ")");
    model = std::make_unique<models::Gpt2LMHeadModel>(config, device);
    model->init_weights(seed);
  }
  models::Gpt2LMHeadModel& m = *model;
  apply_execution(m, execution);
  if (tokenizer->vocab_size() > m.config().vocab_size)
    fail("the tokenizer has ", tokenizer->vocab_size(), " tokens but the model's vocabulary has ", m.config().vocab_size);
  const int64_t block_size = cfg.get_int("data.block_size") > 0 ? cfg.get_int("data.block_size") : m.config().n_positions;
  if (block_size > m.config().n_positions)
    fail("data.block_size ", block_size, " exceeds the model's n_positions ", m.config().n_positions);
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
  text::LmCorpus corpus = text::load_lm_corpus(cfg.get_path("data.path"), *tokenizer, data_options);
  const text::LmSplit& train_split = corpus.split(cfg.get_string("data.train_split"));
  // The default evaluation split (dev = valid) is optional: without one (valid_fraction 0) the run
  // trains without evaluating; a split named explicitly must exist.
  const text::LmSplit* eval_split = nullptr;
  const text::LmSplit* test_split = nullptr;
  const std::string eval_name = cfg.get_string("data.eval_split");
  if (!eval_name.empty() && (cfg.differs_from_default("data.eval_split") || corpus.has_split(eval_name)))
    eval_split = &corpus.split(eval_name);
  if (!cfg.get_string("data.test_split").empty()) test_split = &corpus.split(cfg.get_string("data.test_split"));
  const int64_t max_eval = cfg.get_int("data.max_eval_examples");
  for (const text::LmSplit* split : {eval_split, test_split})
    if (split && text::lm_window_count(int64_t(split->tokens->size()), block_size) == 0)
      fail(cfg.get_path("data.path").string(), ": split '", split->name, "' has too few tokens (", split->tokens->size(), ")");

  text::LmLoaderOptions loader_options;
  loader_options.block_size = block_size;
  loader_options.batch_size = batch_size;
  loader_options.shuffle = true;
  loader_options.seed = seed;
  loader_options.max_windows = cfg.get_int("data.max_train_examples");
  const int64_t train_windows = text::LmLoader(train_split.tokens, loader_options, 0, separator).num_windows();
  if (train_windows == 0)
    fail(cfg.get_path("data.path").string(), ": the train split has too few tokens (", train_split.tokens->size(), ")");
  int64_t grad_accum = cfg.get_int("train.grad_accum");
  const int64_t tokens_per_micro_batch = batch_size * block_size;
  if (cfg.get_int("train.tokens_per_step") > 0) {
    const int64_t wanted = cfg.get_int("train.tokens_per_step");
    if (wanted % tokens_per_micro_batch != 0)
      fail("train.tokens_per_step ", wanted, " is not a multiple of train.batch_size x data.block_size = ", batch_size,
           " x ", block_size, " = ", tokens_per_micro_batch);
    grad_accum = wanted / tokens_per_micro_batch;
  }
  const int64_t batches_per_epoch = (train_windows + batch_size - 1) / batch_size;
  const int64_t steps_per_epoch = std::max<int64_t>(1, batches_per_epoch / grad_accum);
  const int64_t total_steps = cfg.get_int("train.max_steps") > 0
                                  ? cfg.get_int("train.max_steps")
                                  : std::max<int64_t>(1, int64_t(std::ceil(cfg.get_float("train.epochs") * double(steps_per_epoch))));
  train::Trainer trainer(m, trainer_options_of(cfg, total_steps, grad_accum, execution.precision));
  const DType save_dtype = parse_dtype(cfg.get_string("train.save_dtype"));

  // The run folder: from here on, results are written.
  TrainRunResult result;
  result.run_dir = create_run_dir(cfg.get_path("run.output_dir"), name);
  const fs::path& run_dir = result.run_dir;
  // config.toml records what the run resolved (metric, a new model's n_positions), so that
  // `wattwise train --config <run>/config.toml` repeats this run.
  TrainConfig resolved = cfg;
  resolved.set("train.metric", metric, "resolved");
  if (model_path.empty()) resolved.set("model.max_positions", std::to_string(m.config().n_positions), "resolved");
  io::write_file_atomic(run_dir / "config.toml", resolved.to_toml());
  EnergySettings energy_settings{int(cfg.get_int("energy.interval_ms")), cfg.get_string("energy.country"),
                                 cfg.get_float("energy.pue"), cfg.get_float("energy.carbon_intensity"),
                                 cfg.get_float("energy.idle_baseline_s")};
  RunEnergy energy(run_dir, energy_settings, name);
  Progress progress(Progress::parse_mode(cfg.get_string("run.progress")), total_steps, 10.0, "tokens/s");
  progress.message("run folder: " + run_dir.string());
  for (const std::string& note : corpus.notes) progress.message("note: " + note);
  progress.message("language modelling: " + std::to_string(train_split.tokens->size()) + " train tokens (" +
                   std::to_string(train_windows) + " sequences of " + std::to_string(block_size) + "), " +
                   std::to_string(total_steps) + " steps of " + std::to_string(grad_accum * tokens_per_micro_batch) +
                   " tokens (" + std::to_string(steps_per_epoch) + " per epoch) on " + device.str());

  // The replay plan (run.export_plan): the initial model, the token streams and, after training,
  // every micro-batch's window indices, so another framework can train from the same start on the
  // same data in the same order (window k = tokens [k·(T−1), k·(T−1)+T) of the train stream; the
  // last window is padded with the separator, attention mask 0, label −100).
  const bool export_plan = cfg.get_bool("run.export_plan");
  std::string plan_batches;
  if (export_plan) {
    const fs::path plan = run_dir / "plan";
    fs::create_directories(plan);
    save_model_folder(m, *tokenizer, plan / "initial_model", DType::F32);
    write_tokens_i32(plan / "train_tokens.i32", *train_split.tokens);
    if (eval_split) write_tokens_i32(plan / "eval_tokens.i32", *eval_split->tokens);
    const json info = {{"block_size", block_size},
                       {"batch_size", batch_size},
                       {"grad_accum", grad_accum},
                       {"total_steps", total_steps},
                       {"separator_id", separator},
                       {"train_windows", train_windows},
                       {"eval_every", cfg.get_int("train.eval_every")},
                       {"max_eval_sequences", max_eval},
                       {"train_tokens", "train_tokens.i32"},
                       {"eval_tokens", eval_split ? json("eval_tokens.i32") : json(nullptr)}};
    io::write_file_atomic(plan / "plan.json", info.dump(2) + "\n");
  }

  StepLog step_log(run_dir / "train_log.csv", "tokens_per_s", progress, cfg.get_int("train.log_every"), total_steps);

  json history = json::array();
  json best_metrics;
  double best_value = 0;
  int64_t best_step = -1, evals_without_improvement = 0, evaluations = 0;
  bool stop = false, stopped_early = false;
  const int64_t patience = cfg.get_int("train.early_stopping_patience");
  int64_t sequences_seen = 0, tokens_seen = 0, step = 0;
  double epoch_position = 0, last_loss = 0;

  auto evaluate_now = [&](double epoch) {
    if (!eval_split) return;
    std::string phase = "evaluation_" + std::to_string(++evaluations);
    energy.begin(phase);
    json metrics = evaluate_lm(m, eval_split->tokens, block_size, batch_size, max_eval, separator);
    json e = energy.end(phase, metrics["num_tokens"].get<int64_t>());
    const double value = train::metric_value(metrics, metric);
    json row = metrics;
    row["step"] = step;
    row["epoch"] = epoch;
    row["energy_j"] = e["energy_j"];
    history.push_back(row);
    const bool improved = best_step < 0 || value < best_value;  // loss and perplexity: lower is better
    if (improved) {
      best_value = value, best_step = step, best_metrics = metrics, evals_without_improvement = 0;
      save_model_folder(m, *tokenizer, run_dir / "best_model", save_dtype);
    } else if (patience > 0 && ++evals_without_improvement >= patience) {
      stop = stopped_early = true;
    }
    char line[256];
    std::snprintf(line, sizeof line, "eval at step %lld (epoch %.2f): loss %.4f, perplexity %.3f%s", (long long)step,
                  epoch, metrics["loss"].get<double>(), metrics["perplexity"].get<double>(),
                  improved ? " (best so far, saved)" : "");
    progress.message(line);
  };

  energy.begin("training");
  for (uint64_t epoch = 0; !stop; ++epoch) {
    text::LmLoader loader(train_split.tokens, loader_options, epoch, separator);
    int64_t batch_index = 0;
    while (auto b = loader.next()) {
      if (export_plan) {
        const auto first = loader.order().begin() + batch_index * batch_size;
        const std::vector<int64_t> windows(first, first + b->batch);
        plan_batches += json{{"epoch", epoch}, {"windows", windows}}.dump() + "\n";
      }
      auto r = trainer.train_micro_batch(to_model_batch(*b));
      sequences_seen += b->batch;
      tokens_seen += b->input_tokens;
      step_log.add_items(double(b->input_tokens));
      ++batch_index;
      epoch_position = double(epoch) + double(batch_index) / double(batches_per_epoch);
      if (!r) continue;
      step = r->step;
      last_loss = r->loss;
      step_log.on_step(epoch_position, *r);
      if (cfg.get_int("train.eval_every") > 0 && step % cfg.get_int("train.eval_every") == 0) evaluate_now(epoch_position);
      if (step >= total_steps) stop = true;
      if (stop) break;
    }
    if (!stop || step >= total_steps) {
      if (history.empty() || history.back()["step"] != step) evaluate_now(epoch_position);
    }
  }
  progress.finish();
  if (export_plan) io::write_file_atomic(run_dir / "plan" / "batches.jsonl", plan_batches);
  const double train_seconds = step_log.elapsed();
  const size_t peak_memory_bytes = memory_stats(device).peak;
  // Energy per sample of the training phase is per token (J/token).
  json training_energy = energy.end("training", tokens_seen);
  step_log.flush();
  if (!eval_split) save_model_folder(m, *tokenizer, run_dir / "best_model", save_dtype);

  json test_metrics = nullptr;
  if (test_split) {
    // Only evaluated: no gradients, no f32 masters beside the working weights.
    models::Gpt2LMHeadModel best =
        models::Gpt2LMHeadModel::from_pretrained(run_dir / "best_model", device, models::ModelPurpose::Inference);
    ExecutionChoice inference = execution;
    inference.checkpointing = "none";
    apply_execution(best, inference);
    energy.begin("test");
    test_metrics = evaluate_lm(best, test_split->tokens, block_size, batch_size, max_eval, separator);
    energy.end("test", test_metrics["num_tokens"].get<int64_t>());
    test_metrics["split"] = test_split->name;
    char line[160];
    std::snprintf(line, sizeof line, "test (%s, best model): loss %.4f, perplexity %.3f", test_split->name.c_str(),
                  test_metrics["loss"].get<double>(), test_metrics["perplexity"].get<double>());
    progress.message(line);
  }

  json cache = json::array();
  for (size_t i = 0; i < corpus.cache_files.size(); ++i)
    cache.push_back({{"file", corpus.cache_files[i].string()}, {"status", text::cache_status_name(corpus.cache_statuses[i])}});
  json& metrics = result.metrics;
  metrics["run"] = {{"name", name}, {"dir", run_dir.string()}, {"device", device.str()}, {"seed", seed}};
  metrics["model"] = {{"arch", "gpt2"},
                      {"layers", m.config().n_layer},
                      {"hidden_size", m.config().n_embd},
                      {"parameters", m.parameters().numel()},
                      {"from", model_path.empty() ? "init:" + cfg.get_string("model.preset") : model_path.string()}};
  metrics["data"] = {{"path", cfg.get_path("data.path").string()},
                     {"format", corpus.format},
                     {"block_size", block_size},
                     {"train_split", train_split.name},
                     {"train_examples", train_windows},
                     {"train_tokens", train_split.tokens->size()},
                     {"eval_split", eval_split ? eval_split->name : ""},
                     {"eval_examples", eval_split ? text::lm_window_count(int64_t(eval_split->tokens->size()), block_size) : 0},
                     {"eval_tokens", eval_split ? eval_split->tokens->size() : 0},
                     {"test_split", test_split ? test_split->name : ""},
                     {"derived_splits", corpus.format == "text" && corpus.has_split("valid") ? json::array({"valid"}) : json::array()},
                     {"token_cache", cache}};
  if (max_eval > 0 && eval_split) metrics["data"]["eval_examples"] = std::min(max_eval, metrics["data"]["eval_examples"].get<int64_t>());
  metrics["train"] = {{"steps", step},
                      {"epochs", epoch_position},
                      {"examples", sequences_seen},
                      {"tokens", tokens_seen},
                      {"grad_accum", grad_accum},
                      {"tokens_per_step", grad_accum * tokens_per_micro_batch},
                      {"seconds", train_seconds},
                      {"samples_per_s", train_seconds > 0 ? double(sequences_seen) / train_seconds : 0.0},
                      {"tokens_per_s", train_seconds > 0 ? double(tokens_seen) / train_seconds : 0.0},
                      {"final_loss", last_loss},
                      {"stopped_early", stopped_early}};
  metrics["execution"] = {{"precision", execution.precision},
                          {"attention", models::attention_kernel_name(m.attention_kernel())},
                          {"checkpointing", m.execution().checkpointing.str()},
                          {"cuda_graphs", execution.cuda_graphs},
                          {"skipped_steps", trainer.skipped_steps()},
                          {"final_loss_scale", trainer.loss_scale()},
                          {"activation_bytes", m.activation_bytes()},
                          {"peak_memory_bytes", peak_memory_bytes}};
  metrics["best"] = best_step < 0 ? json(nullptr) : json{{"metric", metric}, {"value", best_value}, {"step", best_step}};
  metrics["eval"] = best_step < 0 ? json(nullptr) : best_metrics;
  metrics["eval_history"] = history;
  metrics["test"] = test_metrics;
  metrics["energy"] = energy.finish(tokens_seen);
  io::write_file_atomic(run_dir / "metrics.json", metrics.dump(2) + "\n");
  progress.message("training energy: " + energy_summary_line(training_energy));
  return result;
}

// A GPT-2 run: a new model of model.arch gpt2, or model.path holding a GPT-2 model.
bool is_language_modelling(const TrainConfig& cfg) {
  const fs::path model_path = cfg.get_path("model.path");
  if (model_path.empty()) return cfg.get_string("model.arch") == "gpt2";
  const bool gpt2 = is_gpt2_model_folder(model_path);
  if (!gpt2 && cfg.get_string("model.arch") == "gpt2")
    fail("model.arch is gpt2 but ", (model_path / "config.json").string(), " is not a GPT-2 model (model_type gpt2)");
  return gpt2;
}

}  // namespace

TrainRunResult run_training(const TrainConfig& cfg) {
  cfg.validate();
  if (is_language_modelling(cfg)) return run_lm_training(cfg);
  for (const char* key : {"data.format", "data.block_size", "data.valid_fraction", "data.cache_dir", "train.tokens_per_step"})
    if (cfg.differs_from_default(key)) fail(key, " applies to language modelling only (model.arch gpt2)");
  if (cfg.get_string("train.metric") == "perplexity")
    fail("train.metric perplexity applies to language modelling only (model.arch gpt2)");
  const Device device = parse_device(cfg.get_string("run.device"));
  const uint64_t seed = uint64_t(cfg.get_int("run.seed"));
  const std::string name = cfg.get_string("run.name");
  const int max_length = int(cfg.get_int("data.max_length"));
  const int64_t batch_size = cfg.get_int("train.batch_size");
  const std::string metric = cfg.get_string("train.metric");
  ExecutionChoice execution;
  execution.precision = cfg.get_string("train.precision");
  execution.attention = cfg.get_string("model.attention");
  execution.checkpointing = cfg.get_string("train.checkpointing");
  execution.cuda_graphs = cfg.get_bool("run.cuda_graphs");
  if (execution.precision != "fp32" && device.is_cpu())
    fail("train.precision ", execution.precision, " needs a GPU (run.device is cpu; the CPU trains in fp32)");
  if (execution.attention == "fused" && device.is_cpu())
    fail("model.attention fused needs a GPU (run.device is cpu; the CPU runs the reference attention)");
  parse_loss_scale(cfg.get_string("train.loss_scale"));  // an error before any work

  // Everything that can fail on bad input happens before the run folder exists.
  fs::path model_path = cfg.get_path("model.path");
  fs::path tokenizer_path = cfg.get_path("model.tokenizer").empty() ? model_path : cfg.get_path("model.tokenizer");
  std::unique_ptr<text::Tokenizer> tokenizer = text::load_tokenizer(tokenizer_path);

  text::DataOptions data_options;
  data_options.clean_html = cfg.get_bool("data.clean_html");
  data_options.collapse_whitespace = cfg.get_bool("data.collapse_whitespace");
  data_options.split_ratios = parse_ratios(cfg.get_string("data.split_ratios"));
  data_options.split_seed = seed;
  data_options.resplit_from_train = cfg.get_bool("data.resplit_from_train");
  data_options.text_column = cfg.get_string("data.text_column");
  data_options.text_pair_column = cfg.get_string("data.text_pair_column");
  data_options.label_column = cfg.get_string("data.label_column");
  text::Dataset dataset = text::load_dataset(cfg.get_path("data.path"), data_options);
  const std::string train_split = dataset.resolve_split(cfg.get_string("data.train_split"));
  std::string eval_split, test_split;
  if (!cfg.get_string("data.eval_split").empty()) eval_split = dataset.resolve_split(cfg.get_string("data.eval_split"));
  if (!cfg.get_string("data.test_split").empty()) test_split = dataset.resolve_split(cfg.get_string("data.test_split"));
  if (metric == "pearson" || metric == "spearman" ? !dataset.regression : dataset.regression)
    fail("train.metric '", metric, "' does not apply to ", dataset.regression ? "a regression" : "a classification",
         " data set");

  std::unique_ptr<models::SequenceClassifier> model;
  if (!model_path.empty()) {
    models::LoadOptions load;
    load.allow_new_head = true;
    load.head_seed = seed;
    if (cfg.get_string("model.pooling") != "auto") load.pooling = models::parse_pooling(cfg.get_string("model.pooling"));
    model = std::make_unique<models::SequenceClassifier>(models::SequenceClassifier::from_pretrained(model_path, device, load));
    if (model->config().regression != dataset.regression ||
        (!dataset.regression && model->config().num_labels != dataset.num_labels()))
      fail(model_path.string(), ": the model has ", model->config().num_labels, " labels but ", cfg.get_path("data.path").string(),
           " has ", dataset.num_labels());
  } else {
    std::string arch = cfg.get_string("model.arch");
    models::ModelConfig config = models::preset_config(
        arch == "bert" ? models::Architecture::Bert : models::Architecture::DistilBert, cfg.get_string("model.preset"),
        tokenizer->vocab_size());
    config.num_labels = dataset.num_labels();
    config.regression = dataset.regression;
    config.max_position_embeddings = cfg.get_int("model.max_positions");
    config.pad_token_id = tokenizer->pad_id();
    if (cfg.get_string("model.pooling") != "auto") config.pooling = models::parse_pooling(cfg.get_string("model.pooling"));
    config.validate("a new model");
    model = std::make_unique<models::SequenceClassifier>(config, device);
    model->init_weights(seed);
  }
  models::SequenceClassifier& m = *model;
  apply_execution(m, execution);
  if (!dataset.regression && m.config().id2label.empty()) m.set_label_names(dataset.label_names);
  if (tokenizer->vocab_size() > m.config().vocab_size)
    fail("the tokenizer has ", tokenizer->vocab_size(), " tokens but the model's vocabulary has ", m.config().vocab_size);
  if (max_length > m.config().max_position_embeddings)
    fail("data.max_length ", max_length, " exceeds the model's max_position_embeddings ", m.config().max_position_embeddings);
  auto dropout_or = [&](const char* key, float current) {
    double v = cfg.get_float(key);
    return v < 0 ? current : float(v);
  };
  m.set_dropout(dropout_or("train.hidden_dropout", m.config().hidden_dropout),
                dropout_or("train.attention_dropout", m.config().attention_dropout),
                dropout_or("train.classifier_dropout", m.config().classifier_dropout));

  std::vector<text::Example> train_examples =
      subsample(dataset.split(train_split), cfg.get_int("data.max_train_examples"), dataset.regression, seed);
  if (train_examples.empty()) fail(cfg.get_path("data.path").string(), ": split '", train_split, "' is empty");
  auto train_encoded = std::make_shared<const text::EncodedExamples>(text::encode_examples(*tokenizer, train_examples, max_length));
  std::vector<text::Example> eval_examples, test_examples;
  std::shared_ptr<const text::EncodedExamples> eval_encoded, test_encoded;
  if (!eval_split.empty()) {
    eval_examples = subsample(dataset.split(eval_split), cfg.get_int("data.max_eval_examples"), dataset.regression, seed);
    eval_encoded = std::make_shared<const text::EncodedExamples>(text::encode_examples(*tokenizer, eval_examples, max_length));
  }
  if (!test_split.empty()) {
    test_examples = subsample(dataset.split(test_split), cfg.get_int("data.max_eval_examples"), dataset.regression, seed);
    test_encoded = std::make_shared<const text::EncodedExamples>(text::encode_examples(*tokenizer, test_examples, max_length));
  }

  // An empty evaluation split (a tiny data set carved by split_ratios) would fail only at the first
  // evaluation, after training; say so now, before the run folder exists.
  for (const auto& [split, encoded] : {std::pair{eval_split, eval_encoded}, std::pair{test_split, test_encoded}})
    if (encoded && encoded->items.empty())
      fail(cfg.get_path("data.path").string(), ": split '", split, "' is empty",
           dataset.derived_splits.empty() ? "" : " (carved out of train by data.split_ratios: too few examples)");

  text::BatchOptions batch_options;
  batch_options.batch_size = batch_size;
  batch_options.max_length = max_length;
  batch_options.pad_to_max_length = cfg.get_string("data.padding") == "max";
  batch_options.length_bucketing = cfg.get_bool("data.length_bucketing");
  batch_options.shuffle = true;
  batch_options.seed = seed;
  const int64_t grad_accum = cfg.get_int("train.grad_accum");
  const int64_t batches_per_epoch = (int64_t(train_examples.size()) + batch_size - 1) / batch_size;
  const int64_t steps_per_epoch = std::max<int64_t>(1, batches_per_epoch / grad_accum);
  const int64_t total_steps = cfg.get_int("train.max_steps") > 0
                                  ? cfg.get_int("train.max_steps")
                                  : std::max<int64_t>(1, int64_t(std::ceil(cfg.get_float("train.epochs") * double(steps_per_epoch))));

  train::Trainer trainer(m, trainer_options_of(cfg, total_steps, grad_accum, execution.precision));
  const DType save_dtype = parse_dtype(cfg.get_string("train.save_dtype"));

  // The run folder: from here on, results are written.
  TrainRunResult result;
  result.run_dir = create_run_dir(cfg.get_path("run.output_dir"), name);
  const fs::path& run_dir = result.run_dir;
  io::write_file_atomic(run_dir / "config.toml", cfg.to_toml());
  EnergySettings energy_settings{int(cfg.get_int("energy.interval_ms")), cfg.get_string("energy.country"),
                                 cfg.get_float("energy.pue"), cfg.get_float("energy.carbon_intensity"),
                                 cfg.get_float("energy.idle_baseline_s")};
  RunEnergy energy(run_dir, energy_settings, name);
  Progress progress(Progress::parse_mode(cfg.get_string("run.progress")), total_steps);
  progress.message("run folder: " + run_dir.string());
  progress.message("training " + std::to_string(train_examples.size()) + " examples of " + train_split + " for " +
                   std::to_string(total_steps) + " steps (" + std::to_string(steps_per_epoch) + " per epoch) on " +
                   device.str());

  // The replay plan: written before training starts (the initial model) and after it (the batches).
  const bool export_plan = cfg.get_bool("run.export_plan");
  std::string plan_batches;
  if (export_plan) {
    fs::create_directories(run_dir / "plan");
    save_model_folder(m, *tokenizer, run_dir / "plan" / "initial_model", DType::F32);
    write_examples_jsonl(run_dir / "plan" / "train.jsonl", train_examples);
    if (eval_encoded) write_examples_jsonl(run_dir / "plan" / "eval.jsonl", eval_examples);
    if (test_encoded) write_examples_jsonl(run_dir / "plan" / "test.jsonl", test_examples);
  }

  StepLog step_log(run_dir / "train_log.csv", "samples_per_s", progress, cfg.get_int("train.log_every"), total_steps);

  json history = json::array();
  json best_metrics;
  double best_value = 0;
  int64_t best_step = -1, evals_without_improvement = 0, evaluations = 0;
  bool stop = false, stopped_early = false;
  const bool higher = train::higher_is_better(metric);
  const int64_t patience = cfg.get_int("train.early_stopping_patience");
  int64_t examples_seen = 0, step = 0;
  double epoch_position = 0, last_loss = 0;

  auto evaluate_now = [&](double epoch) {
    if (!eval_encoded) return;
    std::string phase = "evaluation_" + std::to_string(++evaluations);
    energy.begin(phase);
    json metrics = evaluate_encoded(m, eval_encoded, batch_size * 2, max_length);
    json e = energy.end(phase, int64_t(eval_encoded->items.size()));
    double value = train::metric_value(metrics, metric);
    json row = metrics;
    row["step"] = step;
    row["epoch"] = epoch;
    row["energy_j"] = e["energy_j"];
    history.push_back(row);
    bool improved = best_step < 0 || (higher ? value > best_value : value < best_value);
    if (improved) {
      best_value = value, best_step = step, best_metrics = metrics, evals_without_improvement = 0;
      save_model_folder(m, *tokenizer, run_dir / "best_model", save_dtype);
    } else if (patience > 0 && ++evals_without_improvement >= patience) {
      stop = stopped_early = true;
    }
    char line[256];
    std::snprintf(line, sizeof line, "eval at step %lld (epoch %.2f): %s %.4f, loss %.4f%s", (long long)step, epoch,
                  metric.c_str(), value, metrics.value("loss", 0.0), improved ? " (best so far, saved)" : "");
    progress.message(line);
  };

  energy.begin("training");
  for (uint64_t epoch = 0; !stop; ++epoch) {
    text::BatchLoader loader(train_encoded, batch_options, epoch);
    int64_t batch_index = 0;
    while (auto b = loader.next()) {
      models::Batch batch = to_model_batch(*b, m.config().type_vocab_size > 0, m.config().regression);
      if (export_plan) plan_batches += json{{"epoch", epoch}, {"indices", b->example_indices}}.dump() + "\n";
      auto r = trainer.train_micro_batch(batch);
      examples_seen += b->batch;
      step_log.add_items(double(b->batch));
      ++batch_index;
      epoch_position = double(epoch) + double(batch_index) / double(batches_per_epoch);
      if (!r) continue;
      step = r->step;
      last_loss = r->loss;
      step_log.on_step(epoch_position, *r);
      if (cfg.get_int("train.eval_every") > 0 && step % cfg.get_int("train.eval_every") == 0) evaluate_now(epoch_position);
      if (step >= total_steps) stop = true;
      if (stop) break;
    }
    if (!stop || step >= total_steps) {
      // Epoch end (also when the last step closes the epoch): evaluate unless this step just did.
      if (history.empty() || history.back()["step"] != step) evaluate_now(epoch_position);
    }
  }
  progress.finish();
  const double train_seconds = step_log.elapsed();
  if (export_plan) io::write_file_atomic(run_dir / "plan" / "batches.jsonl", plan_batches);
  // Peak of everything wattwise allocated on the device during training (weights, gradients,
  // optimizer state, activations), as torch.cuda.max_memory_allocated counts.
  const size_t peak_memory_bytes = memory_stats(device).peak;
  json training_energy = energy.end("training", examples_seen);
  step_log.flush();
  if (!eval_encoded) save_model_folder(m, *tokenizer, run_dir / "best_model", save_dtype);

  json test_metrics = nullptr;
  if (test_encoded) {
    // Only evaluated: no gradients, no f32 masters beside the working weights.
    models::LoadOptions load;
    load.purpose = models::ModelPurpose::Inference;
    models::SequenceClassifier best = models::SequenceClassifier::from_pretrained(run_dir / "best_model", device, load);
    ExecutionChoice inference = execution;
    inference.checkpointing = "none";
    apply_execution(best, inference);
    energy.begin("test");
    test_metrics = evaluate_encoded(best, test_encoded, batch_size * 2, max_length);
    json e = energy.end("test", int64_t(test_encoded->items.size()));
    test_metrics["split"] = test_split;
    progress.message("test (" + test_split + ", best model): " + test_metrics.dump());
  }

  json& metrics = result.metrics;
  metrics["run"] = {{"name", name}, {"dir", run_dir.string()}, {"device", device.str()}, {"seed", seed}};
  metrics["model"] = {{"arch", models::architecture_name(m.config().arch)},
                      {"layers", m.config().num_layers},
                      {"hidden_size", m.config().hidden_size},
                      {"parameters", m.parameters().numel()},
                      {"from", model_path.empty() ? "init:" + cfg.get_string("model.preset") : model_path.string()}};
  metrics["data"] = {{"path", cfg.get_path("data.path").string()},
                     {"train_split", train_split},
                     {"train_examples", train_examples.size()},
                     {"eval_split", eval_split},
                     {"eval_examples", eval_encoded ? eval_encoded->items.size() : 0},
                     {"test_split", test_split},
                     {"derived_splits", dataset.derived_splits}};
  metrics["train"] = {{"steps", step},
                      {"epochs", epoch_position},
                      {"examples", examples_seen},
                      {"seconds", train_seconds},
                      {"samples_per_s", train_seconds > 0 ? double(examples_seen) / train_seconds : 0.0},
                      {"final_loss", last_loss},
                      {"stopped_early", stopped_early}};
  metrics["execution"] = {{"precision", execution.precision},
                          {"attention", models::attention_kernel_name(m.attention_kernel())},
                          {"checkpointing", m.execution().checkpointing.str()},
                          {"cuda_graphs", execution.cuda_graphs},
                          {"skipped_steps", trainer.skipped_steps()},
                          {"final_loss_scale", trainer.loss_scale()},
                          {"activation_bytes", m.activation_bytes()},
                          {"peak_memory_bytes", peak_memory_bytes}};
  metrics["best"] = best_step < 0 ? json(nullptr) : json{{"metric", metric}, {"value", best_value}, {"step", best_step}};
  metrics["eval"] = best_step < 0 ? json(nullptr) : best_metrics;
  metrics["eval_history"] = history;
  metrics["test"] = test_metrics;
  metrics["energy"] = energy.finish(examples_seen);
  io::write_file_atomic(run_dir / "metrics.json", metrics.dump(2) + "\n");
  progress.message("training energy: " + energy_summary_line(training_energy));
  return result;
}

}  // namespace ww::experiment
