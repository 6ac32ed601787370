#include "wattwise/experiment/train_run.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>

#include "overhead_guard.h"
#include "train_loop.h"
#include "train_report.h"
#include "train_task.h"
#include "wattwise/core/error.h"
#include "wattwise/dist/process_group.h"
#include "wattwise/experiment/job.h"
#include "wattwise/experiment/job_energy.h"
#include "wattwise/experiment/evaluate.h"
#include "wattwise/experiment/progress.h"
#include "wattwise/experiment/memory_plan.h"
#include "wattwise/experiment/run_dir.h"
#include "wattwise/experiment/run_energy.h"
#include "wattwise/experiment/train_checkpoint.h"
#include "wattwise/io/file.h"
#include "wattwise/models/execution.h"
#include "wattwise/train/checkpoint.h"
#include "wattwise/train/target.h"
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
  if (execution.attention == "fastest") execution.attention = "auto";  // until the overhead guard measures
  execution.checkpointing = cfg.get_string("train.checkpointing");
  if (execution.checkpointing == "auto") execution.checkpointing = "none";  // until the memory plan chooses
  execution.cuda_graphs = cfg.is_auto("run.cuda_graphs") ? device.is_cuda() : cfg.get_bool("run.cuda_graphs");
  if (device.is_cpu()) {
    const models::GpuOnlyPart gpu_only = models::gpu_only_part(execution_options_of(execution));
    if (gpu_only == models::GpuOnlyPart::Precision)
      fail("train.precision ", execution.precision, " needs a GPU (run.device is cpu; the CPU trains in fp32)");
    if (gpu_only == models::GpuOnlyPart::Attention)
      fail("model.attention fused needs a GPU (run.device is cpu; the CPU runs the reference attention)");
  }
  return execution;
}

