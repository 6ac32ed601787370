// What an ablation concludes from its runs: per-run numbers out of each metrics.json, per-arm means
// and ranges over seeds, differences from the baseline paired by seed with a Student-t interval,
// the quality–energy frontier and the energy ranking (docs/ABLATIONS.md defines every column).
#include <algorithm>
#include <cmath>
#include <numeric>

#include "wattwise/core/error.h"
#include "wattwise/experiment/ablate.h"
#include "wattwise/experiment/pareto.h"

namespace ww::experiment {

namespace {

// The differences reported for every change: the quality (in points) first.
std::vector<std::string> delta_metrics(const std::string& metric) {
  return {metric, "time_to_target_s", "energy_to_target_j", "energy_j", "peak_memory_bytes", "throughput_per_s"};
}

std::string delta_name(const std::string& metric, const std::string& m) {
  return m == metric ? "delta_" + metric + "_pts" : "delta_" + m;
}

void put(std::map<std::string, double>& to, const std::string& key, const nlohmann::json& value) {
  if (value.is_number()) to[key] = value.get<double>();
}

const nlohmann::json& at(const nlohmann::json& object, const char* key) {
  static const nlohmann::json null;
  return object.is_object() && object.contains(key) ? object[key] : null;
}

}  // namespace

double student_t_975(int64_t df) {
  WW_CHECK(df >= 1, "degrees of freedom ", df);
  // t(0.975, df) for df 1..30 (the usual table, to 9 digits).
  static const double table[30] = {12.706204736, 4.302652730, 3.182446305, 2.776445105, 2.570581836, 2.446911851,
                                   2.364624252,  2.306004135, 2.262157163, 2.228138852, 2.200985160, 2.178812830,
                                   2.160368656,  2.144786688, 2.131449546, 2.119905299, 2.109815578, 2.100922040,
                                   2.093024054,  2.085963447, 2.079613845, 2.073873068, 2.068657610, 2.063898562,
                                   2.059538553,  2.055529439, 2.051830516, 2.048407142, 2.045229642, 2.042272456};
  if (df <= 30) return table[df - 1];
  // Beyond: the Cornish-Fisher expansion around the normal quantile (within 1e-6 from df 30 on).
  const double z = 1.959963984540054, n = double(df);
  const double z3 = z * z * z, z5 = z3 * z * z, z7 = z5 * z * z, z9 = z7 * z * z;
  return z + (z3 + z) / (4 * n) + (5 * z5 + 16 * z3 + 3 * z) / (96 * n * n) +
         (3 * z7 + 19 * z5 + 17 * z3 - 15 * z) / (384 * n * n * n) +
         (79 * z9 + 776 * z7 + 1482 * z5 - 1920 * z3 - 945 * z) / (92160 * n * n * n * n);
}

SampleStats sample_stats(const std::vector<double>& values) {
  SampleStats s;
  s.n = int64_t(values.size());
  if (values.empty()) return s;
  s.mean = std::accumulate(values.begin(), values.end(), 0.0) / double(s.n);
  s.min = *std::min_element(values.begin(), values.end());
  s.max = *std::max_element(values.begin(), values.end());
  if (s.n < 2) return s;
  double squares = 0;
  for (double v : values) squares += (v - s.mean) * (v - s.mean);
  const double half_width = student_t_975(s.n - 1) * std::sqrt(squares / double(s.n - 1) / double(s.n));
  s.ci_low = s.mean - half_width;
  s.ci_high = s.mean + half_width;
  return s;
}

std::vector<double> paired_differences(const std::map<int64_t, double>& arm, const std::map<int64_t, double>& baseline) {
  std::vector<double> d;
  for (const auto& [seed, value] : arm) {
    auto b = baseline.find(seed);
    if (b != baseline.end() && std::isfinite(value) && std::isfinite(b->second)) d.push_back(value - b->second);
  }
  return d;
}

double metric_point(const std::string& metric) {
  return metric == "loss" || metric == "perplexity" || metric == "mse" ? 1.0 : 0.01;
}

bool higher_is_better(const std::string& metric) {
  return !(metric == "loss" || metric == "perplexity" || metric == "mse");
}

std::vector<std::string> ablation_run_metric_names(const std::string& metric) {
  return {metric,           "seconds",           "energy_j",         "kwh",  "gco2e",           "target_reached",
          "time_to_target_s", "energy_to_target_j", "steps_to_target", "peak_memory_bytes", "throughput_per_s",
          "mfu",            "achieved_tflops",   "steps",            "final_loss"};
}

std::map<std::string, double> ablation_run_metrics(const nlohmann::json& m, const std::string& metric) {
  std::map<std::string, double> out;
  put(out, metric, at(at(m, "eval"), metric.c_str()));
  const nlohmann::json& train = at(m, "train");
  put(out, "seconds", at(train, "seconds"));
  const nlohmann::json& total = at(at(m, "energy"), "total");
  put(out, "energy_j", at(total, "energy_j"));
  put(out, "kwh", at(total, "kwh"));
  put(out, "gco2e", at(total, "gco2e"));
  const nlohmann::json& target = at(m, "target");
  if (target.is_object()) {
    const bool reached = at(target, "reached").is_boolean() && target["reached"].get<bool>();
    out["target_reached"] = reached ? 1 : 0;
    if (reached) {
      put(out, "time_to_target_s", at(target, "seconds"));
      put(out, "energy_to_target_j", at(target, "energy_j"));
      put(out, "steps_to_target", at(target, "step"));
    }
  }
  put(out, "peak_memory_bytes", at(at(m, "execution"), "peak_memory_bytes"));
  // Language modelling counts tokens: its throughput is tokens/s, a classifier's examples/s.
  put(out, "throughput_per_s", at(train, at(train, "tokens_per_s").is_number() ? "tokens_per_s" : "samples_per_s"));
  put(out, "mfu", at(train, "mfu"));
  put(out, "achieved_tflops", at(train, "achieved_tflops"));
  put(out, "steps", at(train, "steps"));
  put(out, "final_loss", at(train, "final_loss"));
  return out;
}

std::vector<size_t> rank_energy_saved(const std::vector<ArmSummary>& arms, const std::string& metric, double tolerance) {
  const std::string quality = "delta_" + metric + "_pts_mean";
  const double sign = higher_is_better(metric) ? 1.0 : -1.0;
  std::vector<size_t> ranked;
  for (size_t i = 0; i < arms.size(); ++i) {
    const ArmSummary& a = arms[i];
    auto q = a.columns.find(quality);
    auto saved = a.columns.find("energy_saved_pct");
    auto paired = a.columns.find("delta_energy_j_n");
    if (a.baseline || q == a.columns.end() || saved == a.columns.end() || paired == a.columns.end()) continue;
    if (!std::isfinite(q->second) || !std::isfinite(saved->second) || paired->second != double(a.seeds)) continue;
    // The tolerance is inclusive; 1e-9 points absorbs rounding in the difference of two means.
    if (sign * q->second >= -tolerance - 1e-9) ranked.push_back(i);
  }
  std::stable_sort(ranked.begin(), ranked.end(), [&](size_t a, size_t b) {
    const double sa = arms[a].columns.at("energy_saved_pct"), sb = arms[b].columns.at("energy_saved_pct");
    return sa != sb ? sa > sb : arms[a].name < arms[b].name;
  });
  return ranked;
}

AblationSummary summarize_ablation(const AblationSpec& spec, const std::vector<AblationRun>& runs) {
  AblationSummary summary;
  const std::vector<std::string> names = ablation_run_metric_names(spec.metric);
  summary.columns.push_back("target_reached");
  for (const std::string& m : names)
    if (m != "target_reached")
      for (const char* part : {"_mean", "_min", "_max"}) summary.columns.push_back(m + part);
  for (const std::string& m : delta_metrics(spec.metric)) {
    for (const char* part : {"_mean", "_ci_low", "_ci_high", "_min", "_max", "_n"})
      summary.columns.push_back(delta_name(spec.metric, m) + part);
    if (m != spec.metric) summary.columns.push_back(delta_name(spec.metric, m) + "_rel");
  }
  summary.columns.push_back("energy_saved_pct");

  // values[arm][metric][seed], from the completed runs.
  std::map<std::string, std::map<std::string, std::map<int64_t, double>>> values;
  for (const AblationRun& r : runs)
    if (r.status == "completed")
      for (const auto& [m, v] : r.metrics) values[r.arm][m][r.seed] = v;
  auto series = [&](const std::string& arm, const std::string& m) {
    auto a = values.find(arm);
    if (a == values.end()) return std::map<int64_t, double>();
    auto s = a->second.find(m);
    return s == a->second.end() ? std::map<int64_t, double>() : s->second;
  };
  const std::string baseline = spec.arms.front().name;
  for (const AblationArm& arm : spec.arms) {
    ArmSummary s;
    s.name = arm.name;
    s.sets = arm.describe();
    s.baseline = arm.name == baseline;
    for (const AblationRun& r : runs) s.seeds += r.arm == arm.name && r.status == "completed";
    for (const std::string& m : names) {
      std::vector<double> v;
      for (const auto& [seed, value] : series(arm.name, m))
        if (std::isfinite(value)) v.push_back(value);
      if (m == "target_reached") {
        if (!v.empty()) s.columns[m] = std::accumulate(v.begin(), v.end(), 0.0);
        continue;
      }
      const SampleStats st = sample_stats(v);
      if (st.n == 0) continue;
      s.columns[m + "_mean"] = st.mean, s.columns[m + "_min"] = st.min, s.columns[m + "_max"] = st.max;
    }
    if (!s.baseline) {
      for (const std::string& m : delta_metrics(spec.metric)) {
        const auto mine = series(arm.name, m), base = series(baseline, m);
        std::vector<double> d = paired_differences(mine, base);
        const double scale = m == spec.metric ? 1.0 / metric_point(m) : 1.0;
        for (double& x : d) x *= scale;
        const SampleStats st = sample_stats(d);
        const std::string name = delta_name(spec.metric, m);
        s.columns[name + "_n"] = double(st.n);
        if (st.n == 0) continue;
        s.columns[name + "_mean"] = st.mean, s.columns[name + "_min"] = st.min, s.columns[name + "_max"] = st.max;
        if (st.n > 1) s.columns[name + "_ci_low"] = st.ci_low, s.columns[name + "_ci_high"] = st.ci_high;
        if (m == spec.metric) continue;
        // Relative to the baseline's mean over the same seeds.
        double base_sum = 0;
        for (const auto& [seed, value] : mine)
          if (base.count(seed) && std::isfinite(value) && std::isfinite(base.at(seed))) base_sum += base.at(seed);
        if (base_sum != 0) s.columns[name + "_rel"] = st.mean / (base_sum / double(st.n));
      }
      if (s.columns.count("delta_energy_j_rel")) s.columns["energy_saved_pct"] = -100.0 * s.columns["delta_energy_j_rel"];
    }
    summary.arms.push_back(std::move(s));
  }

  // The frontier over the arms' means, each with its spread over seeds (<metric>_min/_max), so that
  // only a difference beyond the scatter of the seeds dominates (a closer one is a tie).
  ResultTable table;
  table.metrics = {spec.metric, spec.metric + "_min", spec.metric + "_max", "energy_j", "energy_j_min", "energy_j_max"};
  for (const ArmSummary& a : summary.arms) {
    ConfigRow row;
    row.config = a.name;
    row.baseline = a.baseline;
    for (const std::string& m : {spec.metric, std::string("energy_j")})
      for (const char* part : {"", "_min", "_max"}) {
        auto it = a.columns.find(m + (part[0] ? part : "_mean"));
        if (it != a.columns.end()) row.metrics[m + part] = it->second;
      }
    if (!row.metrics.count(spec.metric) || !row.metrics.count("energy_j")) {
      row.status = "skipped";
      row.reason = "no completed run with " + spec.metric + " and energy";
    }
    table.rows.push_back(std::move(row));
  }
  mark_frontier(table, {{spec.metric, higher_is_better(spec.metric) ? Goal::Maximize : Goal::Minimize},
                        {"energy_j", Goal::Minimize}});
  for (size_t i = 0; i < table.rows.size(); ++i) {
    summary.arms[i].on_frontier = table.rows[i].on_frontier;
    summary.arms[i].tied_with = table.rows[i].tied_with;
  }

  summary.ranked = rank_energy_saved(summary.arms, spec.metric, spec.tolerance);
  for (size_t place = 0; place < summary.ranked.size(); ++place) summary.arms[summary.ranked[place]].rank = int64_t(place + 1);
  return summary;
}

}  // namespace ww::experiment
