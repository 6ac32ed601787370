#include "overhead_guard.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <optional>

#include "train_loop.h"
#include "wattwise/core/device.h"
#include "wattwise/core/error.h"
#include "wattwise/train/gradient_buckets.h"
#include "wattwise/train/snapshot.h"

namespace ww::experiment {

using nlohmann::json;

GuardRequest guard_request_of(const TrainConfig& cfg) {
  GuardRequest r;
  r.attention = cfg.get_string("model.attention") == "fastest";
  r.cuda_graphs = cfg.is_auto("run.cuda_graphs");
  r.bucket_overlap = cfg.is_auto("train.bucket_mb");
  return r;
}

namespace {

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

std::string ms(double seconds) {
  char text[32];
  std::snprintf(text, sizeof text, "%.3g ms", seconds * 1e3);
  return text;
}

// One optimisation a guard switches: how to set it on or off, and its config key and values.
struct Switch {
  std::string name;   // metrics.json's "optimisation"
  std::string label;  // in the log
  std::string key;    // the config key asking for the guard
  std::function<void(bool on)> set;
  std::function<json(bool on)> value;  // the setting as the key would hold it
};

// The steps the measurement takes: whole optimizer steps over the run's first micro-batches (each
// rank its rows, as the training loop feeds them), timed per micro-batch.
class GuardSteps {
 public:
  GuardSteps(TrainTask& task, train::Trainer& trainer, dist::ProcessGroup* group)
      : task_(task), trainer_(trainer), group_(group) {
    std::unique_ptr<EpochBatches> epoch = task.epoch(0, false);
    // Enough for a step of several micro-batches; they are reused in turn.
    while (batches_.size() < 8) {
      std::optional<MicroBatch> b = epoch->next();
      if (!b) break;
      batches_.push_back(std::move(b->batch));
    }
  }
  bool empty() const { return batches_.empty(); }
  // Micro-batches fed.
  int64_t step() {
    int64_t fed = 0;
    for (;;) {
      ++fed;
      if (train_on_rows(trainer_, batches_[next_++ % batches_.size()], group_)) return fed;
    }
  }
  // Seconds per micro-batch over `steps` steps, the device idle before and after.
  double timed(int steps) {
    const Device device = task_.settings().device;
    synchronize(device);
    const auto start = std::chrono::steady_clock::now();
    int64_t fed = 0;
    for (int i = 0; i < steps; ++i) fed += step();
    synchronize(device);
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() / double(fed);
  }