void set_grad_accum(const TrainConfig& cfg, TaskSettings& s) {
  s.adaptive_accumulation = cfg.is_auto("train.grad_accum");
  s.grad_accum = s.adaptive_accumulation ? cfg.get_int("train.grad_accum_min") : cfg.get_int("train.grad_accum");
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
train::TrainerOptions trainer_options_of(const TrainConfig& cfg, int64_t total_steps, const TaskSettings& s,
                                         dist::ProcessGroup* group) {
  const std::string& precision = s.execution.precision;
  train::TrainerOptions t;
  t.group = group;
  t.zero = int(cfg.get_int("train.zero"));
  t.bucket_elements = cfg.is_auto("train.bucket_mb")  // until the overhead guard measures
                          ? train::kDefaultBucketBytes / int64_t(sizeof(float))
                          : int64_t(cfg.get_float("train.bucket_mb") * double(1 << 20) / double(sizeof(float)));
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
  t.grad_accum = s.grad_accum;
  if (s.adaptive_accumulation) {
    train::AdaptiveAccumulationOptions a;
    a.min_micro_batches = cfg.get_int("train.grad_accum_min");
    a.max_micro_batches = cfg.get_int("train.grad_accum_max");
    a.smoothing = cfg.get_float("train.noise_scale_smoothing");
    a.lr_scaling = train::parse_lr_scaling(cfg.get_string("train.grad_accum_lr_scaling"));
    t.adaptive = a;
    t.micro_batch_examples = s.batch_size;
  }
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
// A resumed run starts from the log as its checkpoint saw it and its elapsed time. With adaptive
// accumulation each row also has the step's micro-batches, its examples and the noise scale after it.
class StepLog {
 public:
  StepLog(fs::path file, const std::string& rate_column, Progress& progress, int64_t log_every, int64_t total_steps,
          bool adaptive)
      : file_(std::move(file)),
        csv_("step,epoch,loss,lr,grad_norm," + rate_column + ",elapsed_s" +
             (adaptive ? ",grad_accum,effective_batch,noise_scale" : "") + "\n"),
        adaptive_(adaptive),
        progress_(progress),
        log_every_(log_every),
        total_steps_(total_steps) {}
  void resume(std::string csv, double elapsed_before) {
    csv_ = std::move(csv);
    elapsed_before_ = elapsed_before;
  }
  void add_items(double n) { window_items_ += n; }  // examples or tokens processed
  void on_step(double epoch, const train::StepResult& r) {
    const double window_s = seconds(window_start_);
    const double rate = window_s > 0 ? window_items_ / window_s : 0;
    progress_.update(epoch, r.step, r.loss, rate);
    if (r.step % log_every_ != 0 && r.step != total_steps_) return;
    csv_ += std::to_string(r.step) + "," + csv_number(epoch) + "," + csv_number(r.loss) + "," + csv_number(r.lr) + "," +
            csv_number(r.grad_norm) + "," + csv_number(rate) + "," + csv_number(elapsed()) +
            (adaptive_ ? "," + std::to_string(r.grad_accum) + "," + std::to_string(r.examples) + "," +
                             (std::isnan(r.noise_scale) ? std::string() : csv_number(r.noise_scale))
                       : std::string()) +
            "\n";
    restart_window();
    if (seconds(last_flush_) > 30) flush();
  }
  // The next row's rate counts from now (after the overhead guards' measurement).
  void restart_window() {
    window_items_ = 0;
    window_start_ = Clock::now();
  }
  void flush() {
    io::write_file_atomic(file_, csv_);
    last_flush_ = Clock::now();
  }
  const std::string& text() const { return csv_; }
  // Time since training started, earlier sessions of a resumed run included.
  double elapsed() const { return elapsed_before_ + seconds(started_); }

 private:
  using Clock = std::chrono::steady_clock;
  static double seconds(Clock::time_point since) { return std::chrono::duration<double>(Clock::now() - since).count(); }
  fs::path file_;
  std::string csv_;
  bool adaptive_;
  Progress& progress_;
  int64_t log_every_, total_steps_;
  Clock::time_point started_ = Clock::now(), last_flush_ = started_, window_start_ = started_;
  double window_items_ = 0, elapsed_before_ = 0;
};

// Thrown inside run_task when a signal came before the first step of a fresh run.
struct NothingToKeep {
  int signal = 0;
};

// Optimizer steps of the run: train.max_steps, else train.epochs over the task's data.
int64_t total_steps_of(const TrainConfig& cfg, const TaskSettings& s) {
  const int64_t steps_per_epoch = std::max<int64_t>(1, s.batches_per_epoch / s.grad_accum);
  return cfg.get_int("train.max_steps") > 0
             ? cfg.get_int("train.max_steps")
             : std::max<int64_t>(1, int64_t(std::ceil(cfg.get_float("train.epochs") * double(steps_per_epoch))));
}

// Data parallel: rank 0's starting point (parameters, optimizer state, the trainer's state, the
// data position, the run folder) copied to every rank, so the replicas start equal whatever each
// built, and a resumed run reads its checkpoint on rank 0 only. Sharded optimizer state is the
// exception: every rank reads (on resumption) and writes (in checkpoints) its own part in the run
// folder, so every rank must see it; checked here, before anything in it changes.
void share_start_state(dist::ProcessGroup& group, models::ModelRuntime& m, train::Trainer& trainer, RunOutcome& r,
                       fs::path& run_dir, const LoadedCheckpoint* resumed) {
  models::ParameterStore& parameters = m.parameters();
  group.broadcast(parameters.flat_values(), 0);
  parameters.mark_updated();  // 16-bit working copies re-cast from the new masters
  train::Optimizer& optimizer = trainer.optimizer();
  optimizer.share_state(group);
  const bool sharded = optimizer.sharded();
  fs::path probe;
  std::string text;
  if (group.rank() == 0) {
    json state = {{"outcome", checkpoint_state(r, trainer, false, 0, json(), 0, 0)},
                  {"optimizer_steps", optimizer.steps_taken()},
                  {"run_dir", run_dir.string()}};
    if (sharded) {
      probe = fs::absolute(run_dir) / (".shared-folder-check-" + std::to_string(::getpid()));
      io::write_file_atomic(probe, "every rank of the job must see this file\n");
      state["probe"] = probe.string();
      if (resumed) {
        json shards = json::array();
        for (const fs::path& shard : resumed->optimizer_shards) shards.push_back(fs::absolute(shard).string());
        state["optimizer_shards"] = shards;
      }
    }
    text = state.dump();
  }
  group.broadcast_text(text, 0);
  const json state = json::parse(text);
  // Sharded: each rank its part of a resumed run's optimizer state, from the checkpoint's shards.
  std::vector<double> problems = {0.0, 0.0};  // ranks that cannot see the run folder, that cannot read their part
  if (sharded && group.rank() != 0) {
    std::error_code ec;
    if (!fs::exists(state.at("probe").get<std::string>(), ec)) {
      problems[0] = 1;
      std::fprintf(stderr, "wattwise: rank %d on %s cannot see %s, the run folder rank 0 writes: training with "
                   "train.zero %d needs it on a file system every rank sees (one machine, or a shared file system)\n",
                   group.rank(), dist::host_name().c_str(), fs::path(state.at("run_dir").get<std::string>()).c_str(),
                   trainer.options().zero);
    } else if (state.contains("optimizer_shards")) {
      try {
        std::vector<fs::path> shards;
        for (const json& shard : state.at("optimizer_shards")) shards.push_back(shard.get<std::string>());
        train::load_optimizer_state(shards, optimizer, parameters.numel());
      } catch (const Error& e) {
        problems[1] = 1;
        std::fprintf(stderr, "wattwise: rank %d: %s\n", group.rank(), e.what());
      }
    }
  }
  if (sharded) {
    group.all_reduce_sum(problems);
    if (group.rank() == 0) fs::remove(probe);
    if (problems[0] > 0)
      fail(int(problems[0]), " rank(s) of the job cannot see the run folder ", state.at("run_dir").get<std::string>(),
           ": with train.zero ", trainer.options().zero,
           " every rank reads and writes its part of the optimizer state there (put it on a shared file system, or "
           "train with train.zero 0)");
    if (problems[1] > 0)
      fail(int(problems[1]), " rank(s) could not read their part of the checkpoint's optimizer state (their errors "
                             "are above)");
  }
  if (group.rank() == 0) return;
  const std::string origin = "rank 0's training state";
  restore_outcome(state.at("outcome"), origin, r);
  optimizer.set_steps_taken(state.at("optimizer_steps").get<int64_t>());
  trainer.restore(train::trainer_state_from_json(state.at("outcome").at("trainer"), origin));
  run_dir = state.at("run_dir").get<std::string>();
}

// The energy settings of a run (the energy.* keys) on `device`.
EnergySettings energy_settings_of(const TrainConfig& cfg, Device device) {
  EnergySettings settings = energy_settings_for(device);
  settings.interval_ms = int(cfg.get_int("energy.interval_ms"));
  settings.country = cfg.get_string("energy.country");
  settings.pue = cfg.get_float("energy.pue");
  settings.carbon_intensity = cfg.get_float("energy.carbon_intensity");
  settings.idle_baseline_s = cfg.get_float("energy.idle_baseline_s");
  return settings;
}

// A resumption: the run folder, held locked, and its newest checkpoint, verified.
struct ResumeFrom {
  fs::path run_dir;
  RunDirLock lock;
  LoadedCheckpoint checkpoint;
};

TrainRunResult run_task(const TrainConfig& cfg, TrainTask& task, ResumeFrom* resume, dist::ProcessGroup* group,
                        const json& scaling_baseline) {
  const TaskSettings& s = task.settings();
  models::ModelRuntime& m = task.model();
  const int64_t steps_per_epoch = std::max<int64_t>(1, s.batches_per_epoch / s.grad_accum);
  const int64_t total_steps = total_steps_of(cfg, s);
  train::Trainer trainer(m, trainer_options_of(cfg, total_steps, s, group));
  const DType save_dtype = parse_dtype(cfg.get_string("train.save_dtype"));
  const int64_t checkpoint_every = cfg.get_int("train.checkpoint_every");
  const int64_t checkpoint_keep = cfg.get_int("train.checkpoint_keep");
  const std::string task_kind = s.per_token ? "language_modelling" : "classification";
  const std::optional<train::TrainingTarget> target = training_target_of(cfg, task);
  const bool stop_at_target = cfg.get_bool("train.stop_at_target");
  // The configuration as config.toml holds it (a task resolves some keys): what checkpoints record.
  const std::string config_text = task.config_toml();
  TrainConfig written_config;
  written_config.merge_toml_text(config_text, "config.toml");

  // ---- a resumption: everything restored before anything in the run folder changes
  RunOutcome r;
  json energy_before;
  double seconds_before = 0;
  int64_t sessions_before = 0;
  std::string log_before, plan_batches;
  if (resume) {
    const LoadedCheckpoint& c = resume->checkpoint;
    const fs::path state_file = c.dir / "trainer_state.json";
    restore_outcome(c.state, state_file, r);
    load_checkpoint_tensors(c, m.parameters(), trainer.optimizer());
    trainer.restore(train::trainer_state_from_json(c.state.value("trainer", json()), state_file.string()));
    seconds_before = c.state.value("seconds", 0.0);
    sessions_before = c.state.value("sessions", int64_t(1));
    energy_before = c.state.value("energy", json());
    log_before = c.train_log;
    if (c.plan_batches) plan_batches = *c.plan_batches;
    if (trainer.steps() != r.steps)
      fail(state_file.string(), ": step ", r.steps, " but the optimizer state holds ", trainer.steps(), " steps");
    if (r.stopped_early)
      fail(resume->run_dir.string(), ": the run stopped early at step ", r.steps,
           " (train.early_stopping_patience); there is nothing to continue");
    if (r.stopped_at_target)
      fail(resume->run_dir.string(), ": the run reached train.target ", cfg.get_string("train.target"), " at step ",
           r.steps, " and stopped there; there is nothing to continue");
    if (r.steps > total_steps)
      fail("train.max_steps: the run is at step ", r.steps, ", past the ", total_steps,
           " steps this configuration trains for (give more to continue it)");
    if (r.steps == total_steps && c.state.value("done", false))
      fail(resume->run_dir.string(), ": the run completed its ", total_steps,
           " steps; give a larger --train.max_steps (or --train.epochs) to continue it");
  }
  const bool export_plan = cfg.get_bool("run.export_plan");
  const int64_t start_step = r.steps;
  const int64_t samples_at_start = s.per_token ? r.tokens : r.examples;

  // ---- the run folder: from here on, results are written
  TrainRunResult result;
  RunDirLock lock;
  if (resume) {
    result.run_dir = resume->run_dir;
  } else {
    result.run_dir = create_run_dir(cfg.get_path("run.output_dir"), s.name);
    lock = RunDirLock(result.run_dir);
  }
  const fs::path& run_dir = result.run_dir;
  Ending ending;
  ending.resumes = sessions_before;  // a fresh run has had no session before this one
  const std::string started = utc_timestamp();
  json status = {{"status", "running"}, {"pid", int64_t(::getpid())}, {"started", started}, {"step", r.steps},
                 {"resumes", ending.resumes}};
  // A signal from here on stops the loop at a step boundary (see GracefulInterrupt).
  GracefulInterrupt interrupt;
  try {
    // Data parallel: the job's machines; rank 0 meters its own (the job's GPUs there, by PCI bus id).
    std::vector<JobMachine> machines;
    if (group) {
      share_start_state(*group, m, trainer, r, result.run_dir, resume ? &resume->checkpoint : nullptr);
      machines = job_machines(*group, s.device);
    }
    if (resume) {
      // Back to the state of the checkpoint: what a killed session wrote after it is undone. A
      // checkpoint found moved aside by a replacement that a crash cut short goes back first.
      recover_checkpoint(resume->checkpoint);
      remove_write_debris(run_dir);
      restore_best_model(resume->checkpoint, run_dir);
      io::write_file_atomic(run_dir / "train_log.csv", log_before);
      if (io::read_file(run_dir / "config.toml") != config_text) io::write_file_atomic(run_dir / "config.toml", config_text);
      ending.checkpoint = resume->checkpoint.dir;
      status["checkpoint"] = ending.checkpoint.string();
    } else {
      io::write_file_atomic(run_dir / "config.toml", config_text);
    }
    write_status(run_dir, status);

    EnergySettings energy_settings = energy_settings_of(cfg, s.device);
    if (group) energy_settings.gpu_pci_bus_ids = machines.front().gpu_pci_bus_ids;
    if (resume) {
      // Each session's power trace starts its clock at 0: a resumed session writes its own file.
      for (int n = 2;; ++n) {
        energy_settings.trace_file = "power_trace_" + std::to_string(n) + ".csv";
        if (!fs::exists(run_dir / energy_settings.trace_file)) break;
      }
    }
    RunEnergy energy(run_dir, energy_settings, s.name);
    if (resume) energy.add_earlier(energy_before);
    Progress progress(Progress::parse_mode(cfg.get_string("run.progress")), total_steps, 10.0,
                      s.per_token ? "tokens/s" : "samples/s");
    progress.start_at(start_step);
    if (resume) {
      char position[96];
      std::snprintf(position, sizeof position, ": step %lld of %lld, epoch %.2f", (long long)r.steps,
                    (long long)total_steps, r.epochs);
      progress.message("resuming " + run_dir.string() + " from " + resume->checkpoint.dir.filename().string() + position);
    } else {
      progress.message("run folder: " + run_dir.string());
    }
    for (const std::string& line : task.start_messages(total_steps, steps_per_epoch)) progress.message(line);
    if (!s.checkpointing_plan.is_null()) progress.message(s.checkpointing_plan["reason"].get<std::string>());

    // The replay plan (run.export_plan): the initial model and the task's data, written before
    // training starts, and after it every micro-batch's examples, so another framework can train
    // from the same start on the same data in the same order.
    if (export_plan && !resume) {
      const fs::path plan = run_dir / "plan";
      fs::create_directories(plan);
      task.save_model(plan / "initial_model", DType::F32);
      task.write_plan(plan, total_steps);
    }

    StepLog step_log(run_dir / "train_log.csv", s.per_token ? "tokens_per_s" : "samples_per_s", progress,
                     cfg.get_int("train.log_every"), total_steps, s.adaptive_accumulation);
    if (resume) step_log.resume(log_before, seconds_before);

    bool stop = false;
    const int64_t patience = cfg.get_int("train.early_stopping_patience");
    const int64_t eval_every = cfg.get_int("train.eval_every");
    // What throughput and energy per sample count: tokens (language modelling) or examples.
    auto samples_seen = [&] { return s.per_token ? r.tokens : r.examples; };
    auto session_samples = [&] { return samples_seen() - samples_at_start; };

    bool best_model_saved = false;  // since the last checkpoint
    auto evaluate_now = [&](double epoch) {
      if (!task.has_eval()) return;
      std::string phase = "evaluation_" + std::to_string(++r.evaluations);
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
        r.best_value = value, r.best_step = r.steps, r.best_metrics = metrics, r.evals_without_improvement = 0;
        task.save_model(run_dir / "best_model", save_dtype);
        best_model_saved = true;
      } else if (patience > 0 && ++r.evals_without_improvement >= patience) {
        stop = r.stopped_early = true;
      }
      if (target && r.target_reached.is_null() && target->met_by(metrics)) {
        // Everything up to here counts: the training, the evaluations, earlier sessions.
        const json total = energy.so_far(session_samples()).at("total");
        r.target_reached = {{"step", r.steps},
                            {"epoch", epoch},
                            {"evaluation", r.evaluations},
                            {"value", train::metric_value(metrics, target->metric)},
                            {"seconds", step_log.elapsed()},
                            {"energy_j", total.at("energy_j")},
                            {"kwh", total.at("kwh")},
                            {"gco2e", total.at("gco2e")},
                            {"examples", r.examples}};
        if (s.per_token) r.target_reached["tokens"] = r.tokens;
        progress.message("target " + target->text() + " met at step " + std::to_string(r.steps) +
                         (stop_at_target ? ": training stops" : ""));
        if (stop_at_target) stop = r.stopped_at_target = true;
      }
      progress.message(task.eval_line(r.steps, epoch, value, metrics, improved));
    };

    // A checkpoint of the state now (a step boundary). Skipped when the last one holds this state.
    int64_t last_checkpoint_step = resume ? r.steps : -1;
    size_t last_checkpoint_evals = resume ? r.history.size() : 0;
    const bool sharded_round = group && trainer.optimizer().sharded();  // the other ranks write their parts
    auto checkpoint = [&](bool done, const json& energy_so_far) {
      if (r.steps == last_checkpoint_step && r.history.size() == last_checkpoint_evals && !best_model_saved) {
        if (sharded_round) skip_checkpoint_round(*group);
        return;
      }
      r.peak_memory_bytes = std::max(r.peak_memory_bytes, memory_stats(s.device).peak);
      CheckpointWrite w;
      w.step = r.steps;
      w.task = task_kind;
      w.config = &written_config;
      w.parameters = &m.parameters();
      w.optimizer = &trainer.optimizer();
      w.state = checkpoint_state(r, trainer, done, step_log.elapsed(), energy_so_far, sessions_before + 1, s.seed);
      w.train_log = step_log.text();
      w.plan_batches = export_plan ? &plan_batches : nullptr;
      w.world_size = group ? group->size() : 1;
      w.group = sharded_round ? group : nullptr;
      ending.checkpoint = write_checkpoint(run_dir, w, checkpoint_keep);
      last_checkpoint_step = r.steps;
      last_checkpoint_evals = r.history.size();
      best_model_saved = false;
      step_log.flush();  // the log on disk is never behind the newest checkpoint
      status["step"] = r.steps;
      status["checkpoint"] = ending.checkpoint.string();
      write_status(run_dir, status);
    };

    energy.begin("training");
    // Measured inside the training phase: the guards' time and energy count in the run's figures.
    r.overhead_guards = run_overhead_guards(guard_request_of(cfg), GuardPlan{}, task, trainer, group, r.overhead_guards,
                                            [&](const std::string& line) { progress.message(line); });
    step_log.restart_window();
    LoopHooks hooks;
    hooks.micro_batch = [&](const MicroBatch& b) {
      r.model_flops += task.training_flops(b.batch);  // the job's whole micro-batch
      if (export_plan) plan_batches += b.plan_line;
      step_log.add_items(double(s.per_token ? b.tokens : b.examples));
    };
    hooks.step = [&](const train::StepResult& step) {
      step_log.on_step(r.epochs, step);
      if (eval_every > 0 && r.steps % eval_every == 0) evaluate_now(r.epochs);
    };
    hooks.epoch_end = [&] {
      if (r.history.empty() || r.history.back()["step"] != r.steps) evaluate_now(r.epochs);
    };
    hooks.checkpoint = [&] {
      // The other machines' energy so far (every rank takes part), so that a resumed run's total has it.
      if (group) energy.set_other_machines(gather_machine_reports(*group, machines, nullptr, false), "training");
      checkpoint(false, energy.so_far(session_samples()));
    };
    const double communication_before = group ? group->communication_seconds() : 0.0;
    const bool interrupted =
        train_epochs(task, trainer, r, total_steps, checkpoint_every, export_plan, interrupt, group, stop, hooks);
    JobReport job;
    job.scaling_baseline = scaling_baseline;
    std::vector<json> other_machines;
    if (group) {
      job.memory_per_rank = rank_memory(*group, trainer, m, s.device);
      // The other machines' session, final, and their power traces (written here: only rank 0 writes).
      other_machines = gather_machine_reports(*group, machines, nullptr, true);
      for (json& report : other_machines) {
        const std::string file = machine_trace_file(energy.trace_file(), report.at("host").get<std::string>());
        if (fs::exists(run_dir / file)) {
          std::fprintf(stderr, "wattwise: energy: %s exists: the power trace of %s is not written\n", file.c_str(),
                       report.at("host").get<std::string>().c_str());
          report["power_trace_file"] = nullptr;
        } else {
          io::write_file_atomic(run_dir / file, report.at("power_trace").get<std::string>());
          report["power_trace_file"] = file;
        }
        report.erase("power_trace");
      }
      energy.set_other_machines(other_machines, "training");
    }
    if (!interrupted && interrupt.requested())
      std::fprintf(stderr, "wattwise: %s came after the last step: finishing the run (a second signal stops at once)\n",
                   signal_name(interrupt.signal()).c_str());
    // Resumed after its last step: the final evaluation, unless it happened before the interruption.
    if (!interrupted && !r.stopped_early && r.steps >= total_steps &&
        (r.history.empty() || r.history.back()["step"] != r.steps))
      evaluate_now(r.epochs);
    progress.finish();
    r.seconds = step_log.elapsed();
    job.loop_seconds = r.seconds - seconds_before;
    if (group) job.loop_communication_s = group->communication_seconds() - communication_before;
    if (export_plan) io::write_file_atomic(run_dir / "plan" / "batches.jsonl", plan_batches);
    // Peak of everything wattwise allocated on the device during training (weights, gradients,
    // optimizer state, activations), as torch.cuda.max_memory_allocated counts.
    r.peak_memory_bytes = std::max(r.peak_memory_bytes, memory_stats(s.device).peak);
    // Energy per sample of the training phase is per example, or per token (J/token).
    json training_energy = energy.end("training", session_samples());
    step_log.flush();

    if (interrupted && r.steps == 0 && !resume) throw NothingToKeep{interrupt.signal()};  // nothing to keep
    // Without an evaluation split best_model/ is the final model, or the model when interrupted.
    if (!task.has_eval()) {
      task.save_model(run_dir / "best_model", save_dtype);
      best_model_saved = true;
    }
    if (interrupted || checkpoint_every > 0) checkpoint(!interrupted, energy.so_far(session_samples()));

    if (interrupted) {
      ending.status = "interrupted";
      ending.signal = interrupt.signal();
    } else if (task.has_test()) {
      ExecutionChoice inference = s.execution;
      inference.checkpointing = "none";
      task.load_test_model(run_dir / "best_model", inference);
      energy.begin("test");
      r.test = task.evaluate_test();
      energy.end("test", task.evaluated_samples(r.test, EvalSplit::Test));
      r.test["split"] = task.test_split();
      progress.message(task.test_line(r.test));
    }

    json energy_json = energy.finish(session_samples());
    if (group) {
      // This session's energy per machine: rank 0's, then the others' (they add up to energy.total
      // of a run that was not resumed).
      job.energy_by_machine = json::array({machine_energy_entry(machines.front().host, machines.front().ranks,
                                                                energy.own_session_total(),
                                                                energy.monitor().gpu_pci_bus_ids(), energy.trace_file())});
      for (const json& report : other_machines) {
        std::map<std::string, std::string> bus_ids;
        for (const auto& [source, bus_id] : report.at("gpu_pci_bus_ids").items()) bus_ids[source] = bus_id.get<std::string>();
        job.energy_by_machine.push_back(machine_energy_entry(report.at("host").get<std::string>(),
                                                             report.at("ranks").get<std::vector<int>>(),
                                                             report.at("window"), bus_ids,
                                                             report.value("power_trace_file", json()).is_string()
                                                                 ? report["power_trace_file"].get<std::string>()
                                                                 : ""));
      }
    }
    result.metrics = run_metrics(task, run_dir, r, trainer, m, std::move(energy_json), ending, group, job, cfg, target,
                                 energy.monitor().host());
    io::write_file_atomic(run_dir / "metrics.json", result.metrics.dump(2) + "\n");
    progress.message("training energy: " + energy_summary_line(training_energy));
  } catch (const NothingToKeep& nothing) {
    std::error_code ignored;
    fs::remove_all(run_dir, ignored);
    std::fprintf(stderr, "wattwise: interrupted by %s before the first step: removed %s (nothing to resume)\n",
                 signal_name(nothing.signal).c_str(), run_dir.c_str());
    result.status = "interrupted";
    result.signal = nothing.signal;
    result.removed = true;
    return result;
  } catch (const std::exception& e) {
    // A failure after the run folder exists. Before the first step of a fresh run there is nothing
    // worth keeping (config.toml and a power trace): the folder goes. Otherwise everything written
    // stays (logs, best_model/, checkpoints) and status.json says what failed.
    if (!resume && r.steps == 0) {
      std::error_code ignored;
      fs::remove_all(run_dir, ignored);
    } else {
      try {
        status["status"] = "failed";
        status["error"] = e.what();
        status["step"] = r.steps;
        write_status(run_dir, status);
      } catch (...) {
      }
    }
    throw;
  }

  result.status = ending.status;
  result.signal = ending.signal;
  result.checkpoint = ending.checkpoint;
  status["status"] = ending.status;
  status["step"] = r.steps;
  if (ending.signal) status["signal"] = signal_name(ending.signal);
  if (!ending.checkpoint.empty()) status["checkpoint"] = ending.checkpoint.string();
  write_status(run_dir, status);
  if (ending.signal) {
    std::fprintf(stderr, "wattwise: interrupted by %s at step %lld of %lld (epoch %.2f)\n",
                 signal_name(ending.signal).c_str(), (long long)r.steps, (long long)total_steps, r.epochs);
    std::fprintf(stderr, "wattwise: run folder: %s (metrics.json marked interrupted)\n", run_dir.c_str());
    std::fprintf(stderr, "wattwise: checkpoint: %s\n", ending.checkpoint.c_str());
    std::fprintf(stderr, "wattwise: to continue: wattwise train --resume %s\n", run_dir.c_str());
  }
  return result;
}

// A GPT-2 run: a new model of model.arch gpt2, or model.path holding a GPT-2 model.
bool is_language_modelling(const TrainConfig& cfg) {
  const fs::path model_path = cfg.model_folder("model.path");
  if (model_path.empty()) return cfg.get_string("model.arch") == "gpt2";
  const bool gpt2 = is_gpt2_model_folder(model_path);
  if (!gpt2 && cfg.get_string("model.arch") == "gpt2")
    fail("model.arch is gpt2 but ", (model_path / "config.json").string(), " is not a GPT-2 model (model_type gpt2)");
  return gpt2;
}

// A rank other than 0 of a data-parallel run: the same training loop on its rows of every
// micro-batch, writing nothing but its part of a sharded optimizer's checkpoints (rank 0 writes the
// run folder: logs, evaluations, checkpoints, metrics.json). It starts from rank 0's state (and its
// own part of a sharded optimizer's state in the checkpoint rank 0 resumes from).
TrainRunResult run_worker(const TrainConfig& cfg, TrainTask& task, dist::ProcessGroup& group) {
  const TaskSettings& s = task.settings();
  models::ModelRuntime& m = task.model();
  const int64_t total_steps = total_steps_of(cfg, s);
  train::Trainer trainer(m, trainer_options_of(cfg, total_steps, s, &group));
  TrainRunResult result;
  RunOutcome r;
  GracefulInterrupt interrupt(/*announce=*/false);  // rank 0 says what the job does
  share_start_state(group, m, trainer, r, result.run_dir, nullptr);
  const std::vector<JobMachine> machines = job_machines(group, s.device);
  // The lowest rank of a machine other than rank 0's meters it and sends rank 0 what it measured.
  std::unique_ptr<MachineMeter> meter;
  if (const JobMachine* mine = machine_metered_here(machines, group.rank()))
    meter = std::make_unique<MachineMeter>(*mine, energy_settings_of(cfg, s.device));
  const int64_t checkpoint_every = cfg.get_int("train.checkpoint_every");
  // Sharded optimizer state: this rank writes its part of every checkpoint rank 0 writes.
  const bool sharded = trainer.optimizer().sharded();
  LoopHooks hooks;
  hooks.checkpoint = [&] {
    gather_machine_reports(group, machines, meter.get(), false);
    if (sharded) join_checkpoint_round(group, trainer.optimizer());
  };
  run_overhead_guards(guard_request_of(cfg), GuardPlan{}, task, trainer, &group, nullptr, [](const std::string&) {});
  bool stop = false;
  const bool interrupted = train_epochs(task, trainer, r, total_steps, checkpoint_every, /*record_plan=*/false,
                                        interrupt, &group, stop, hooks);
  rank_memory(group, trainer, m, s.device);  // rank 0 reports them
  gather_machine_reports(group, machines, meter.get(), true);
  // Rank 0's checkpoint at the end (as run_task decides: none for a run interrupted before its
  // first step).
  if (sharded && (interrupted || checkpoint_every > 0) && r.steps > 0) join_checkpoint_round(group, trainer.optimizer());
  if (interrupted) {
    result.status = "interrupted";
    result.signal = interrupt.signal();  // 0 when the signal reached another rank only
  }
  result.worker = true;
  return result;
}

// The device this process trains on (run.device; each rank of a GPU job takes its LOCAL_RANK's).
Device training_device(const TrainConfig& cfg, const dist::World& world) {
  return rank_device(cfg.get_string("run.device"), world, "run.device");
}

// Joins the job this process was started in: nothing for a single process. Every rank must run the
// same configuration and wattwise version.
std::unique_ptr<dist::ProcessGroup> join_job(const TrainConfig& cfg, const dist::World& world, Device device) {
  return join_launched_job(world, device, std::chrono::milliseconds(int64_t(cfg.get_float("run.dist_timeout_s") * 1000)),
                           "wattwise " + wattwise_version() + ", configuration " + config_fingerprint(cfg));
}

// train.checkpointing auto: each choice's activations for the largest micro-batch, on this rank's
// device, and the first that fits (memory_plan.h).
void choose_checkpointing(const TrainConfig& cfg, TrainTask& task, const dist::World& world) {
  const TaskSettings& s = task.settings();
  std::vector<std::pair<std::string, size_t>> candidates;
  for (const char* mode : {"none", "sqrt", "every"}) {
    task.use_checkpointing(mode, nullptr);
    candidates.emplace_back(mode, task.planned_activation_bytes());
  }
  size_t budget = 0;
  std::string source;
  if (cfg.get_float("train.memory_budget_mb") > 0) {
    budget = size_t(cfg.get_float("train.memory_budget_mb") * double(1 << 20));
    source = "train.memory_budget_mb";
  } else {
    const size_t available = available_memory(s.device);
    budget = available == SIZE_MAX ? SIZE_MAX : available / 10 * 9;
    source = "90% of the free memory of " + s.device.str();
  }
  const int ranks = world.joins() ? world.size : 1;
  const bool sixteen_bit = compute_dtype_of(s.execution.precision) != DType::F32;  // a working copy beside the f32 masters
  const size_t state = estimated_model_state_bytes(task.model().parameters().numel(), sixteen_bit,
                                                   cfg.get_string("train.optimizer"), int(cfg.get_int("train.zero")), ranks);
  const CheckpointingPlan plan = plan_checkpointing(budget, source, state, candidates);
  task.use_checkpointing(plan.chosen, plan.to_json());
}

std::unique_ptr<TrainTask> make_task(const TrainConfig& cfg, Device device, const dist::World& world) {
  std::unique_ptr<TrainTask> task =
      is_language_modelling(cfg) ? make_language_modelling_task(cfg, device) : make_classification_task(cfg, device);
  if (cfg.get_string("train.checkpointing") == "auto") choose_checkpointing(cfg, *task, world);
  return task;
}

}  // namespace

