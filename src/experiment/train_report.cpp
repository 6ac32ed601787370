#include "train_report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "wattwise/core/error.h"
#include "wattwise/experiment/peak_flops.h"
#include "wattwise/experiment/run_dir.h"
#include "wattwise/io/file.h"

namespace ww::experiment {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

// train.scaling_baseline's file, checked against this run: the metrics.json of a one-process (or
// one-rank) training run of the same model, task and precision. Errors name the file and the key.
json read_scaling_baseline(const fs::path& path, const TrainTask& task) {
  const TaskSettings& s = task.settings();
  const std::string where = "train.scaling_baseline: " + path.string();
  std::string text;
  try {
    text = io::read_file(path);
  } catch (const std::exception& e) {
    fail(where, ": cannot read it (", e.what(), ")");
  }
  const json m = json::parse(text, nullptr, /*allow_exceptions=*/false);
  auto not_metrics = [&](const std::string& why) {
    fail(where, " is not the metrics.json of a wattwise training run (", why, ")");
  };
  if (m.is_discarded()) not_metrics("not JSON");
  if (!m.is_object()) not_metrics("not a JSON object");
  // The keys compared or used below: numbers, else strings.
  const std::pair<const char*, bool> needed[] = {{"/run/device", false},       {"/model/arch", false},
                                                 {"/model/layers", true},      {"/model/hidden_size", true},
                                                 {"/model/parameters", true},  {"/train/samples_per_s", true},
                                                 {"/execution/precision", false}};
  for (const auto& [pointer, number] : needed) {
    const json::json_pointer p(pointer);
    if (!m.contains(p) || (number ? !m.at(p).is_number() : !m.at(p).is_string())) {
      std::string key = std::string(pointer).substr(1);
      std::replace(key.begin(), key.end(), '/', '.');
      not_metrics("no " + key);
    }
  }
  const json ranks = m.contains("/distributed/ranks"_json_pointer) ? m.at("/distributed/ranks"_json_pointer) : json(1);
  if (ranks.is_number() && ranks.get<double>() > 1)
    fail(where, " is a run of ", ranks.dump(), " ranks (distributed.ranks): the baseline must be one process "
         "(or one rank)");
  const json model = task.model_metrics();
  for (const char* key : {"arch", "layers", "hidden_size", "parameters"})
    if (m["model"][key] != model[key])
      fail(where, " trained another model: its model.", key, " is ", m["model"][key].dump(), ", this run's ",
           model[key].dump());
  const bool lm = m["train"].contains("tokens_per_s");
  if (lm != s.per_token)
    fail(where, " is a ", lm ? "language-modelling" : "classification", " run, this one ",
         s.per_token ? "language modelling" : "classification");
  if (m["execution"]["precision"] != s.execution.precision)
    fail(where, " ran execution.precision ", m["execution"]["precision"].get<std::string>(), ", this run ",
         s.execution.precision, " (train.precision)");
  const bool gpu = m["run"]["device"].get<std::string>().rfind("cuda", 0) == 0;
  if (gpu != s.device.is_cuda())
    fail(where, " ran on run.device ", m["run"]["device"].get<std::string>(), ", this run on ", s.device.str());
  const char* rate = lm ? "tokens_per_s" : "samples_per_s";
  if (!m["train"].contains(rate) || !m["train"][rate].is_number() || !(m["train"][rate].get<double>() > 0))
    fail(where, ": train.", rate, " is ", m["train"].value(rate, json()).dump(), " (no throughput to compare with)");
  json baseline = {{"path", path.string()},
                   {"samples_per_s", m["train"]["samples_per_s"]},
                   {"batch_size", m["train"].value("batch_size", json())}};
  if (lm) baseline["tokens_per_s"] = m["train"]["tokens_per_s"];
  return baseline;
}

// metrics.json's "target": the condition and, when an evaluation met it, the figures to target.
json target_metrics(const std::optional<train::TrainingTarget>& target, bool stop, const RunOutcome& r) {
  if (!target) return nullptr;
  json j = {{"condition", target->text()}, {"stop_at_target", stop}, {"reached", !r.target_reached.is_null()}};
  if (!r.target_reached.is_null()) j.update(r.target_reached);
  return j;
}

// MFU into metrics.json's "train": the model FLOPs of every micro-batch trained, their rate, and
// over the devices' peak (train.peak_tflops, else the datasheet figure of a known GPU) when known.
void add_utilisation(json& train, const RunOutcome& r, const TrainConfig& cfg, const TaskSettings& s,
                     const energy::HostInfo& host, int devices) {
  const double achieved = r.seconds > 0 ? r.model_flops / r.seconds / 1e12 : 0.0;
  train["model_flops"] = r.model_flops;
  train["model_flops_per_step"] = r.steps > 0 ? r.model_flops / double(r.steps) : 0.0;
  train["achieved_tflops"] = achieved;
  std::optional<PeakRate> peak;
  if (cfg.get_float("train.peak_tflops") > 0)
    peak = PeakRate{cfg.get_float("train.peak_tflops"), "train.peak_tflops"};
  else if (s.device.is_cuda())
    peak = known_peak_tflops(host.gpu_model, s.execution.precision);
  const std::string device_name = s.device.is_cuda() ? host.gpu_model : host.cpu_model;
  if (!peak) {
    train["peak_tflops"] = nullptr;
    train["peak_source"] = "no peak known for " + device_name + " (give train.peak_tflops)";
    train["mfu"] = nullptr;
    return;
  }
  train["peak_tflops"] = peak->tflops * devices;
  train["peak_source"] = peak->source + (devices > 1 ? " x " + std::to_string(devices) + " devices" : "");
  train["mfu"] = achieved / (peak->tflops * devices);
}

}  // namespace

