#pragma once
// `wattwise ablate`: a baseline training configuration and one-factor changes to it (any training
// config keys, or a recipe file of them), each trained over the same seeds through run_training().
// Per change, against the baseline and paired by seed: Δquality with a 95% Student-t interval,
// Δtime- and Δenergy-to-target, Δpeak memory, Δthroughput; MFU, kWh and gCO2e; the quality–energy
// frontier; and the changes ranked by the energy they save at a bounded quality loss.
//
// The ablation folder <runs_dir>/<UTC>_<name>/ holds spec.toml (the spec as given),
// ablation_plan.json (every arm's resolved configuration: what --resume continues from),
// runs/<UTC>_<arm>_s<seed>/ (one ordinary training run folder each), and at the end runs.csv,
// ablation.csv, metrics.json, <metric>_energy.{svg,png} and report.html (docs/ABLATIONS.md).
#include <cstdint>
#include <filesystem>
#include <limits>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "wattwise/experiment/plot.h"
#include "wattwise/experiment/train_config.h"

namespace ww::experiment {

// One arm of the ablation: the baseline, or one change to it.
struct AblationArm {
  std::string name;    // "baseline", or the change's name (a folder-name part: letters, digits, . _ -)
  std::string where;   // where the spec defines it ("spec.toml:12"), for messages
  std::string recipe;  // the recipe file as the spec names it ("" none)
  std::vector<std::pair<std::string, std::string>> sets;  // key and value the arm sets, recipe's first
  TrainConfig config;  // resolved; run.seed, run.name and run.output_dir are set per run
  std::string describe() const;  // "train.precision=bf16; train.loss_scale=dynamic" (ablation.csv's sets)
};

struct AblationSpec {
  std::string name;                 // the ablation folder's suffix
  std::string metric = "accuracy";  // the quality compared: metrics.json's "eval" (best checkpoint)
  std::string target;               // train.target of every run, never stopping at it ("" none)
  double tolerance = 0.5;           // quality loss, in points, the energy ranking allows
  std::vector<int64_t> seeds;
  std::vector<AblationArm> arms;    // arms[0] is the baseline
};

struct AblateOptions {
  std::filesystem::path spec;    // a spec TOML: a new ablation
  std::filesystem::path resume;  // or an ablation folder to continue
  std::filesystem::path runs_dir = "runs";
  std::string name;              // "" = the spec's name key, else the spec file's stem
  int64_t seeds = 0;             // > 0: seeds 1..N instead of the spec's
  std::vector<std::string> sets; // KEY=VALUE over the baseline (so over every arm)
  bool dry_run = false;          // validate and show the plan; write nothing
};

// Reads and validates the spec and everything it names (the baseline config, recipes, every key and
// value, every arm's resolved configuration) and resolves relative paths in the configurations
// against the working directory, so that --resume works from anywhere. Writes nothing. Errors name
// the file, line and key.
AblationSpec load_ablation_spec(const AblateOptions& options);

struct AblateResult {
  std::filesystem::path dir;  // the ablation folder ("" for a dry run of a new ablation)
  int signal = 0;             // a signal interrupted a run: the ablation stopped there
};
AblateResult run_ablation(const AblateOptions& options);

// ---- statistics (docs/ABLATIONS.md): exposed for the tests

// The 0.975 quantile of Student's t with `df` degrees of freedom (the 95% two-sided interval).
double student_t_975(int64_t df);

// Mean, range and 95% Student-t interval of the mean (NaN where undefined: no values; the interval
// with fewer than two).
struct SampleStats {
  int64_t n = 0;
  double mean = std::numeric_limits<double>::quiet_NaN();
  double ci_low = std::numeric_limits<double>::quiet_NaN(), ci_high = std::numeric_limits<double>::quiet_NaN();
  double min = std::numeric_limits<double>::quiet_NaN(), max = std::numeric_limits<double>::quiet_NaN();
};
SampleStats sample_stats(const std::vector<double>& values);

// arm[seed] - baseline[seed] for every seed both have (a missing or NaN value drops that seed).
std::vector<double> paired_differences(const std::map<int64_t, double>& arm, const std::map<int64_t, double>& baseline);

// How many units one "point" of a metric is: 0.01 for the 0..1 scores (accuracy, f1, ...), 1 for
// loss, perplexity and mse. Whether a higher value is better.
double metric_point(const std::string& metric);
bool higher_is_better(const std::string& metric);

// One training run of the ablation and what the summaries take from its metrics.json.
struct AblationRun {
  std::string arm;
  int64_t seed = 0;
  std::filesystem::path dir;
  std::string status;                     // completed (the summaries read only those)
  std::map<std::string, double> metrics;  // runs.csv's numbers; missing = not available
  std::string energy_provenance;
};
// The per-run numbers from a training run's metrics.json (ablation_run_metric_names() order).
std::map<std::string, double> ablation_run_metrics(const nlohmann::json& metrics, const std::string& metric);
std::vector<std::string> ablation_run_metric_names(const std::string& metric);

struct ArmSummary {
  std::string name, sets;
  bool baseline = false;
  int64_t seeds = 0;                      // completed runs summarised
  std::map<std::string, double> columns;  // ablation.csv's numbers; missing = not available
  bool on_frontier = false;               // within the spread over seeds, ties included
  std::vector<std::string> tied_with;     // a tie: the arms that beat it on the means, not beyond the spread
  int64_t rank = 0;                       // place in the energy ranking (0: not ranked)
  std::string frontier() const { return !on_frontier ? "no" : tied_with.empty() ? "yes" : "tie"; }
};
struct AblationSummary {
  std::vector<std::string> columns;  // ablation.csv's numeric columns, in order
  std::vector<ArmSummary> arms;      // in spec order, the baseline first
  std::vector<size_t> ranked;        // arms ranked by energy saved at <= tolerance quality loss
};
// The summary of every arm; the frontier over quality (max, or min for loss-like metrics) and
// energy_j (min) within each arm's spread over seeds (<metric>_min / <metric>_max, as
// mark_frontier reads spreads), ties marked; the ranking.
AblationSummary summarize_ablation(const AblationSpec& spec, const std::vector<AblationRun>& runs);

// The ranking rule: arms other than the baseline whose mean Δquality is at most `tolerance` points
// worse and whose energy saving is known for every seed, most energy saved first (ties by name).
std::vector<size_t> rank_energy_saved(const std::vector<ArmSummary>& arms, const std::string& metric, double tolerance);

// report.html of an ablation (self-contained: inline SVG, no scripts), and its plot.
ScatterPlot ablation_plot(const AblationSpec& spec, const AblationSummary& summary);
std::string render_ablation_report(const AblationSpec& spec, const AblationSummary& summary,
                                   const std::vector<AblationRun>& runs, const std::filesystem::path& dir);

}  // namespace ww::experiment