TrainRunResult run_training(const TrainConfig& cfg) {
  cfg.validate();
  const dist::World world = dist::world_from_environment();
  const Device device = training_device(cfg, world);
  // The run's peak memory is its own, also when one process trains several (wattwise ablate).
  reset_peak_memory(device);
  const std::unique_ptr<TrainTask> task = make_task(cfg, device, world);
  // Joined once the task is built: a configuration error stops every rank before any waiting.
  const std::unique_ptr<dist::ProcessGroup> group = join_job(cfg, world, device);
  const json scaling_baseline = scaling_baseline_of(cfg, *task, group.get());
  if (group && group->rank() != 0) return run_worker(cfg, *task, *group);
  return run_task(cfg, *task, nullptr, group.get(), scaling_baseline);
}

TrainRunResult resume_training(const fs::path& run_dir, const std::vector<ConfigOverride>& overrides) {
  std::error_code ec;
  if (!fs::is_directory(run_dir, ec)) fail("--resume ", run_dir.string(), ": no such run folder");
  const fs::path config_path = run_dir / "config.toml";
  if (!fs::exists(config_path, ec))
    fail("--resume ", run_dir.string(), ": not a training run folder (no config.toml)");
  const auto& allowed = resume_overridable_keys();
  for (const ConfigOverride& o : overrides) {
    TrainConfig probe;
    probe.set(o.key, o.value, o.origin);  // an unknown key or a bad value: the usual error
  }
  for (const ConfigOverride& o : overrides)
    if (std::find(allowed.begin(), allowed.end(), o.key) == allowed.end())
      fail(o.origin, ": ", o.key, " cannot change when resuming (the run's configuration is ", config_path.string(),
           "; only train.max_steps, train.epochs, train.checkpoint_every, train.checkpoint_keep and run.progress may)");
  TrainConfig cfg;
  cfg.merge_toml_file(config_path);
  for (const ConfigOverride& o : overrides) cfg.set(o.key, o.value, o.origin);
  cfg.validate();
  const dist::World world = dist::world_from_environment();
  const Device device = training_device(cfg, world);
  if (world.joins() && world.rank != 0) {
    // Rank 0 reads the checkpoint and sends its state; this rank needs only the configuration.
    const std::unique_ptr<TrainTask> task = make_task(cfg, device, world);
    const std::unique_ptr<dist::ProcessGroup> group = join_job(cfg, world, device);
    scaling_baseline_of(cfg, *task, group.get());  // rank 0 checks it
    return run_worker(cfg, *task, *group);
  }
  reset_peak_memory(device);  // this session's peak (the checkpoint's adds the earlier sessions')
  // Held from before the checkpoint is read until the session ends: no other process writes here.
  ResumeFrom resume{run_dir, RunDirLock(run_dir), {}};
  const bool lm = is_language_modelling(cfg);
  resume.checkpoint = open_newest_checkpoint(run_dir, cfg, lm ? "language_modelling" : "classification");
  const std::unique_ptr<TrainTask> task = make_task(cfg, device, world);
  const std::unique_ptr<dist::ProcessGroup> group = join_job(cfg, world, device);
  const json scaling_baseline = scaling_baseline_of(cfg, *task, group.get());
  return run_task(cfg, *task, &resume, group.get(), scaling_baseline);
}

}  // namespace ww::experiment