json run_metrics(const TrainTask& task, const fs::path& run_dir, const RunOutcome& r, const train::Trainer& trainer,
                 models::ModelRuntime& m, json energy, const Ending& ending, const dist::ProcessGroup* group,
                 const JobReport& job, const TrainConfig& cfg, const std::optional<train::TrainingTarget>& target,
                 const energy::HostInfo& host) {
  const TaskSettings& s = task.settings();
  json metrics;
  metrics["run"] = {{"name", s.name},
                    {"dir", run_dir.string()},
                    {"device", s.device.str()},
                    {"seed", s.seed},
                    {"status", ending.status},
                    {"resumes", ending.resumes},
                    {"checkpoint", ending.checkpoint.empty() ? json(nullptr) : json(ending.checkpoint.string())},
                    {"interruption", ending.signal == 0 ? json(nullptr)
                                                        : json{{"signal", signal_name(ending.signal)},
                                                               {"signal_number", ending.signal},
                                                               {"step", r.steps}}}};
  metrics["model"] = task.model_metrics();
  metrics["data"] = task.data_metrics();
  json train = {{"steps", r.steps},
                {"batch_size", s.batch_size},
                {"epochs", r.epochs},
                {"examples", r.examples},
                {"seconds", r.seconds},
                {"samples_per_s", r.seconds > 0 ? double(r.examples) / r.seconds : 0.0},
                {"final_loss", r.final_loss},
                {"stopped_early", r.stopped_early},
                {"stopped_at_target", r.stopped_at_target}};
  task.add_train_metrics(train, {r.examples, r.tokens, r.steps, r.seconds});
  if (const train::AdaptiveAccumulation* adaptive = trainer.adaptive()) {
    const train::AdaptiveAccumulationOptions& o = adaptive->options();
    auto number_or_null = [](double v) { return std::isfinite(v) ? json(v) : json(nullptr); };
    train["adaptive_accumulation"] = {
        {"min", o.min_micro_batches},
        {"max", o.max_micro_batches},
        {"lr_scaling", train::lr_scaling_name(o.lr_scaling)},
        {"smoothing", o.smoothing},
        {"measurements", adaptive->state().measurements},
        {"noise_scale", number_or_null(adaptive->noise_scale())},
        {"gradient_squared_norm", number_or_null(adaptive->gradient_squared_norm())},
        {"noise_trace", number_or_null(adaptive->noise_trace())},
        {"next_grad_accum", adaptive->micro_batches()},
        {"mean_grad_accum", r.steps > 0 ? double(r.micro_batches) / double(r.steps) : 0.0},
        {"steps_by_grad_accum", r.steps_by_grad_accum}};
  }
  add_utilisation(train, r, cfg, s, host, group ? group->size() : 1);
  metrics["train"] = train;
  metrics["target"] = target_metrics(target, cfg.get_bool("train.stop_at_target"), r);
  metrics["execution"] = {{"precision", s.execution.precision},
                          {"attention", models::attention_kernel_name(m.attention_kernel())},
                          {"checkpointing", m.execution().checkpointing.str()},
                          {"cuda_graphs", s.execution.cuda_graphs},
                          {"skipped_steps", trainer.skipped_steps()},
                          {"final_loss_scale", trainer.loss_scale()},
                          {"activation_bytes", m.activation_bytes()},
                          {"peak_memory_bytes", r.peak_memory_bytes}};
  if (!s.checkpointing_plan.is_null()) metrics["execution"]["checkpointing_plan"] = s.checkpointing_plan;
  if (!r.overhead_guards.is_null()) metrics["execution"]["overhead_guards"] = r.overhead_guards;
  metrics["best"] =
      r.best_step < 0 ? json(nullptr) : json{{"metric", s.metric}, {"value", r.best_value}, {"step", r.best_step}};
  metrics["eval"] = r.best_step < 0 ? json(nullptr) : r.best_metrics;
  metrics["eval_history"] = r.history;
  metrics["test"] = r.test;
  metrics["energy"] = std::move(energy);
  if (group) {
    json rows = json::array();
    for (int64_t rank = 0; rank < group->size(); ++rank)
      rows.push_back(s.batch_size * (rank + 1) / group->size() - s.batch_size * rank / group->size());
    const double ranks = double(group->size());
    json d = {{"ranks", group->size()},
              {"backend", group->backend()},
              {"launcher", dist::world_from_environment().launcher},
              {"rows_per_rank", rows},
              {"communication_s", group->communication_seconds()},
              {"communication_share", job.loop_seconds > 0 ? job.loop_communication_s / job.loop_seconds : 0.0},
              {"samples_per_s_per_rank", train["samples_per_s"].get<double>() / ranks},
              {"zero", trainer.options().zero},
              {"gradient_buckets", trainer.gradient_buckets()},
              {"optimizer_state_bytes", trainer.optimizer().state_bytes()},
              {"memory_per_rank", job.memory_per_rank},
              {"energy_by_machine", job.energy_by_machine},
              {"energy_scope",
               "every machine of the job, each metered by its lowest rank: the job's GPUs there (found by PCI bus id; "
               "CPU ranks: every GPU NVML sees) and its CPU and RAM, which see every rank running there; the other "
               "machines' sessions (the job's start to the end of the training loop) are in energy.total and "
               "energy.phases.training, the evaluation and test phases are rank 0's machine (they run on rank 0)"}};
    // Throughput in the run's own unit: tokens for language modelling, else examples.
    const char* rate = s.per_token ? "tokens_per_s" : "samples_per_s";
    if (s.per_token) d["tokens_per_s_per_rank"] = train[rate].get<double>() / ranks;
    if (!job.scaling_baseline.is_null()) {
      d["scaling_baseline"] = job.scaling_baseline;
      // 1: the ranks together are that many times as fast as the one-process run.
      d["scaling_efficiency"] = train[rate].get<double>() / (ranks * job.scaling_baseline[rate].get<double>());
    }
    metrics["distributed"] = d;
  }
  return metrics;
}