 private:
  TrainTask& task_;
  train::Trainer& trainer_;
  dist::ProcessGroup* group_;
  std::vector<models::Batch> batches_;
  size_t next_ = 0;
};

// Why an optimisation cannot be measured here (empty: it can), and the setting it then keeps.
struct NotMeasured {
  std::string reason;
  bool on = true;
};

std::optional<NotMeasured> why_not_measured(const std::string& name, const TaskSettings& s,
                                            const train::Trainer& trainer, dist::ProcessGroup* group) {
  const bool gpu = s.device.is_cuda();
  if (name == "fused_attention" && !gpu) return NotMeasured{"the CPU runs the reference attention only", false};
  if (name == "cuda_graphs") {
    if (!gpu) return NotMeasured{"no CUDA graphs on the CPU", false};
    if (s.adaptive_accumulation || s.grad_accum != 1)
      return NotMeasured{"training steps of several micro-batches are not recorded (train.grad_accum " +
                             std::string(s.adaptive_accumulation ? "auto" : std::to_string(s.grad_accum)) +
                             "); graphs stay on for the evaluations",
                         true};
  }
  if (name == "bucket_overlap") {
    if (!group) return NotMeasured{"one process: no gradients are summed over ranks", true};
    if (trainer.options().zero >= 2) return NotMeasured{"ZeRO 2 sums the gradients layer by layer, not in buckets", true};
  }
  return std::nullopt;
}

// Every rank's times averaged, so all decide alike.
void agree_on_times(std::vector<double>& times, dist::ProcessGroup* group) {
  if (!group || group->size() == 1) return;
  group->all_reduce_sum(times);
  for (double& t : times) t /= double(group->size());
}

json measure(const Switch& sw, const GuardPlan& plan, GuardSteps& steps, dist::ProcessGroup* group, int64_t& taken) {
  std::vector<double> with_s, without_s;
  for (int round = 0; round < plan.rounds; ++round) {
    for (bool on : round % 2 == 0 ? std::vector<bool>{true, false} : std::vector<bool>{false, true}) {
      sw.set(on);
      steps.step();  // untimed: a recording, a replanned arena
      (on ? with_s : without_s).push_back(steps.timed(plan.steps_per_round));
      taken += 1 + plan.steps_per_round;
    }
  }
  std::vector<double> all = with_s;
  all.insert(all.end(), without_s.begin(), without_s.end());
  agree_on_times(all, group);
  with_s.assign(all.begin(), all.begin() + plan.rounds);
  without_s.assign(all.begin() + plan.rounds, all.end());
  const GuardVerdict v = judge_overhead(with_s, without_s, plan.tolerance);
  sw.set(v.keep);
  const double change = v.with_s / v.without_s - 1;
  char why[160];
  if (v.keep)
    std::snprintf(why, sizeof why, "%s per micro-batch with, %s without (%+.1f%%): kept%s", ms(v.with_s).c_str(),
                  ms(v.without_s).c_str(), 100 * change,
                  change > plan.tolerance ? " (not slower in every round)" : "");
  else
    std::snprintf(why, sizeof why, "%s per micro-batch with, %s without: switched off (%.1f%% slower with it)",
                  ms(v.with_s).c_str(), ms(v.without_s).c_str(), 100 * change);
  return {{"optimisation", sw.name}, {"key", sw.key},       {"measured", true},
          {"kept", v.keep},          {"value", sw.value(v.keep)}, {"with_s_per_micro_batch", v.with_s},
          {"without_s_per_micro_batch", v.without_s}, {"with_s", with_s}, {"without_s", without_s},
          {"reason", std::string(why)}};
}

}  // namespace

GuardVerdict judge_overhead(std::vector<double> with_s, std::vector<double> without_s, double tolerance) {
  if (with_s.empty() || without_s.empty()) fail("overhead guard: no timings to judge");
  // Round r's two times were taken next to each other: a pair. Slower in every pair, not only in
  // the medians, so that a disturbed round (another process, a page fault) cannot switch it off.
  GuardVerdict v;
  v.slower_in_every_round = with_s.size() == without_s.size();
  for (size_t r = 0; r < with_s.size() && r < without_s.size(); ++r)
    v.slower_in_every_round = v.slower_in_every_round && with_s[r] > without_s[r];
  v.with_s = median(std::move(with_s));
  v.without_s = median(std::move(without_s));
  v.keep = !(v.slower_in_every_round && v.with_s > v.without_s * (1 + tolerance));
  return v;
}

json run_overhead_guards(const GuardRequest& request, const GuardPlan& plan, TrainTask& task, train::Trainer& trainer,
                         dist::ProcessGroup* group, const json& recorded, const std::function<void(const std::string&)>& say) {
  const bool distributed = group && group->size() > 1;
  // A resumed run: rank 0's record, to every rank (the others hold none), as numbers.
  // [recorded, attention (1 fused, 2 reference), graphs (1 on, 2 off), bucket elements + 1 (0: none)]
  std::vector<double> record(4, 0.0);
  if (recorded.is_object()) {
    record[0] = 1;
    for (const json& g : recorded.at("guards")) {
      const std::string name = g.at("optimisation").get<std::string>();
      if (name == "fused_attention") record[1] = g.at("value") == "fused" ? 1 : 2;
      if (name == "cuda_graphs") record[2] = g.at("value").get<bool>() ? 1 : 2;
      if (name == "bucket_overlap") record[3] = g.at("value").get<double>() * double(1 << 20) / sizeof(float) + 1;
    }
  }
  if (distributed) group->all_reduce_sum(record);  // only rank 0's record is not zeros
  if (!request.any() && record[0] == 0) return nullptr;

  const int64_t default_bucket = train::kDefaultBucketBytes / int64_t(sizeof(float));
  const double bucket_mb = double(train::kDefaultBucketBytes) / double(1 << 20);
  std::vector<Switch> switches;
  if (request.attention)
    switches.push_back({"fused_attention", "fused attention", "model.attention",
                        [&](bool on) {
                          ExecutionChoice e = task.settings().execution;
                          e.attention = on ? "fused" : "reference";
                          task.use_execution(e);
                        },
                        [](bool on) { return json(on ? "fused" : "reference"); }});
  if (request.cuda_graphs)
    switches.push_back({"cuda_graphs", "CUDA graphs", "run.cuda_graphs",
                        [&](bool on) {
                          ExecutionChoice e = task.settings().execution;
                          e.cuda_graphs = on;
                          task.use_execution(e);
                        },
                        [](bool on) { return json(on); }});
  if (request.bucket_overlap)
    switches.push_back({"bucket_overlap", "gradient sums overlapped with backward (buckets)", "train.bucket_mb",
                        [&, default_bucket](bool on) { trainer.set_bucket_elements(on ? default_bucket : 0); },
                        [bucket_mb](bool on) { return json(on ? bucket_mb : 0.0); }});

  if (record[0] != 0) {
    for (const Switch& sw : switches) {
      const double code = sw.name == "fused_attention" ? record[1] : sw.name == "cuda_graphs" ? record[2] : record[3];
      if (code == 0) continue;  // not in the record: the configuration's default stays
      if (sw.name == "bucket_overlap") trainer.set_bucket_elements(int64_t(std::llround(code - 1)));
      else sw.set(code == 1);
    }
    if (recorded.is_object()) say("overhead guards: the choices the checkpoint recorded");
    return recorded;
  }

  const auto start = std::chrono::steady_clock::now();
  json guards = json::array();
  int64_t taken = 0;
  std::optional<GuardSteps> steps;
  std::optional<train::TrainingSnapshot> snapshot;
  for (const Switch& sw : switches) {
    json entry;
    if (std::optional<NotMeasured> no = why_not_measured(sw.name, task.settings(), trainer, group)) {
      sw.set(no->on);
      entry = {{"optimisation", sw.name}, {"key", sw.key}, {"measured", false}, {"kept", no->on},
               {"value", sw.value(no->on)}, {"reason", "not measured: " + no->reason}};
    } else {
      if (!steps) {
        steps.emplace(task, trainer, group);
        snapshot.emplace(task.model(), trainer);
      }
      if (steps->empty()) fail("overhead guards: the training split gives no micro-batch to measure with");
      entry = measure(sw, plan, *steps, group, taken);
    }
    say("overhead guard: " + sw.label + ": " + entry["reason"].get<std::string>());
    guards.push_back(std::move(entry));
  }
  if (snapshot) snapshot->restore(task.model(), trainer);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return {{"seconds", seconds}, {"steps", taken}, {"guards", std::move(guards)}};
}

}  // namespace ww::experiment
