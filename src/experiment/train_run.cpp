#include "wattwise/experiment/train_run.h"

#include <chrono>
#include <cmath>
#include <cstdio>

#include "train_task.h"
#include "wattwise/core/error.h"
#include "wattwise/experiment/evaluate.h"
#include "wattwise/experiment/progress.h"
#include "wattwise/experiment/run_dir.h"
#include "wattwise/experiment/run_energy.h"
#include "wattwise/io/file.h"
#include "wattwise/models/execution.h"
#include "wattwise/train/trainer.h"

// The one training driver: whatever the task (train_task.h), a run is set up, trained, evaluated,
// checkpointed, measured and reported here, so every task writes the same run folder.
namespace ww::experiment {

namespace fs = std::filesystem;
using nlohmann::json;

ExecutionChoice training_execution(const TrainConfig& cfg, Device device) {
  ExecutionChoice execution;
  execution.precision = cfg.get_string("train.precision");
  execution.attention = cfg.get_string("model.attention");
  execution.checkpointing = cfg.get_string("train.checkpointing");
  execution.cuda_graphs = cfg.get_bool("run.cuda_graphs");
  if (device.is_cpu()) {
    const models::GpuOnlyPart gpu_only = models::gpu_only_part(execution_options_of(execution));
    if (gpu_only == models::GpuOnlyPart::Precision)
      fail("train.precision ", execution.precision, " needs a GPU (run.device is cpu; the CPU trains in fp32)");
    if (gpu_only == models::GpuOnlyPart::Attention)
      fail("model.attention fused needs a GPU (run.device is cpu; the CPU runs the reference attention)");
  }
  return execution;
}

void save_model_folder(const std::function<void(const fs::path&)>& write, const fs::path& dir) {
  fs::path partial = dir.string() + ".partial";
  std::error_code ec;
  fs::remove_all(partial, ec);
  try {
    write(partial);
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

namespace {

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

// What a finished training loop reports into metrics.json.
struct RunOutcome {
  int64_t steps = 0, examples = 0, tokens = 0;
  double epochs = 0, seconds = 0, final_loss = 0;
  bool stopped_early = false;
  size_t peak_memory_bytes = 0;
  json best_metrics;
  double best_value = 0;
  int64_t best_step = -1;
  json history = json::array();
  json test = nullptr;
};

// metrics.json, the same layout for every task (docs/METRICS.md): what the driver measured, with
// the task's "model" and "data" objects and its entries of "train".
json run_metrics(const TrainTask& task, const fs::path& run_dir, const RunOutcome& r, const train::Trainer& trainer,
                 models::ModelRuntime& m, json energy) {
  const TaskSettings& s = task.settings();
  json metrics;
  metrics["run"] = {{"name", s.name}, {"dir", run_dir.string()}, {"device", s.device.str()}, {"seed", s.seed}};
  metrics["model"] = task.model_metrics();
  metrics["data"] = task.data_metrics();
  json train = {{"steps", r.steps},
                {"epochs", r.epochs},
                {"examples", r.examples},
                {"seconds", r.seconds},
                {"samples_per_s", r.seconds > 0 ? double(r.examples) / r.seconds : 0.0},
                {"final_loss", r.final_loss},
                {"stopped_early", r.stopped_early}};
  task.add_train_metrics(train, {r.examples, r.tokens, r.seconds});
  metrics["train"] = train;
  metrics["execution"] = {{"precision", s.execution.precision},
                          {"attention", models::attention_kernel_name(m.attention_kernel())},
                          {"checkpointing", m.execution().checkpointing.str()},
                          {"cuda_graphs", s.execution.cuda_graphs},
                          {"skipped_steps", trainer.skipped_steps()},
                          {"final_loss_scale", trainer.loss_scale()},
                          {"activation_bytes", m.activation_bytes()},
                          {"peak_memory_bytes", r.peak_memory_bytes}};
  metrics["best"] =
      r.best_step < 0 ? json(nullptr) : json{{"metric", s.metric}, {"value", r.best_value}, {"step", r.best_step}};
  metrics["eval"] = r.best_step < 0 ? json(nullptr) : r.best_metrics;
  metrics["eval_history"] = r.history;
  metrics["test"] = r.test;
  metrics["energy"] = std::move(energy);
  return metrics;
}

TrainRunResult run_task(const TrainConfig& cfg, TrainTask& task) {
  const TaskSettings& s = task.settings();
  models::ModelRuntime& m = task.model();
  const int64_t steps_per_epoch = std::max<int64_t>(1, s.batches_per_epoch / s.grad_accum);
  const int64_t total_steps =
      cfg.get_int("train.max_steps") > 0
          ? cfg.get_int("train.max_steps")
          : std::max<int64_t>(1, int64_t(std::ceil(cfg.get_float("train.epochs") * double(steps_per_epoch))));
  train::Trainer trainer(m, trainer_options_of(cfg, total_steps, s.grad_accum, s.execution.precision));
  const DType save_dtype = parse_dtype(cfg.get_string("train.save_dtype"));

  // The run folder: from here on, results are written.
  TrainRunResult result;
  result.run_dir = create_run_dir(cfg.get_path("run.output_dir"), s.name);
  const fs::path& run_dir = result.run_dir;
  io::write_file_atomic(run_dir / "config.toml", task.config_toml());
  EnergySettings energy_settings{int(cfg.get_int("energy.interval_ms")), cfg.get_string("energy.country"),
                                 cfg.get_float("energy.pue"), cfg.get_float("energy.carbon_intensity"),
                                 cfg.get_float("energy.idle_baseline_s"), s.device};
  RunEnergy energy(run_dir, energy_settings, s.name);
  Progress progress(Progress::parse_mode(cfg.get_string("run.progress")), total_steps, 10.0,
                    s.per_token ? "tokens/s" : "samples/s");
  progress.message("run folder: " + run_dir.string());
  for (const std::string& line : task.start_messages(total_steps, steps_per_epoch)) progress.message(line);

  // The replay plan (run.export_plan): the initial model and the task's data, written before
  // training starts, and after it every micro-batch's examples, so another framework can train from
  // the same start on the same data in the same order.
  const bool export_plan = cfg.get_bool("run.export_plan");
  std::string plan_batches;
  if (export_plan) {
    const fs::path plan = run_dir / "plan";
    fs::create_directories(plan);
    task.save_model(plan / "initial_model", DType::F32);
    task.write_plan(plan, total_steps);
  }

  StepLog step_log(run_dir / "train_log.csv", s.per_token ? "tokens_per_s" : "samples_per_s", progress,
                   cfg.get_int("train.log_every"), total_steps);

  RunOutcome r;
  int64_t evals_without_improvement = 0, evaluations = 0;
  bool stop = false;
  const int64_t patience = cfg.get_int("train.early_stopping_patience");
  const int64_t eval_every = cfg.get_int("train.eval_every");
  // What throughput and energy per sample count: tokens (language modelling) or examples.
  auto samples_seen = [&] { return s.per_token ? r.tokens : r.examples; };

  auto evaluate_now = [&](double epoch) {
    if (!task.has_eval()) return;
    std::string phase = "evaluation_" + std::to_string(++evaluations);
    energy.begin(phase);
    json metrics = task.evaluate();
    json e = energy.end(phase, task.evaluated_samples(metrics, EvalSplit::Eval));
    const double value = train::metric_value(metrics, s.metric);
    json row = metrics;
    row["step"] = r.steps;
    row["epoch"] = epoch;
    row["energy_j"] = e["energy_j"];
    r.history.push_back(row);
    const bool improved = r.best_step < 0 || (s.higher_is_better ? value > r.best_value : value < r.best_value);
    if (improved) {
      r.best_value = value, r.best_step = r.steps, r.best_metrics = metrics, evals_without_improvement = 0;
      task.save_model(run_dir / "best_model", save_dtype);
    } else if (patience > 0 && ++evals_without_improvement >= patience) {
      stop = r.stopped_early = true;
    }
    progress.message(task.eval_line(r.steps, epoch, value, metrics, improved));
  };

  energy.begin("training");
  for (uint64_t epoch = 0; !stop; ++epoch) {
    std::unique_ptr<EpochBatches> batches = task.epoch(epoch, export_plan);
    int64_t batch_index = 0;
    while (auto b = batches->next()) {
      if (export_plan) plan_batches += b->plan_line;
      auto step = trainer.train_micro_batch(b->batch);
      r.examples += b->examples;
      r.tokens += b->tokens;
      step_log.add_items(double(s.per_token ? b->tokens : b->examples));
      ++batch_index;
      r.epochs = double(epoch) + double(batch_index) / double(s.batches_per_epoch);
      if (!step) continue;
      r.steps = step->step;
      r.final_loss = step->loss;
      step_log.on_step(r.epochs, *step);
      if (eval_every > 0 && r.steps % eval_every == 0) evaluate_now(r.epochs);
      if (r.steps >= total_steps) stop = true;
      if (stop) break;
    }
    if (!stop || r.steps >= total_steps) {
      // Epoch end (also when the last step closes the epoch): evaluate unless this step just did.
      if (r.history.empty() || r.history.back()["step"] != r.steps) evaluate_now(r.epochs);
    }
  }
  progress.finish();
  r.seconds = step_log.elapsed();
  if (export_plan) io::write_file_atomic(run_dir / "plan" / "batches.jsonl", plan_batches);
  // Peak of everything wattwise allocated on the device during training (weights, gradients,
  // optimizer state, activations), as torch.cuda.max_memory_allocated counts.
  r.peak_memory_bytes = memory_stats(s.device).peak;
  // Energy per sample of the training phase is per example, or per token (J/token).
  json training_energy = energy.end("training", samples_seen());
  step_log.flush();
  if (!task.has_eval()) task.save_model(run_dir / "best_model", save_dtype);

  if (task.has_test()) {
    ExecutionChoice inference = s.execution;
    inference.checkpointing = "none";
    task.load_test_model(run_dir / "best_model", inference);
    energy.begin("test");
    r.test = task.evaluate_test();
    energy.end("test", task.evaluated_samples(r.test, EvalSplit::Test));
    r.test["split"] = task.test_split();
    progress.message(task.test_line(r.test));
  }

  result.metrics = run_metrics(task, run_dir, r, trainer, m, energy.finish(samples_seen()));
  io::write_file_atomic(run_dir / "metrics.json", result.metrics.dump(2) + "\n");
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
  const std::unique_ptr<TrainTask> task =
      is_language_modelling(cfg) ? make_language_modelling_task(cfg) : make_classification_task(cfg);
  return run_task(cfg, *task);
}

}  // namespace ww::experiment