void write_status(const fs::path& run_dir, json status) {
  status["updated"] = utc_timestamp();
  io::write_file_atomic(run_dir / "status.json", status.dump(2) + "\n");
}

json checkpoint_state(const RunOutcome& r, const train::Trainer& trainer, bool done, double seconds, json energy,
                      int64_t sessions, uint64_t seed) {
  return {{"step", r.steps},
          {"done", done},
          {"data", {{"epoch", r.epoch}, {"batch_in_epoch", r.batch_in_epoch}, {"epochs", r.epochs},
                    {"examples", r.examples}, {"tokens", r.tokens}, {"model_flops", r.model_flops},
                    {"micro_batches", r.micro_batches}, {"steps_by_grad_accum", r.steps_by_grad_accum}}},
          {"trainer", train::to_json(trainer.state())},
          {"rng", {{"seed", seed}, {"dropout_step", trainer.state().dropout_step}}},
          {"final_loss", r.final_loss},
          {"evaluation",
           {{"count", r.evaluations},
            {"without_improvement", r.evals_without_improvement},
            {"stopped_early", r.stopped_early},
            {"target_reached", r.target_reached},
            {"stopped_at_target", r.stopped_at_target},
            {"best", r.best_step < 0 ? json(nullptr)
                                     : json{{"value", r.best_value}, {"step", r.best_step}, {"metrics", r.best_metrics}}},
            {"history", r.history}}},
          {"seconds", seconds},
          {"peak_memory_bytes", r.peak_memory_bytes},
          {"sessions", sessions},
          {"overhead_guards", r.overhead_guards},
          {"energy", std::move(energy)}};
}

void restore_outcome(const json& state, const fs::path& file, RunOutcome& r) {
  try {
    const json& data = state.at("data");
    const json& evaluation = state.at("evaluation");
    r.steps = state.at("step").get<int64_t>();
    r.epoch = data.at("epoch").get<uint64_t>();
    r.batch_in_epoch = data.at("batch_in_epoch").get<int64_t>();
    r.epochs = data.at("epochs").get<double>();
    r.model_flops = data.value("model_flops", 0.0);
    r.micro_batches = data.value("micro_batches", int64_t(0));
    r.steps_by_grad_accum = data.value("steps_by_grad_accum", json::object());
    r.examples = data.at("examples").get<int64_t>();
    r.tokens = data.at("tokens").get<int64_t>();
    r.final_loss = state.at("final_loss").get<double>();
    r.evaluations = evaluation.at("count").get<int64_t>();
    r.evals_without_improvement = evaluation.at("without_improvement").get<int64_t>();
    r.stopped_early = evaluation.at("stopped_early").get<bool>();
    r.target_reached = evaluation.value("target_reached", json());
    r.stopped_at_target = evaluation.value("stopped_at_target", false);
    r.history = evaluation.at("history");
    const json& best = evaluation.at("best");
    if (!best.is_null()) {
      r.best_value = best.at("value").get<double>();
      r.best_step = best.at("step").get<int64_t>();
      r.best_metrics = best.at("metrics");
    }
    r.peak_memory_bytes = state.at("peak_memory_bytes").get<size_t>();
    r.overhead_guards = state.value("overhead_guards", json());
    if (!r.overhead_guards.is_null() && !(r.overhead_guards.is_object() && r.overhead_guards.contains("guards") &&
                                          r.overhead_guards["guards"].is_array()))
      throw std::out_of_range("overhead_guards");
    if (!r.history.is_array() || r.batch_in_epoch < 0 || r.steps < 0) throw std::out_of_range("bad value");
  } catch (const json::exception& e) {
    fail(file.string(), ": ", e.what());
  } catch (const std::out_of_range&) {
    fail(file.string(), ": a value is out of range");
  }
}

std::optional<train::TrainingTarget> training_target_of(const TrainConfig& cfg, const TrainTask& task) {
  std::optional<train::TrainingTarget> target = train::parse_training_target(cfg.get_string("train.target"), "train.target");
  if (!target) return target;
  const bool lm_metric = target->metric == "loss" || target->metric == "perplexity";
  if (task.settings().per_token && !lm_metric)
    fail("train.target ", target->text(), ": a language-modelling run's evaluations report loss and perplexity");
  if (!task.settings().per_token && target->metric == "perplexity")
    fail("train.target ", target->text(), ": a classification run's evaluations report no perplexity");
  if (!task.has_eval())
    fail("train.target ", target->text(), ": this run has no evaluation split to measure it on");
  return target;
}

json scaling_baseline_of(const TrainConfig& cfg, const TrainTask& task, dist::ProcessGroup* group) {
  const fs::path path = cfg.get_path("train.scaling_baseline");
  if (path.empty()) return nullptr;
  if (!group) {
    std::fprintf(stderr, "wattwise: train.scaling_baseline is for data-parallel runs: ignored by one process\n");
    return nullptr;
  }
  json baseline;
  std::string error;
  if (group->rank() == 0) {
    try {
      baseline = read_scaling_baseline(path, task);
    } catch (const std::exception& e) {
      error = e.what();
    }
  }
  group->broadcast_text(error, 0);
  if (!error.empty()) fail(error);
  return baseline;
}

}  // namespace ww::experiment
